"""The selection split: carved from the training data, stratified, capped, and never emptying a rare class."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from tunesmith.data.split import carve_selection, grouped_split, stratified_split
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
    assert (
        select is None
        and len(train) == 10
        and "10 training rows are too few to carve a selection split" in report.stats["selection"]
    )
    spare_none = examples([c for c in "abcdefghij"] * 3)  # 30 rows, 3 a class: each class keeps its 3
    train, select = carve_selection(spare_none, on, 0, report, "rows")
    assert select is None and len(train) == 30 and report.stats["selection_examples"] == 0
    assert "no class has more than 3 training rows to spare" in report.stats["selection"]
    assert report.no_selection == "no class has more than 3 training rows to spare for a selection split"


def test_grouped_selection_keeps_every_group_on_one_side():
    # 40 pages of 5 passages each, two classes: a page's passages share a label and must not straddle the split.
    labels = [("a" if p % 2 else "b") for p in range(40) for _ in range(5)]
    groups = [f"page{p}" for p in range(40) for _ in range(5)]
    texts = [f"passage {i}" for i in range(len(labels))]
    ex = Examples("train.csv", texts, labels, list(range(2, 202)), {}, keys=texts, groups=groups)
    report = DataReport()
    data = SimpleNamespace(selection_split=0.15, max_selection_examples=500, group_column="page")
    train, select = carve_selection(ex, data, 3, report, "rows")
    assert not set(train.groups) & set(select.groups), "no page on both sides"
    assert len(select) == 30 and Counter(select.labels) == {"a": 15, "b": 15}  # 3 whole pages per class
    assert "grouped by data.group_column (40 groups)" in report.stats["selection"]
    # Six pages are few to choose on: the data report says so, on the group column.
    (warning,) = [p for p in report.warnings if p.check == "few_selection_groups"]
    assert "30 rows from only 6 groups" in warning.message and warning.field == "page"
    # A selection split of 20 pages or more is not flagged: 400 pages of one passage each hold out 60.
    many = Examples("train.csv", texts * 2, labels * 2, list(range(2, 402)), {}, keys=[f"{t}{i}" for i, t in
                    enumerate(texts * 2)], groups=[f"page{i}" for i in range(400)])  # fmt: skip
    quiet = DataReport()
    carve_selection(many, data, 3, quiet, "rows")
    assert quiet.stats["selection_examples"] == 60 and not quiet.warnings
    # A class whose rows are all one group keeps it for training.
    one = Examples("t.csv", texts[:10], ["a"] * 5 + ["b"] * 5, list(range(10)), {}, keys=texts[:10],
                   groups=["g1"] * 5 + ["g2"] * 5)  # fmt: skip
    keep, held = grouped_split(one.labels, one.groups, 0.5, 0)
    assert held == [] and len(keep) == 10
