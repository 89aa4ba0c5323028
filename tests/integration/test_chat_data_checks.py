"""Every generation-data check has a failing case: message, file, line and field; nothing written when fatal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import fatal_problems, llm_config, make_chats, problems_named, write_jsonl
from tunesmith import api


def _cfg(tmp_path: Path, model: Path, train: Path, val: Path | None, **kw) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(llm_config(model, train, val, tmp_path / "runs", **kw)))
    return path


def _fatal(tmp_path, model, cache_dir, train, val, capsys, **kw):
    return fatal_problems(_cfg(tmp_path, model, train, val, **kw), tmp_path / "runs", cache_dir, capsys)


def _find(problems, check):
    return problems_named(problems, check)[0]


def test_every_line_problem_is_reported_together(tmp_path, tiny_llama, cache_dir, capsys):
    chats = make_chats(40, 0)
    lines = [json.dumps(c) for c in chats]
    lines[1] = "{not json"
    lines[2] = json.dumps(["a", "list"])
    lines[3] = json.dumps({"conversation": []})
    lines[4] = json.dumps({"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}]})
    lines[5] = json.dumps({"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "x"}]})
    lines[6] = json.dumps({"messages": [{"role": "user", "content": "only a question"}]})
    lines[7] = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": 3}]})
    lines[8] = json.dumps({"messages": "hello"})
    lines[9] = json.dumps(
        {
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "system", "content": "s"},
                {"role": "assistant", "content": "a"},
            ]
        }
    )
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(lines) + "\n")
    problems = _fatal(tmp_path, tiny_llama, cache_dir, train, None, capsys)
    expect = {
        "not_json": (2, None),
        "not_object": (3, None),
        "unknown_format": (4, None),  # no key of any known format
        "unknown_role": (5, "messages[0].role"),
        "empty_content": (6, "messages[0].content"),
        "no_assistant": (7, "messages"),
        "bad_content": (8, "messages[1].content"),
        "bad_messages": (9, "messages"),
        "system_position": (10, "messages"),
    }
    for check, (line, field) in expect.items():
        p = _find(problems, check)
        assert (p.file, p.line, p.field) == (str(train), line, field), check
    assert "system, user, assistant" in _find(problems, "unknown_role").message


def test_prompt_completion_fields_are_checked(tmp_path, tiny_llama, cache_dir, capsys):
    rows = [{"prompt": f"q{i}", "completion": f" a{i}"} for i in range(20)]
    rows[2] = {"prompt": "q"}
    rows[4] = {"prompt": "", "completion": "a"}
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    problems = _fatal(tmp_path, tiny_llama, cache_dir, train, None, capsys)
    missing, empty = _find(problems, "missing_field"), _find(problems, "empty_content")
    assert (missing.line, missing.field) == (3, "completion")
    assert (empty.line, empty.field) == (5, "prompt")


def test_too_few_examples_is_fatal(tmp_path, tiny_llama, cache_dir, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", make_chats(5, 0))
    val = write_jsonl(tmp_path / "val.jsonl", make_chats(3, 1))
    p = _find(_fatal(tmp_path, tiny_llama, cache_dir, train, val, capsys), "too_few_examples")
    assert "5 usable training example(s); at least 8 needed" in p.message


def test_chat_data_needs_a_chat_template(tmp_path, tiny_llama, cache_dir):
    import shutil

    from tunesmith.errors import ConfigError

    model = tmp_path / "no-template"
    shutil.copytree(tiny_llama, model)
    cfg_path = model / "tokenizer_config.json"
    tok_cfg = json.loads(cfg_path.read_text())
    tok_cfg.pop("chat_template", None)
    cfg_path.write_text(json.dumps(tok_cfg))
    (model / "chat_template.jinja").unlink(missing_ok=True)
    train = write_jsonl(tmp_path / "train.jsonl", make_chats(20, 0))
    with pytest.raises(ConfigError, match="no chat template"):
        api.validate(_cfg(tmp_path, model, train, None))


def test_warnings_duplicates_overlap_and_too_long(tmp_path, tiny_llama, cache_dir):
    chats = make_chats(40, 0)
    chats[10] = chats[9]  # duplicate in train
    long_answer = " ".join(["The sky is blue."] * 40)
    chats[12] = {
        "messages": [{"role": "user", "content": "Tell me at length."}, {"role": "assistant", "content": long_answer}]
    }
    val = make_chats(10, 5)
    val[3] = chats[0]  # leaked into validation
    train_p = write_jsonl(tmp_path / "train.jsonl", chats)
    val_p = write_jsonl(tmp_path / "val.jsonl", val)
    report = api.validate(_cfg(tmp_path, tiny_llama, train_p, val_p, train__max_length=48))
    by = {p.check: p for p in report.warnings}
    assert by["duplicates"].line == 11 and by["duplicates"].file == str(train_p)
    assert by["leakage"].line == 4 and by["leakage"].file == str(val_p)
    too_long = by["too_long"]
    assert too_long.line == 13 and "1 example(s) are longer than max_length=48" in too_long.message
    assert "cut to their first 48 tokens" in too_long.message
    tokens = report.stats["tokens"]
    assert tokens["train"]["examples"] == 40 and tokens["train"]["longer_than_max_length"] == 1
    assert tokens["billable_training_tokens"] == tokens["train"]["tokens"] * 3
    assert 0 < tokens["train"]["answer_tokens"] < tokens["train"]["tokens"]

    dropped = api.validate(_cfg(tmp_path, tiny_llama, train_p, val_p, train__max_length=48, data__truncation="drop"))
    msg = next(p for p in dropped.warnings if p.check == "too_long").message
    assert "left out (data.truncation: drop)" in msg
    assert dropped.stats["tokens"]["train"]["left_out"] == 1


def test_plain_text_documents_are_split_not_cut(tmp_path, tiny_llama, cache_dir):
    docs = ["The sky is blue. " * (3 + i % 4) for i in range(30)]
    docs[5] = "The snow is white. " * 60
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(docs) + "\n")
    report = api.validate(_cfg(tmp_path, tiny_llama, corpus, None, train__max_length=64))
    assert report.stats["format"] == "text"
    warn = next(p for p in report.warnings if p.check == "too_long")
    assert "split into pieces of 64 tokens" in warn.message
