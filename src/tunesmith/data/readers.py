"""Read CSV, JSONL and Parquet into rows that remember the line they came from."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.errors import DataError, Problem
from tunesmith.files import jsonl_lines, not_found

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}

# One row (a JSONL line, a CSV field) holds at most this many characters. Inputs are cut to a few hundred tokens
# anyway; a 50 MB row cost gigabytes of memory in parsing and tokenizing before it was cut.
MAX_ROW_CHARS = 2_000_000
csv.field_size_limit(MAX_ROW_CHARS)  # the csv module's default (131,072) refused ordinary long documents
SURROGATE = "holds a lone surrogate escape (such as \\ud800), which is not a character: fix the text's encoding"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


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
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        names = ", ".join(repr(h) for h in repeated)
        problems.append(
            Problem("error", "duplicate_column", f"the header names {names} more than once; name each column once",
                    path, 1)
        )  # fmt: skip
        return header, [], [], problems
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
        why = f"a field is longer than {MAX_ROW_CHARS:,} characters" if "field larger" in str(exc) else str(exc)
        problems.append(Problem("error", "malformed_csv", f"CSV cannot be parsed: {why}", path, start))
    return header, rows, lines, problems


def parse_jsonl(path: str, text: str, objects_only: bool = True) -> tuple[list[tuple[int, Any]], list[Problem]]:
    """(line number, parsed value) of every non-blank line of a JSON-lines text, and a problem for each line that
    is not JSON (or, with ``objects_only``, not a JSON object): the one JSONL line parser of user data."""
    out, problems = [], []
    for i, line in jsonl_lines(text):
        if len(line) > MAX_ROW_CHARS:  # refused before it is parsed
            problems.append(_too_large(len(line), path, i))
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem("error", "not_json", f"not valid JSON: {exc.msg} (column {exc.colno})", path, i))
            continue
        problem = _row_problem(obj, bool(_SURROGATE_ESCAPE.search(line)), objects_only, path, i)
        if problem is not None:
            problems.append(problem)
        else:
            out.append((i, obj))
    return out, problems


def _too_large(chars: int, path: str, line: int) -> Problem:
    return Problem("error", "row_too_large", f"{chars:,} characters; a row holds at most {MAX_ROW_CHARS:,}", path, line)


def _row_problem(obj: Any, escaped: bool, objects_only: bool, path: str, line: int) -> Problem | None:
    """What is wrong with a parsed row (``escaped``: its JSON text holds a surrogate escape): a lone surrogate, or
    not an object."""
    if escaped and (where := _lone_surrogate(obj)) is not None:
        return Problem("error", "invalid_text", f"{where} {SURROGATE}", path, line)
    if objects_only and not isinstance(obj, dict):
        return Problem("error", "not_object", f"expected a JSON object, got {type(obj).__name__}", path, line)
    return None


def parse_json_rows(path: str, text: str, objects_only: bool = True) -> tuple[list[tuple[int, Any]], list[Problem]]:
    """JSON lines, or, for a ``.json`` file that holds one JSON array, its elements: (line where the row starts,
    value) per row, with the same per-row checks as ``parse_jsonl``."""
    if Path(path).suffix.lower() == ".json" and text.lstrip().startswith("["):
        return _parse_array(path, text, objects_only)
    return parse_jsonl(path, text, objects_only)


def _parse_array(path: str, text: str, objects_only: bool) -> tuple[list[tuple[int, Any]], list[Problem]]:
    decoder = json.JSONDecoder()
    out: list[tuple[int, Any]] = []
    problems: list[Problem] = []
    counted, line = 0, 1

    def line_at(pos: int) -> int:
        nonlocal counted, line
        line += text.count("\n", counted, pos)
        counted = pos
        return line

    def skip(pos: int) -> int:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        return pos

    pos, first = skip(0) + 1, True
    while True:
        pos = skip(pos)
        if pos < len(text) and text[pos] == "]":
            if skip(pos + 1) < len(text):
                problems.append(Problem("error", "not_json", "text after the closing ]", path, line_at(pos)))
            return out, problems
        if not first:
            if pos >= len(text) or text[pos] != ",":
                problems.append(Problem("error", "not_json", "expected ',' or ']' between rows of the JSON array",
                                        path, line_at(min(pos, len(text)))))  # fmt: skip
                return out, problems
            pos = skip(pos + 1)
        first = False
        start = line_at(pos)
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            problems.append(Problem("error", "not_json", f"not valid JSON: {exc.msg}", path, line_at(exc.pos)))
            return out, problems
        problem = (_too_large(end - pos, path, start) if end - pos > MAX_ROW_CHARS
                   else _row_problem(obj, bool(_SURROGATE_ESCAPE.search(text, pos, end)), objects_only, path,
                                     start))  # fmt: skip
        if problem is not None:
            problems.append(problem)
        else:
            out.append((start, obj))
        pos = end


def read_saved_dataset(folder: Path) -> tuple[list[dict[str, Any]], list[str], str, list[Problem]]:
    """A Hugging Face dataset written by ``save_to_disk`` (Arrow stream files beside ``state.json``), read with
    pyarrow: (rows, columns, sha256 of the Arrow files, problems). A DatasetDict folder names its splits."""
    import pyarrow as pa

    name = str(folder)
    if (folder / "dataset_dict.json").is_file():
        splits = sorted(d.name for d in folder.iterdir() if d.is_dir())
        return [], [], "", [Problem("error", "format", f"a dataset with splits ({', '.join(splits)}): name one split's "
                                    f"folder, e.g. {folder / (splits[0] if splits else 'train')}", name)]  # fmt: skip
    shards = sorted(folder.glob("*.arrow"))
    if not shards:
        return [], [], "", [Problem("error", "format", "a folder without Arrow files: give a data file, or a "
                                    "dataset folder written by save_to_disk", name)]  # fmt: skip
    digest, rows, columns = hashlib.sha256(), [], []
    for shard in shards:
        data = shard.read_bytes()
        digest.update(data)
        try:
            table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
        except pa.ArrowInvalid as exc:
            return [], [], "", [Problem("error", "unreadable", f"{shard.name}: not an Arrow stream ({exc})", name)]
        columns = table.column_names
        rows += table.to_pylist()
    return rows, columns, digest.hexdigest(), []


HUB = "hf://"


def is_hub_dataset(path: str | Path) -> bool:
    return str(path).startswith(HUB)


def read_hub_dataset(spec: str) -> tuple[list[dict[str, Any]], list[str], str, list[Problem]]:
    """A dataset on the Hugging Face Hub, ``hf://OWNER/NAME`` (its train split) or ``hf://OWNER/NAME#SPLIT``,
    through ``datasets.load_dataset`` (downloaded where a network exists, else read from the local cache):
    (rows, columns, the dataset's fingerprint, problems)."""
    repo, _, split = spec[len(HUB) :].partition("#")
    split = split or "train"
    if repo.count("/") != 1 or not all(repo.split("/")):
        return [], [], "", [Problem("error", "format", f"{spec!r}: a hub dataset is named hf://OWNER/NAME or "
                                    "hf://OWNER/NAME#SPLIT", spec)]  # fmt: skip
    try:
        import datasets
    except ImportError:
        return [], [], "", [Problem("error", "unreadable", "reading hub datasets needs the datasets package "
                                    "(pip install datasets)", spec)]  # fmt: skip
    try:
        ds = datasets.load_dataset(repo, split=split)
    except Exception as exc:  # offline without a cached copy, an unknown repo or split: the library's reason
        offline = any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
                      for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))  # fmt: skip
        hint = (" (downloads are off and it is not in the local cache: load it where a network exists, or save it "
                "with save_to_disk and name that folder)") if offline else ""  # fmt: skip
        reason = " ".join(str(exc).split())[:300]
        return [], [], "", [Problem("error", "unreadable", f"cannot load split {split!r} of {repo}: {reason}{hint}",
                                    spec)]  # fmt: skip
    return ds.to_list(), list(ds.column_names), str(ds._fingerprint), []


