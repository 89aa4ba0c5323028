"""The recipe suite's converters: real data from packages, written as plain files, with no validation text that
repeats a training one."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from tunesmith.data import suite


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_few_shot_faq_is_under_200_questions_in_8_sections(tmp_path: Path):
    train, val = suite.python_faq(tmp_path, 120, 56)
    tr, va = rows(train), rows(val)
    assert len(tr) + len(va) < 200 and len(tr) >= 100
    assert {r["label"] for r in tr} == {r["label"] for r in va} | {r["label"] for r in tr}
    assert len({r["label"] for r in tr}) == 8
    assert not {r["text"].lower() for r in tr} & {r["text"].lower() for r in va}


def test_long_documents_are_split_by_page_and_balanced(tmp_path: Path):
    train, val = suite.python_docs(tmp_path, 120, 60)
    tr, va = rows(train), rows(val)
    assert np.mean([len(r["text"]) for r in tr]) > 1500  # long: about 2,000 characters a passage
    counts = {lab: sum(r["label"] == lab for r in va) for lab in {r["label"] for r in va}}
    assert len(counts) == 6 and set(counts.values()) == {10}
    assert not {r["text"] for r in tr} & {r["text"] for r in va}
    assert not {r["page"] for r in tr} & {r["page"] for r in va}, "each page on one side (data.group_column)"
    assert ":func:" not in " ".join(r["text"] for r in va + tr)  # roles reduced to their text


def test_the_check_set_has_ten_topics_of_shorter_passages(tmp_path: Path):
    from tunesmith.examples import DATASETS

    train, val = DATASETS["python-docs-topics"](tmp_path, 200, 100, 3)
    tr, va = rows(train), rows(val)
    assert 900 < np.mean([len(r["text"]) for r in tr]) < 1300  # about 1,000 characters a passage
    assert len({r["label"] for r in va}) == 10 and len(va) == 100
    assert not {r["page"] for r in tr} & {r["page"] for r in va}


def test_intents_drop_rare_topics_and_ambiguous_questions(tmp_path: Path):
    train, val = suite.intents(tmp_path, 300, 200)
    tr, va = rows(train), rows(val)
    labels = [r["label"] for r in tr]
    assert min(labels.count(lab) for lab in set(labels)) >= 2 and len(set(labels)) >= 15
    assert not {r["text"].lower() for r in tr} & {r["text"].lower() for r in va}


def test_chat_answers_come_whole_and_digits_as_arrays(tmp_path: Path):
    train, _ = suite.python_faq_chat(tmp_path / "chat", 60, 20)
    first = json.loads(train.read_text(encoding="utf-8").splitlines()[0])
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"] and first["category"]
    assert "<https://" not in train.read_text(encoding="utf-8")  # links reduced to their text
    tr, va = suite.digits(tmp_path / "digits", 100, 50)
    z = np.load(tr)
    assert z["images"].shape == (100, 8, 8) and z["images"].dtype == np.uint8 and z["images"].max() == 255
    assert len(np.load(va)["labels"]) == 50
