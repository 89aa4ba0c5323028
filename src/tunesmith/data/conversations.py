"""Read and check text-generation data: chat JSONL, prompt/completion JSONL and plain text (no torch here).

Every example becomes a list of messages ``{"role", "content"}``; prompt/completion pairs keep their raw form
(``{"prompt", "completion"}``) and plain-text documents become ``{"text"}``, because those are not chats and a
chat template must not be forced on them. All problems of all lines are collected before anything is raised.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from tunesmith.data.readers import decode_text, parse_jsonl
from tunesmith.data.validate import DataReport, Examples, check_duplicates, check_leakage, lines_text
from tunesmith.files import not_found

ROLES = ("system", "user", "assistant")
FORMATS = ("chat", "prompt-completion", "text")
TEXT_SUFFIXES = {".txt", ".md", ".text"}
JSONL_SUFFIXES = {".jsonl", ".json"}


def detect_format(path: str, rows: list[dict[str, Any]]) -> str:
    if Path(path).suffix.lower() in TEXT_SUFFIXES:
        return "text"
    votes = Counter("chat" if "messages" in r else "prompt-completion" if "prompt" in r else "?" for r in rows)
    return "prompt-completion" if votes["prompt-completion"] > votes["chat"] else "chat"


def _read_lines(path: str, report: DataReport) -> tuple[list[tuple[int, Any]], str] | None:
    """(line number, parsed JSON) for every non-blank line, plus the file's sha256; problems go to report."""
    import hashlib

    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        report.add("error", "unreadable", not_found(p), path)
        return None
    except OSError as exc:
        report.add("error", "unreadable", f"cannot be read: {exc.strerror}", path)
        return None
    from tunesmith.errors import DataError

    try:
        text = decode_text(path, data)
    except DataError as exc:
        report.problems.extend(exc.problems)
        return None
    digest = hashlib.sha256(data).hexdigest()
    if p.suffix.lower() in TEXT_SUFFIXES:
        return [(0, text)], digest
    out, problems = parse_jsonl(path, text, objects_only=False)
    report.problems.extend(problems)
    return out, digest


def _text_documents(path: str, text: str) -> tuple[list[dict[str, str]], list[int]]:
    """Documents are separated by one or more blank lines; each remembers its first line."""
    docs, lines, current, start = [], [], [], 0
    for i, line in enumerate(text.splitlines() + [""], start=1):
        if line.strip():
            if not current:
                start = i
            current.append(line)
        elif current:
            docs.append({"text": "\n".join(current)})
            lines.append(start)
            current = []
    return docs, lines


def _check_chat(obj: dict[str, Any], path: str, line: int, report: DataReport) -> dict[str, Any] | None:
    msgs = obj.get("messages")
    if "messages" not in obj:
        keys = ", ".join(obj) or "none"
        report.add("error", "missing_messages", f"no 'messages' key (keys here: {keys})", path, line, "messages")
        return None
    if not isinstance(msgs, list) or not msgs:
        report.add("error", "bad_messages", "'messages' must be a non-empty list of {role, content}", path, line)
        return None
    ok, clean = True, []
    for j, m in enumerate(msgs):
        where = f"messages[{j}]"
        if not isinstance(m, dict):
            report.add("error", "bad_message", f"expected an object, got {type(m).__name__}", path, line, where)
            ok = False
            continue
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            report.add(
                "error",
                "unknown_role",
                f"role {role!r} is not allowed; allowed: {', '.join(ROLES)}",
                path,
                line,
                f"{where}.role",
            )
            ok = False
        if not isinstance(content, str):
            kind = "missing" if content is None else f"not text ({type(content).__name__})"
            report.add("error", "bad_content", f"content is {kind}", path, line, f"{where}.content")
            ok = False
        elif not content.strip():
            report.add("error", "empty_content", "content is empty", path, line, f"{where}.content")
            ok = False
        clean.append({"role": role, "content": content})
    if ok and not any(m["role"] == "assistant" for m in clean):
        report.add("error", "no_assistant", "no assistant turn, so nothing to learn from", path, line, "messages")
        ok = False
    if ok and any(m["role"] == "system" for m in clean[1:]):
        report.add("error", "system_position", "a system message may only come first", path, line, "messages")
        ok = False
    return {"messages": clean} if ok else None


