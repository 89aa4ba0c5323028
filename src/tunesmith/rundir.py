"""The self-describing run directory: resolved config, manifest, model, reports, logs."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from tunesmith.errors import InputError

MANIFEST = "manifest.json"


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in (
        "tunesmith",
        "torch",
        "transformers",
        "peft",
        "accelerate",
        "safetensors",
        "tokenizers",
        "numpy",
        "scikit-learn",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def check_writable(folder: str | Path, key: str = "output_dir") -> None:
    """InputError unless ``folder`` is, or can be made as, a folder this process can write into (checked by
    writing a probe file into it, or into its nearest existing parent, so that root and ACLs are honoured)."""
    path = Path(folder).expanduser()
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        what = "is a file" if existing == path else f"cannot be made: {existing} is a file"
        raise InputError(f"{key}: {path} {what}; give a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".tunesmith-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"{key}: {path} cannot be written ({exc.strerror or exc})") from None


def new_run_dir(output_dir: str, task: str, method: str) -> Path:
    """A fresh, unique folder name; created later, only after the data passed its checks."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(output_dir) / f"{stamp}-{task}-{method}-{secrets.token_hex(2)}"


def latest_unfinished(output_dir: str) -> Path | None:
    """The newest run under output_dir that has checkpoints but no finished manifest."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    candidates = []
    for d in root.iterdir():
        if (d / "checkpoints").is_dir():
            status = read_manifest(d).get("status") if (d / MANIFEST).is_file() else None
            if status != "complete":
                candidates.append(d)
    return max(candidates, key=lambda d: d.stat().st_mtime) if candidates else None


def read_manifest(run_dir: Path) -> dict[str, Any]:
    p = Path(run_dir) / MANIFEST
    if not p.is_file():
        raise InputError(f"{run_dir}: not a tunesmith run directory (no {MANIFEST})")
    return json.loads(p.read_text(encoding="utf-8"))


def locate_run(output_dir: str, task: str, method: str, resume: bool | str | Path, run_dir: str | Path | None) -> Path:
    """Where a run writes: the given folder, the run to resume (named, or the newest unfinished), or a new one."""
    if run_dir is not None:
        return Path(run_dir)
    if resume and not isinstance(resume, bool):
        path = Path(resume)
        if not (path / "checkpoints").is_dir():
            raise InputError(f"--resume {path}: no checkpoints there to resume from")
        return path
    if resume:
        found = latest_unfinished(output_dir)
        if found is None:
            raise InputError(f"--resume: no unfinished run with checkpoints under {output_dir}")
        return found
    return new_run_dir(output_dir, task, method)


@dataclass
class Run:
    """A finished run: where it is and what it measured."""

    path: Path
    manifest: dict[str, Any]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.manifest.get("metrics", {})

    @property
    def report_html(self) -> Path:
        return self.path / "report.html"


STATUS = "status.json"
FINISHED = "finished"


def write_status(run: Path, status: str, **fields: Any) -> None:
    """``RUN/status.json``: running (with the process id and host, so a reader can tell a run whose process died),
    finished, failed (with the error) or interrupted. The manifest stays the record of a finished run."""
    import socket

    from tunesmith.files import write_json

    record = {"status": status, "pid": os.getpid(), "host": socket.gethostname(), "time": round(time.time(), 3)}
    write_json(Path(run) / STATUS, record | fields)


def run_status(run: Path) -> dict[str, Any]:
    """What a run directory says of itself: ``status`` is finished, running, failed or interrupted (a run whose
    process is gone without saying why: killed, or the machine stopped), with ``resumable`` when checkpoints are
    there and the error of a failed run."""
    import socket

    run = Path(run)
    resumable = (run / "checkpoints").is_dir()
    if (run / MANIFEST).is_file() and read_manifest(run).get("status") == "complete":
        return {"status": FINISHED, "resumable": False}
    try:
        record = json.loads((run / STATUS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = {"status": "interrupted"}  # a run of an older version, or one that died before saying anything
    if record.get("status") == "running":
        here = record.get("host") == socket.gethostname()
        if here and not process_alive(int(record.get("pid", 0))):
            record = {**record, "status": "interrupted", "error": "its process is gone (killed or the machine stopped)"}
    return {**record, "resumable": resumable}


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True
