"""Read and check text-generation data in the formats the big tools use (no torch here).

Source formats, told apart by their keys (``data.format: auto``) or named:

  chat               OpenAI chat: {"messages": [{"role", "content", "weight"?}]}; content a string or text parts
  sharegpt           {"conversations": [{"from": human|gpt|system, "value"}], "system"?}
  alpaca             {"instruction", "input"?, "output", "system"?}
  conversational     TRL's {"prompt": [messages], "completion": [messages]}
  prompt-completion  {"prompt": "...", "completion": "..."}
  text               {"text": "..."} rows, or a .txt/.md file of documents separated by blank lines

in JSON lines, a .json array, or a Hugging Face dataset folder written by ``save_to_disk``. Every chat-like
format becomes messages ``{"role", "content"}`` (``"weight": 0`` on assistant turns that carry no loss: OpenAI's
weight 0, and the assistant turns inside a conversational prompt); prompt/completion pairs keep their raw form and
documents become ``{"text"}``, because those are not chats and a chat template must not be forced on them. All
problems of all lines are collected before anything is raised; one file holds one format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunesmith.data.readers import decode_text, is_hub_dataset, parse_json_rows, read_hub_dataset, read_saved_dataset
from tunesmith.data.tools import check_tools, with_tools
from tunesmith.data.validate import DataReport, Examples, check_duplicates, check_leakage, lines_text
from tunesmith.files import not_found

ROLES = ("system", "user", "assistant")
# source format -> what it becomes (what the model is trained and served on)
FORMATS = {"chat": "chat", "sharegpt": "chat", "alpaca": "chat", "conversational": "chat",
           "prompt-completion": "prompt-completion", "text": "text"}  # fmt: skip
TEXT_SUFFIXES = {".txt", ".md", ".text"}
JSONL_SUFFIXES = {".jsonl", ".json"}
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
KEYS_OF = {"chat": "messages", "sharegpt": "conversations", "alpaca": "instruction + output",
           "conversational": "prompt + completion as message lists", "prompt-completion": "prompt + completion",
           "text": "text"}  # fmt: skip


def row_format(obj: dict[str, Any]) -> str | None:
    """The source format a row's keys name, or None."""
    if "messages" in obj:
        return "chat"
    if "conversations" in obj:
        return "sharegpt"
    if "instruction" in obj and "output" in obj:
        return "alpaca"
    if "prompt" in obj and "completion" in obj:
        lists = isinstance(obj["prompt"], list) or isinstance(obj["completion"], list)
        return "conversational" if lists else "prompt-completion"
    if "text" in obj:
        return "text"
    return None


def detect_format(path: str, rows: list[tuple[int, dict[str, Any]]], report: DataReport) -> str | None:
    """The one source format of a file's rows; a row in no known format, or a file mixing formats, is an error."""
    by_kind: dict[str, list[int]] = {}
    for line, obj in rows:
        kind = row_format(obj)
        if kind is None:
            allowed = "; ".join(f"{k}: {v}" for k, v in KEYS_OF.items())
            report.add("error", "unknown_format", f"no known format in keys {', '.join(obj) or 'none'} "
                       f"(formats by their keys: {allowed})", path, line)  # fmt: skip
            continue
        by_kind.setdefault(kind, []).append(line)
    if len(by_kind) > 1:
        parts = "; ".join(f"{k} on {lines_text(v)}" for k, v in sorted(by_kind.items(), key=lambda kv: -len(kv[1])))
        first = min(min(v) for v in by_kind.values())
        report.add("error", "mixed_formats", f"one format per file, found several: {parts}", path, first)
        return None
    return next(iter(by_kind), None)


def _read_lines(path: str, report: DataReport) -> tuple[list[tuple[int, Any]], str] | None:
    """(line number, parsed JSON) for every non-blank line, plus the file's sha256; problems go to report."""
    import hashlib

    p = Path(path)
    if is_hub_dataset(path) or p.is_dir():
        rows, _, digest, problems = read_hub_dataset(path) if is_hub_dataset(path) else read_saved_dataset(p)
        report.problems.extend(problems)
        return (list(enumerate(rows, start=1)), digest) if not problems else None
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
    out, problems = parse_json_rows(path, text, objects_only=False)
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


