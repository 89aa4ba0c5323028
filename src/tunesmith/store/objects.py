"""Content-addressed artifact storage: every file once, named by its SHA-256, read-only, verified on use."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from tunesmith.errors import TunesmithError

CHUNK = 1 << 20


class ArtifactError(TunesmithError):
    """A stored artifact is missing, truncated or altered: it is refused, never used."""

    exit_code = 1


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


class ObjectStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ArtifactError(f"{digest!r} is not a SHA-256 digest")
        return self.root / digest[:2] / digest[2:]

    def put(self, source: Path) -> tuple[str, int]:
        """Copy ``source`` in (hashing while copying); returns (digest, size). A file already stored is kept when
        its bytes check out, and replaced when they do not (a damaged copy is repaired by registering again)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.sweep()
        tmp = self.root / f".incoming.{os.getpid()}.{os.urandom(4).hex()}"
        h, size = hashlib.sha256(), 0
        try:
            with open(source, "rb") as src, open(tmp, "wb") as dst:
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            digest = h.hexdigest()
            final = self.path(digest)
            if final.is_file() and final.stat().st_size == size and file_sha256(final) == digest:
                return digest, size
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)
            return digest, size
        finally:
            tmp.unlink(missing_ok=True)

    def sweep(self) -> None:
        """Remove the partial copies (``.incoming.PID.*``) of registrations whose process no longer runs (killed
        mid-copy); those of running processes are left alone."""
        for partial in self.root.glob(".incoming.*"):
            parts = partial.name.split(".")
            if len(parts) >= 3 and parts[2].isdigit() and not _alive(int(parts[2])):
                partial.unlink(missing_ok=True)

    def link(self, digest: str, target: Path) -> None:
        """Place the object at ``target`` (a hard link, a copy where links are not possible)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(self.path(digest), target)
        except OSError:
            shutil.copyfile(self.path(digest), target)
            os.chmod(target, 0o444)

    def verify(self, path: Path, digest: str, size: int, what: str) -> None:
        """Refuse ``path`` unless it is exactly the stored bytes."""
        if not path.is_file():
            raise ArtifactError(f"{what}: the stored file is missing ({path}); the store copy is damaged")
        actual_size = path.stat().st_size
        if actual_size != size:
            raise ArtifactError(
                f"{what}: the stored file is {actual_size} bytes, {size} were registered (truncated or altered); "
                "refusing to use it"
            )
        actual = file_sha256(path)
        if actual != digest:
            raise ArtifactError(
                f"{what}: checksum mismatch (registered sha256 {digest[:16]}..., found {actual[:16]}...); the file "
                "was altered after registration; refusing to use it"
            )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
