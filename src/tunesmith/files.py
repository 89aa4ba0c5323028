"""Writing files so that a crash never leaves a half-written one (JSON, JSON lines, CSV), and reading JSON lines
with their line numbers."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; on success it is fsynced and renamed over ``path``, so
    readers see the old file or the whole new one, never a part. On failure nothing is left behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=2, default=str).encode())


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A CSV file with a header row, written atomically (None cells are empty)."""
    text = io.StringIO()
    w = csv.writer(text)
    w.writerow(header)
    w.writerows(["" if c is None else c for c in r] for r in rows)
    atomic_write_text(path, text.getvalue())


def jsonl_lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) of every non-blank line: what the JSON-lines readers parse, in one place."""
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield i, line


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON-lines file the project wrote itself (logs, predictions): no user-facing checks."""
    return [json.loads(line) for _, line in jsonl_lines(Path(path).read_text(encoding="utf-8"))]


def not_found(path: str | Path, what: str = "file not found") -> str:
    """``what``, and for a relative path the folder it was looked for in (the working folder, not the config's)."""
    p = Path(path)
    if p.is_absolute():
        return what
    return f"{what} (a relative path is read from the folder tunesmith runs in: {Path.cwd()})"