def _content(value: Any) -> str | None:
    """A message's text: a string, or OpenAI's list of text parts joined; None for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(p, dict) and p.get("type") == "text"
                                                 and isinstance(p.get("text"), str) for p in value):  # fmt: skip
        return "".join(p["text"] for p in value)
    return None


def _check_messages(msgs: Any, path: str, line: int, report: DataReport, field: str,
                    keys: tuple[str, str] = ("role", "content"), roles: dict[str, str] | None = None,
                    prompt_only: bool = False) -> list[dict[str, Any]] | None:  # fmt: skip
    """Messages as ``{"role", "content"}`` (``"weight": 0`` where no loss), every problem reported with the source's
    own field names: ``keys`` are its role and content keys, ``roles`` maps its role names."""
    if not isinstance(msgs, list) or not msgs:
        report.add("error", "bad_messages", f"{field!r} must be a non-empty list of messages", path, line, field)
        return None
    role_key, content_key = keys
    roles = roles or {r: r for r in ROLES}
    ok, clean = True, []
    for j, m in enumerate(msgs):
        where = f"{field}[{j}]"
        if not isinstance(m, dict):
            report.add("error", "bad_message", f"expected an object, got {type(m).__name__}", path, line, where)
            ok = False
            continue
        calls = _tool_calls(m, path, line, report, where) if "tool_calls" in m else []
        if calls is None:
            ok = False
            continue
        role = "tool" if role_key == "role" and m.get("role") == "tool" else roles.get(m.get(role_key))
        content = _content(m.get(content_key))
        if role is None:
            allowed = ", ".join([*roles, "tool"] if role_key == "role" else roles)
            report.add("error", "unknown_role", f"{role_key} {m.get(role_key)!r} is not allowed; allowed: "
                       f"{allowed}", path, line, f"{where}.{role_key}")  # fmt: skip
            ok = False
        if calls and role != "assistant":
            report.add("error", "tool_message", "only an assistant message makes tool calls", path, line, where)
            ok = False
        if calls and m.get(content_key) in (None, ""):
            content = ""  # a turn that only calls tools
        elif content is None:
            got = m.get(content_key)
            kind = "missing" if got is None else f"not text or text parts ({type(got).__name__})"
            report.add("error", "bad_content", f"{content_key} is {kind}", path, line, f"{where}.{content_key}")
            ok = False
        elif not content.strip():
            report.add("error", "empty_content", f"{content_key} is empty", path, line, f"{where}.{content_key}")
            ok = False
        weight = m.get("weight", 1)
        if weight not in (0, 1) or isinstance(weight, bool):
            report.add("error", "bad_weight", f"weight is {weight!r}; allowed: 0 (no loss) or 1", path, line,
                       f"{where}.weight")  # fmt: skip
            ok = False
        message: dict[str, Any] = {"role": role, "content": content}
        if calls:
            message["tool_calls"] = calls
        if weight == 0 or (prompt_only and role == "assistant"):
            message["weight"] = 0
        clean.append(message)
    if not ok:
        return None
    if any(m["role"] == "system" for m in clean[1:]):
        report.add("error", "system_position", "a system message may only come first", path, line, field)
        return None
    return clean


def _tool_calls(m: dict[str, Any], path: str, line: int, report: DataReport, where: str) -> list[dict] | None:
    """OpenAI's assistant ``tool_calls`` as ``[{"name", "arguments"}]`` (arguments parsed from their JSON text), or
    None with the problem reported."""
    calls = m["tool_calls"]
    out = []
    for k, call in enumerate(calls if isinstance(calls, list) and calls else [None]):
        fn = call.get("function") if isinstance(call, dict) else None
        name = fn.get("name") if isinstance(fn, dict) else None
        args = fn.get("arguments", "{}") if isinstance(fn, dict) else None
        if isinstance(args, str):
            try:
                args = json.loads(args or "{}")
            except json.JSONDecodeError:
                args = None
        if not isinstance(name, str) or not name or not isinstance(args, dict):
            report.add("error", "tool_message", "a tool call needs {type: function, function: {name, arguments: "
                       "a JSON object}}", path, line, f"{where}.tool_calls[{k}]")  # fmt: skip
            return None
        out.append({"name": name, "arguments": args})
    return out


def _trained(messages: list[dict[str, Any]], path: str, line: int, report: DataReport, field: str) -> bool:
    if any(m["role"] == "assistant" and m.get("weight", 1) for m in messages):
        return True
    report.add("error", "no_assistant", "no assistant turn with loss, so nothing to learn from", path, line, field)
    return False


def _from_chat(obj: dict[str, Any], path: str, line: int, report: DataReport) -> dict[str, Any] | None:
    if "messages" not in obj:
        keys = ", ".join(obj) or "none"
        report.add("error", "missing_messages", f"no 'messages' key (keys here: {keys})", path, line, "messages")
        return None
    msgs = _check_messages(obj["messages"], path, line, report, "messages")
    if "tools" in obj:  # the functions the conversation offers: written into its system message (data/tools.py)
        problem = check_tools(obj["tools"])
        if problem is not None:
            report.add("error", "bad_tools", problem, path, line, "tools")
            return None
        msgs = with_tools(msgs, obj["tools"]) if msgs else msgs
    return {"messages": msgs} if msgs and _trained(msgs, path, line, report, "messages") else None


def _from_sharegpt(obj: dict[str, Any], path: str, line: int, report: DataReport) -> dict[str, Any] | None:
    msgs = _check_messages(obj.get("conversations"), path, line, report, "conversations", ("from", "value"),
                           SHAREGPT_ROLES)  # fmt: skip
    if msgs is None:
        return None
    system = obj.get("system")
    if system is not None:
        if not isinstance(system, str) or not system.strip() or msgs[0]["role"] == "system":
            report.add("error", "bad_content", "system must be non-empty text, given once", path, line, "system")
            return None
        msgs = [{"role": "system", "content": system}, *msgs]
    return {"messages": msgs} if _trained(msgs, path, line, report, "conversations") else None


def _from_alpaca(obj: dict[str, Any], path: str, line: int, report: DataReport) -> dict[str, Any] | None:
    ok = True
    for key, required in (("instruction", True), ("output", True), ("input", False), ("system", False)):
        value = obj.get(key)
        if value is None and not required:
            continue
        if not isinstance(value, str) or (required and not value.strip()):
            kind = "missing" if value is None else "empty" if isinstance(value, str) else type(value).__name__
            report.add("error", "bad_content", f"{key} is {kind}; expected text", path, line, key)
            ok = False
    if not ok:
        return None
    user = obj["instruction"] + (f"\n\n{obj['input']}" if (obj.get("input") or "").strip() else "")
    system = [{"role": "system", "content": obj["system"]}] if (obj.get("system") or "").strip() else []
    return {"messages": [*system, {"role": "user", "content": user}, {"role": "assistant", "content": obj["output"]}]}


def _from_conversational(obj: dict[str, Any], path: str, line: int, report: DataReport) -> dict[str, Any] | None:
    prompt = _check_messages(obj.get("prompt"), path, line, report, "prompt", prompt_only=True)
    completion = _check_messages(obj.get("completion"), path, line, report, "completion")
    if prompt is None or completion is None:
        return None
    msgs = prompt + completion
    if any(m["role"] == "system" for m in msgs[1:]):
        report.add("error", "system_position", "a system message may only come first", path, line, "completion")
        return None
    return {"messages": msgs} if _trained(msgs, path, line, report, "completion") else None


def _from_pair(obj: dict[str, Any], path: str, line: int, report: DataReport) -> dict[str, Any] | None:
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


def _from_text(obj: dict[str, Any], path: str, line: int, report: DataReport) -> dict[str, Any] | None:
    value = obj.get("text")
    if not isinstance(value, str) or not value.strip():
        kind = "missing" if value is None else "empty" if isinstance(value, str) else type(value).__name__
        report.add("error", "bad_content", f"text is {kind}; expected a document", path, line, "text")
        return None
    return {"text": value}


CONVERTERS = {"chat": _from_chat, "sharegpt": _from_sharegpt, "alpaca": _from_alpaca,
              "conversational": _from_conversational, "prompt-completion": _from_pair, "text": _from_text}  # fmt: skip


def read_split(path: str, fmt: str, report: DataReport) -> tuple[Examples | None, str, str]:
    """One file or dataset folder -> (examples, the format they are trained as: chat, prompt-completion or text,
    sha256). ``fmt`` is data.format (a source format, or auto); problems of every line go into ``report``, and the
    source format found goes into its stats."""
    got = _read_lines(path, report)
    if got is None:
        return None, fmt, ""
    parsed, digest = got
    suffix = Path(path).suffix.lower()
    if not Path(path).is_dir() and not is_hub_dataset(path) and suffix not in TEXT_SUFFIXES | JSONL_SUFFIXES:
        allowed = ", ".join(sorted(TEXT_SUFFIXES | JSONL_SUFFIXES))
        report.add("error", "format", f"unsupported file type {suffix!r}; allowed: {allowed}, or a dataset folder "
                   "written by save_to_disk", path)  # fmt: skip
        return None, fmt, digest
    if suffix in TEXT_SUFFIXES:
        if fmt not in ("auto", "text"):
            report.add("error", "format", f"data.format is {fmt!r} but this is a plain-text file", path)
            return None, fmt, digest
        docs, lines = _text_documents(path, parsed[0][1])
        if not docs:
            report.add("error", "empty_file", "the file holds no text", path)
            return None, "text", digest
        report.stats.setdefault("source_format", "text (plain-text documents)")
        return _examples(path, docs, lines), "text", digest
    objects = []
    for line, obj in parsed:
        if not isinstance(obj, dict):
            report.add("error", "not_object", f"expected a JSON object, got {type(obj).__name__}", path, line)
        else:
            objects.append((line, obj))
    if not parsed:
        report.add("error", "empty_file", "the file holds no data rows", path)
        return None, fmt, digest
    source = detect_format(path, objects, report) if fmt == "auto" else fmt
    if source is None:
        return None, fmt, digest
    how = f"found by its keys ({KEYS_OF[source]})" if fmt == "auto" else "data.format"
    report.stats.setdefault("source_format", f"{source}, {how}")
    records, lines = [], []
    for line, obj in objects:
        rec = CONVERTERS[source](obj, path, line, report)
        if rec is not None:
            records.append(rec)
            lines.append(line)
    return _examples(path, records, lines), FORMATS[source], digest


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