def _lone_surrogate(value: Any, where: str = "a value") -> str | None:
    """Where in a parsed JSON value a string holds half of a UTF-16 pair (json.loads lets "\\ud800" through; no
    tokenizer or file can take it), or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where
    elif isinstance(value, dict):
        for key, item in value.items():
            found = _lone_surrogate(key, "a key") or _lone_surrogate(item, f"field {key!r}" if where == "a value"
                                                                        else where)  # fmt: skip
            if found:
                return found
    elif isinstance(value, list):
        for item in value:
            if found := _lone_surrogate(item, where):
                return found
    return None


def _read_jsonl(path: str, text: str) -> tuple[list[str], list[dict], list[int], list[Problem]]:
    parsed, problems = parse_json_rows(path, text)
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
    if is_hub_dataset(name) or p.is_dir():
        rows, columns, fingerprint, problems = read_hub_dataset(name) if is_hub_dataset(name) else read_saved_dataset(p)
        if problems:
            raise DataError(problems)
        return Table(name, columns, rows, list(range(1, len(rows) + 1)), fingerprint, unit="row")
    fmt = FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise DataError(
            [
                Problem(
                    "error",
                    "format",
                    f"unsupported file type {p.suffix!r}; allowed: .csv, .jsonl, .json, .parquet, or a "
                    "dataset folder written by save_to_disk",
                    name,
                )
            ]
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
