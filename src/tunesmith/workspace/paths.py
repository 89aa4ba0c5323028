"""Paths given by a person (a form field, a query parameter) confined to the workspace's folders: resolved with
symbolic links followed, then refused unless inside one of them."""

from __future__ import annotations

import re
from pathlib import Path

from tunesmith.errors import InputError

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class Folders:
    """The folders a front end may read and write. The first is the workspace: new runs go to ``runs/``, uploads
    to ``uploads/``, labelling queues to ``labels/``, written configs to ``configs/``, background jobs'
    records and logs to ``.tunesmith/jobs/``."""

    def __init__(self, roots: list[str | Path]):
        if not roots:
            raise InputError("give at least one folder")
        resolved = []
        for root in roots:
            path = Path(root).expanduser().resolve()
            if not path.is_dir():
                raise InputError(f"{root}: not a folder")
            resolved.append(path)
        self.roots = resolved
        self.home = resolved[0]

    def sub(self, name: str) -> Path:
        path = self.home / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def confine(self, given: str | Path, what: str = "path", must_exist: bool = True) -> Path:
        """``given`` (relative to the workspace, or absolute) as a resolved path inside a configured folder;
        InputError otherwise (outside, or missing when ``must_exist``)."""
        text = str(given).strip()
        if not text or "\x00" in text:
            raise InputError(f"{what}: empty or not a path")
        raw = Path(text).expanduser()
        path = (raw if raw.is_absolute() else self.home / raw).resolve()
        if not any(path == root or path.is_relative_to(root) for root in self.roots):
            allowed = ", ".join(str(r) for r in self.roots)
            raise InputError(f"{what}: {text} is outside the folders this dashboard may read ({allowed})")
        if must_exist and not path.exists():
            raise InputError(f"{what}: {text} does not exist")
        return path

    def shown(self, path: Path) -> str:
        """A path as a person reads it: relative to the workspace when inside it."""
        path = Path(path)
        return str(path.relative_to(self.home)) if path.is_relative_to(self.home) else str(path)


def safe_name(name: str, what: str = "name") -> str:
    """A file or queue name a person chose: letters, digits, dot, dash and underscore, never a path."""
    if not SAFE_NAME.match(name or "") or ".." in name:
        raise InputError(
            f"{what}: {name!r} is not allowed; use 1-100 letters, digits, '.', '-' or '_' (starting with a letter "
            "or digit)"
        )
    return name
