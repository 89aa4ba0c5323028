"""The selection split: carved from the training data, stratified, capped, and never emptying a rare class."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from tunesmith.data.split import carve_selection, stratified_split
from tunesmith.data.validate import DataReport, Examples


def examples(labels: list[str]) -> Examples:
    texts = [f"text {i}" for i in range(len(labels))]
    return Examples("train.csv", texts, labels, list(range(2, len(labels) + 2)), {}, keys=texts)


def test_rare_classes_keep_their_examples_for_training():
    labels = ["big"] * 100 + ["mid"] * 10 + ["rare"] * 3 + ["two"] * 2
    keep, held = stratified_split(labels, 0.15, seed=1, keep_min=3)
    assert sorted(keep + held) == list(range(len(labels))) and not set(keep) & set(held)
    held_counts = Counter(labels[i] for i in held)
    assert held_counts == {"big": 15, "mid": 2}  # 'rare' and 'two' would fall under 3 training examples


def test_carve_takes_the_share_up_to_the_cap():
    report = DataReport()
    data = SimpleNamespace(selection_split=0.15, max_selection_examples=50)
    train, select = carve_selection(examples(["a", "b"] * 500), data, 42, report, "rows")
    assert len(select) == 50 and len(train) == 950
    assert Counter(select.labels) == {"a": 25, "b": 25}
    assert not set(train.inputs) & set(select.inputs)
    assert "50 of the 1000 training rows" in report.stats["selection"]


def test_no_selection_when_off_or_too_small():
    report = DataReport()
    off = SimpleNamespace(selection_split=0.0, max_selection_examples=500)
    train, select = carve_selection(examples(["a", "b"] * 50), off, 0, report, "rows")
    assert select is None and len(train) == 100 and "data.selection_split is 0" in report.stats["selection"]
    on = SimpleNamespace(selection_split=0.2, max_selection_examples=500)
    train, select = carve_selection(examples(["a", "b"] * 5), on, 0, report, "rows")
    assert select is None and len(train) == 10 and "too few to spare" in report.stats["selection"]
