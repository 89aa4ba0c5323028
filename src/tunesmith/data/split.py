"""Stratified, seeded splitting and sub-sampling (numpy only)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np


def stratified_split(labels: list[str], share: float, seed: int, keep_min: int = 1) -> tuple[list[int], list[int]]:
    """Indices (keep, held_out): each class contributes ``share`` of its rows, at least one while more than
    ``keep_min`` would stay, never leaving fewer than ``keep_min`` (a class of ``keep_min`` rows keeps them all)."""
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    keep, held = [], []
    for label in sorted(by_class):
        idx = np.array(by_class[label])
        rng.shuffle(idx)
        n_held = min(int(round(len(idx) * share)), max(len(idx) - keep_min, 0))
        if n_held == 0 and len(idx) > keep_min and share > 0:
            n_held = 1
        held.extend(idx[:n_held].tolist())
        keep.extend(idx[n_held:].tolist())
    return sorted(keep), sorted(held)


def grouped_split(
    labels: list[str], groups: list[str], share: float, seed: int, keep_min: int = 1
) -> tuple[list[int], list[int]]:
    """Like ``stratified_split``, but whole groups move: each group goes with its most common label's class, and a
    class holds out about ``share`` of its groups (never all of them), so no group is on both sides."""
    rng = np.random.default_rng(seed)
    members: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    by_class: dict[str, list[str]] = defaultdict(list)
    for g in sorted(members):
        values, counts = np.unique([labels[i] for i in members[g]], return_counts=True)
        by_class[str(values[counts.argmax()])].append(g)
    keep, held = [], []
    for label in sorted(by_class):
        names = list(by_class[label])
        rng.shuffle(names)
        rows = sum(len(members[g]) for g in names)
        taken = 0
        for j, g in enumerate(names):
            room = j < len(names) - 1 and rows - taken - len(members[g]) >= keep_min
            if share > 0 and room and taken + len(members[g]) / 2 <= share * rows:
                held.extend(members[g])
                taken += len(members[g])
            else:
                keep.extend(members[g])
    return sorted(keep), sorted(held)


def split_rows(ex: Any, share: float, seed: int, keep_min: int = 1) -> tuple[list[int], list[int], str]:
    """(keep, held, how): grouped when the examples carry groups (data.group_column), else stratified."""
    if ex.groups:
        keep, held = grouped_split(ex.labels, ex.groups, share, seed, keep_min)
        return keep, held, f"grouped by {ex.group_by} ({len(set(ex.groups))} groups), seed {seed}"
    keep, held = stratified_split(ex.labels, share, seed, keep_min)
    return keep, held, f"stratified, seed {seed}"


def stratified_sample(labels: list[str], n: int, seed: int) -> list[int]:
    """At most n indices with class shares kept; the order of the file is preserved."""
    if n >= len(labels):
        return list(range(len(labels)))
    _, held = stratified_split(labels, n / len(labels), seed)
    return held


def limit_and_split(train: Any, val: Any, data: Any, seed: int, report: Any, unit: str) -> tuple[Any, Any]:
    """The sampling every task applies after reading: ``data.max_train_examples`` (stratified), a stratified,
    seeded held-out split when ``data.validation`` is not set, then ``data.max_validation_examples``. ``train``
    and ``val`` are Examples (``val`` None when there is none to read); the split is said in the report."""
    if data.max_train_examples:
        train = train.subset(stratified_sample(train.labels, data.max_train_examples, seed))
    if data.validation is None:
        keep, held, how = split_rows(train, data.validation_split, seed, keep_min=2)  # a class trains on 2 or more
        if not held or len(set(train.labels[i] for i in held)) < len(set(train.labels)):
            _say_unsplittable(train, held, data, report)
        report.stats["split"] = f"no validation data: held out {len(held)} {unit}, {how}"
        train, val = train.subset(keep), train.subset(held, source=f"{train.source} (held-out split)")
    if val is not None and data.max_validation_examples:
        val = val.subset(stratified_sample(val.labels, data.max_validation_examples, seed))
    return train, val


def _say_unsplittable(train: Any, held: list[int], data: Any, report: Any) -> None:
    """The error when the held-out split cannot give every class validation examples: by groups, or (without
    groups) the classes too small to spare one, each with the line of its first example."""
    if train.groups:
        report.add(
            "error",
            "too_few_groups",
            f"{len(set(train.groups))} groups cannot hold out whole groups of every class for validation "
            "(each group goes with its most common label); give data.validation, or more, smaller groups",
            train.source,
            1,
            data.group_column,
        )
        return
    there = {train.labels[i] for i in held}
    first: dict[str, int] = {}
    for label, line in zip(train.labels, train.lines):
        if label not in there:
            first.setdefault(label, line)
    names = ", ".join(f"'{c}' (line {n})" for c, n in sorted(first.items(), key=lambda kv: kv[1])[:10])
    more = f" and {len(first) - 10} more" if len(first) > 10 else ""
    report.add(
        "error",
        "too_few_to_hold_out",
        f"no data.validation given, and {len(first)} class(es) have too few examples to hold any out for "
        f"validation: {names}{more}; give data.validation, or at least 3 examples of every class (2 to train on, "
        "1 to validate)",
        train.source,
        min(first.values()) if first else 1,
        "label",
    )


MIN_FOR_SELECTION = 20  # training examples below which no selection split is carved
# Under this many groups (data.group_column) in the selection split, the data report warns that the run's choices are
# rough: on 10 library topics a split from 9 pages kept a frozen head scoring 46.2% over a fine-tuned model scoring
# 55.2% on 35 other pages (docs/defaults.md, "A set the defaults were not chosen on"). 20 is a judgement, not a
# measured crossover.
FIRM_SELECTION_GROUPS = 20
NO_CHOICE = "makes no choices (early stopping, the best step, the kept model) and keeps the fine-tuned model"


def carve_selection(train: Any, data: Any, seed: int, report: Any, unit: str) -> tuple[Any, Any]:
    """(train, selection): ``data.selection_split`` of the training examples (stratified, seeded, at most
    ``data.max_selection_examples``) held out for the tool's own choices, so that none is made on the validation
    data whose figures are reported. (train, None) when the share is 0 or the data too small to spare any."""
    report.stats["selection_examples"] = 0
    if data.selection_split <= 0:
        report.stats["selection"] = "no selection split (data.selection_split is 0)"
        return train, None
    held: list[int] = []
    if len(train) >= MIN_FOR_SELECTION:
        share = min(data.selection_split, data.max_selection_examples / len(train))
        keep, held, how = split_rows(train, share, seed + 1, keep_min=3)  # rare classes train on all
    if not held:
        report.no_selection = (
            f"{len(train)} training {unit} are too few to carve a selection split"
            if len(train) < MIN_FOR_SELECTION
            else f"no class has more than 3 training {unit} to spare for a selection split"
        )
        report.stats["selection"] = f"no selection split: {report.no_selection}, so the run {NO_CHOICE}"
        return train, None
    report.stats["selection_examples"] = len(held)
    held_groups = len({train.groups[i] for i in held}) if train.groups else 0
    if 0 < held_groups < FIRM_SELECTION_GROUPS:
        report.add(
            "warning",
            "few_selection_groups",
            f"the selection split holds {len(held)} {unit} from only {held_groups} groups: the run's choices (early "
            f"stopping, the best epoch, the kept model) rest on {held_groups} groups and may not carry to new ones; "
            "more groups (smaller ones, or a larger data.selection_split) make them firmer",
            train.source,
            None,
            data.group_column,
        )
    report.stats["selection"] = (
        f"{len(held)} of the {len(train)} training {unit} held out for early stopping, the best epoch and the "
        f"choice of the model the run keeps ({how})"
    )
    return train.subset(keep), train.subset(held, source=f"{train.source} (selection split)")


def add_replay(train: Any, data: Any, seed: int, report: Any, read: Any, unit: str) -> Any:
    """Mix earlier training data into ``train``: ``data.replay_ratio`` replayed examples per new one, a seeded
    sample that keeps the earlier data's class shares. ``read(path)`` gives Examples (or None, problems said in
    ``report``). Replay joins after the held-out split, so validation holds new data only."""
    if not data.replay or data.replay_ratio <= 0 or train is None:
        return train
    pool = None
    for path in data.replay:
        ex = read(path)
        if ex is not None and len(ex):
            pool = ex if pool is None else pool.concat(ex)
    if pool is None:
        return train
    excluded = 0
    if data.replay_exclude:
        import json
        from pathlib import Path

        leave_out = set(json.loads(Path(data.replay_exclude).read_text(encoding="utf-8")))
        keep = [i for i, f in enumerate(pool.fingerprints()) if f not in leave_out]
        excluded = len(pool) - len(keep)
        pool = pool.subset(keep)
    k = min(len(pool), int(round(data.replay_ratio * len(train))))
    sample = pool.subset(stratified_sample(pool.labels, k, seed))
    report.stats["replay"] = (
        f"{len(sample)} {unit} replayed from {len(data.replay)} earlier training set(s) holding {len(pool)} "
        f"(ratio {data.replay_ratio:g} to {len(train)} new), seed {seed}"
        + (f"; {excluded} left out as members of earlier evaluation sets" if excluded else "")
    )
    return train.concat(sample)