def _check_pair(obj: dict[str, Any], path: str, line: int, report: DataReport) -> dict[str, Any] | None:
    ok = True
    for key in ("prompt", "completion"):
        value = obj.get(key)
        if key not in obj:
            report.add("error", "missing_field", f"no {key!r} key (keys here: {', '.join(obj)})", path, line, key)
            ok = False
        elif not isinstance(value, str):
            report.add("error", "bad_content", f"{key} is not text ({type(value).__name__})", path, line, key)
            ok = False
        elif not value.strip():
            report.add("error", "empty_content", f"{key} is empty", path, line, key)
            ok = False
    return {"prompt": obj["prompt"], "completion": obj["completion"]} if ok else None


def read_split(path: str, fmt: str, report: DataReport) -> tuple[Examples | None, str, str]:
    """One file -> (examples, format, sha256). Problems of every line go into ``report``."""
    got = _read_lines(path, report)
    if got is None:
        return None, fmt, ""
    parsed, digest = got
    if Path(path).suffix.lower() not in TEXT_SUFFIXES | JSONL_SUFFIXES:
        allowed = ", ".join(sorted(TEXT_SUFFIXES | JSONL_SUFFIXES))
        report.add("error", "format", f"unsupported file type {Path(path).suffix!r}; allowed: {allowed}", path)
        return None, fmt, digest
    if Path(path).suffix.lower() in TEXT_SUFFIXES:
        if fmt not in ("auto", "text"):
            report.add("error", "format", f"data.format is {fmt!r} but this is a plain-text file", path)
            return None, fmt, digest
        docs, lines = _text_documents(path, parsed[0][1])
        if not docs:
            report.add("error", "empty_file", "the file holds no text", path)
            return None, "text", digest
        return _examples(path, docs, lines), "text", digest
    objects = []
    for line, obj in parsed:
        if not isinstance(obj, dict):
            report.add("error", "not_object", f"expected a JSON object, got {type(obj).__name__}", path, line)
        else:
            objects.append((line, obj))
    if not parsed:
        report.add("error", "empty_file", "the file holds no data lines", path)
        return None, fmt, digest
    if fmt == "auto":
        fmt = detect_format(path, [o for _, o in objects])
    if fmt == "text":
        report.add("error", "format", "data.format is 'text' but this is a JSONL file", path)
        return None, fmt, digest
    check = _check_chat if fmt == "chat" else _check_pair
    records, lines = [], []
    for line, obj in objects:
        rec = check(obj, path, line, report)
        if rec is not None:
            records.append(rec)
            lines.append(line)
    return _examples(path, records, lines), fmt, digest


def _examples(path: str, records: list[dict[str, Any]], lines: list[int]) -> Examples:
    keys = [json.dumps(r, sort_keys=True, ensure_ascii=False) for r in records]
    return Examples(path, records, [""] * len(records), lines, keys=keys)


def check_generation_data(train: Examples, validation: Examples | None, report: DataReport, min_examples: int) -> None:
    """Counts, duplicates and train/validation overlap (the labelled checks, without classes)."""
    report.stats["train_examples"] = len(train)
    if len(train) < min_examples:
        report.add(
            "error",
            "too_few_examples",
            f"{len(train)} usable training example(s); at least {min_examples} needed (data.min_examples)",
            train.source,
        )
    elif len(train) < 100:
        report.add("warning", "few_examples", f"only {len(train)} training examples; 100+ recommended", train.source)
    for split in (train, validation):
        if split is not None:
            check_duplicates(split, report)
    if validation is not None:
        report.stats["validation_examples"] = len(validation)
        if not len(validation):
            report.add("error", "too_few_examples", "no usable validation examples", validation.source)
        check_leakage(train, validation, report)


def describe_lines(lines: list[int]) -> str:
    return lines_text(lines)
