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

import yaml


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
    # Only "\n" ends a line: str.splitlines() would also split at U+2028, U+0085 and other characters that JSON
    # allows raw inside a string.
    for i, line in enumerate(text.split("\n"), 1):
        if line.strip():
            yield i, line.removesuffix("\r")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON-lines file the project wrote itself (logs, predictions): no user-facing checks."""
    return [json.loads(line) for _, line in jsonl_lines(Path(path).read_text(encoding="utf-8"))]


def not_found(path: str | Path, what: str = "file not found") -> str:
    """``what``, and for a relative path the folder it was looked for in (the working folder, not the config's)."""
    p = Path(path)
    if p.is_absolute():
        return what
    return f"{what} (a relative path is read from the folder tunesmith runs in: {Path.cwd()})"


class _StrictYamlLoader(yaml.SafeLoader):
    """YAML as a person writes a config: no aliases (``*name`` expands without bound: the "billion laughs" and
    recursive aliases) and no key given twice in one mapping (the later one would silently win)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"aliases (*{event.anchor}) are not allowed: write the value out", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            with contextlib.suppress(TypeError):  # an unhashable key is refused by PyYAML itself
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"{key!r} is given twice (first on line {seen[key] + 1})", key_node.start_mark
                    )
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def read_yaml(text: str) -> Any:
    """A user's YAML (configs, search spaces, ``--set`` values): safe types only, no aliases, no duplicated keys.
    Raises yaml.YAMLError with the line and column."""
    return yaml.load(text, Loader=_StrictYamlLoader)  # noqa: S506 - a SafeLoader subclass
