"""Read CSV, JSONL and Parquet into rows that remember the line they came from."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.errors import DataError, Problem
from tunesmith.files import jsonl_lines, not_found

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


@dataclass
class Table:
    """Rows of one file; ``lines[i]`` is where row i starts in the file (1-based, header is line 1)."""

    path: str
    columns: list[str]
    rows: list[dict[str, Any]]
    lines: list[int]
    fingerprint: str
    unit: str = "line"  # parquet has rows, not lines


def decode_text(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            [
                Problem(
                    "error",
                    "encoding",
                    f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); save the file as UTF-8",
                    path,
                    line,
                )
            ]
        ) from None


def _read_csv(path: str, text: str) -> tuple[list[str], list[dict], list[int], list[Problem]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    problems: list[Problem] = []
    try:
        header = next(reader)
    except StopIteration:
        return [], [], [], [Problem("error", "empty_file", "the file is empty", path, 1)]
    header = [h.strip() for h in header]
    rows, lines = [], []
    start = reader.line_num + 1
    try:
        for record in reader:
            if record and any(cell.strip() for cell in record):
                if len(record) != len(header):
                    problems.append(
                        Problem(
                            "error",
                            "malformed_row",
                            f"row has {len(record)} fields, the header has {len(header)}",
                            path,
                            start,
                        )
                    )
                else:
                    rows.append(dict(zip(header, record)))
                    lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        problems.append(Problem("error", "malformed_csv", f"CSV cannot be parsed: {exc}", path, start))
    return header, rows, lines, problems


def parse_jsonl(path: str, text: str, objects_only: bool = True) -> tuple[list[tuple[int, Any]], list[Problem]]:
    """(line number, parsed value) of every non-blank line of a JSON-lines text, and a problem for each line that
    is not JSON (or, with ``objects_only``, not a JSON object): the one JSONL line parser of user data."""
    out, problems = [], []
    for i, line in jsonl_lines(text):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem("error", "not_json", f"not valid JSON: {exc.msg} (column {exc.colno})", path, i))
            continue
        if objects_only and not isinstance(obj, dict):
            problems.append(
                Problem("error", "not_object", f"expected a JSON object, got {type(obj).__name__}", path, i)
            )
            continue
        out.append((i, obj))
    return out, problems


def _read_jsonl(path: str, text: str) -> tuple[list[str], list[dict], list[int], list[Problem]]:
    parsed, problems = parse_jsonl(path, text)
    columns: dict[str, None] = {}
    for _, obj in parsed:
        columns.update(dict.fromkeys(obj))
    return list(columns), [obj for _, obj in parsed], [i for i, _ in parsed], problems


def _read_parquet(path: str) -> tuple[list[str], list[dict], list[int], list[Problem]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        return [], [], [], [Problem("error", "unreadable", f"not a readable Parquet file: {exc}", path)]
    rows = table.to_pylist()
    return table.column_names, rows, list(range(1, len(rows) + 1)), []


def read_table(path: str | Path) -> Table:
    """Read one data file; every file-level problem is raised together as a DataError."""
    p = Path(path)
    name = str(path)
    fmt = FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise DataError(
            [Problem("error", "format", f"unsupported file type {p.suffix!r}; allowed: .csv, .jsonl, .parquet", name)]
        )
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise DataError([Problem("error", "unreadable", not_found(p), name)]) from None
    except OSError as exc:
        raise DataError([Problem("error", "unreadable", f"cannot be read: {exc.strerror}", name)]) from None
    fingerprint = hashlib.sha256(data).hexdigest()
    if fmt == "parquet":
        columns, rows, lines, problems = _read_parquet(name)
    else:
        text = decode_text(name, data)
        reader = _read_csv if fmt == "csv" else _read_jsonl
        columns, rows, lines, problems = reader(name, text)
    if not rows and not problems:
        problems.append(Problem("error", "empty_file", "the file holds no data rows", name))
    if problems:
        raise DataError(problems)
    return Table(name, columns, rows, lines, fingerprint, unit="row" if fmt == "parquet" else "line")
