"""Reading tables and checking them: every problem at once, with file, line and column; nothing is written when one
is fatal. ``read_tables`` gives the TaskData (labelled splits, unlabelled rows for pre-training); ``feature_plan``
says what each column is and which are left out, the same way for the checks and for the schema."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from tunesmith.config import Config
from tunesmith.data.readers import read_table
from tunesmith.data.split import MIN_FOR_SELECTION, NO_CHOICE, add_replay, carve_selection, limit_and_split
from tunesmith.data.validate import DataReport, Examples, LabelTypeError, check_labelled, lines_text, normalise_label
from tunesmith.errors import DataError
from tunesmith.tasks.base import TaskData
from tunesmith.tasks.tabular_classification.columns import (
    KINDS,
    Column,
    Schema,
    as_number,
    as_time,
    category_text,
    detect_kind,
    fit_column,
    is_missing,
)

TIME = "\x00time"  # the time column's value (days) rides in Examples.extras under this key
ID_MIN_ROWS = 20  # a column unique in every row is an ID only when there are at least this many rows
EXTREME_SHARE = 0.1  # a class under this share of the labelled rows: the rare-event metrics lead


@dataclass
class Split:
    labelled: Examples | None
    unlabelled: Examples | None
    fingerprint: str


def _read(path: str, cfg: Config, report: DataReport, validation: bool) -> Split:
    d = cfg.data
    try:
        table = read_table(path)
    except DataError as exc:
        report.problems.extend(exc.problems)
        return Split(None, None, "")
    wanted = [(d.label_column, "data.label_column")]
    wanted += [(c, "data.time_column") for c in [d.time_column] if c]
    wanted += [(c, "data.ignore") for c in d.ignore] + [(c, "data.categorical") for c in d.categorical or []]
    wanted += [(c, "eval.slice_columns") for c in cfg.eval.slice_columns]
    missing = [(c, key) for c, key in wanted if c not in table.columns]
    for c, key in missing:
        report.add(
            "error",
            "missing_column",
            f"column {c!r} (named by {key}) is not in the file; columns: {', '.join(table.columns)}",
            path,
            1,
            c,
        )
    if missing:
        return Split(None, None, table.fingerprint)
    leave_out = {d.label_column, *(d.ignore or []), *([d.time_column] if d.time_column else [])}
    features = [c for c in table.columns if c not in leave_out]
    if not features:
        report.add(
            "error", "no_features", "no feature columns besides the label (and data.ignore / data.time_column)", path, 1
        )
    rows: dict[bool, list[int]] = {True: [], False: []}
    for i, (row, line) in enumerate(zip(table.rows, table.lines)):
        try:
            label = normalise_label(row.get(d.label_column))
        except LabelTypeError as exc:
            report.add("error", "label_type", str(exc), path, line, d.label_column)
            continue
        if d.time_column and as_time(row.get(d.time_column)) is None:
            report.add(
                "error",
                "bad_time",
                f"{row.get(d.time_column)!r} is not a date or time (ISO 8601, e.g. 2024-03-01 or 2024-03-01T14:30)",
                path,
                line,
                d.time_column,
            )
            continue
        rows[label is not None].append(i)
    if rows[False] and validation:
        report.add(
            "warning",
            "unlabelled_validation",
            f"{len(rows[False])} validation rows have no label and are "
            f"left out ({lines_text([table.lines[i] for i in rows[False]])})",
            path,
            table.lines[rows[False][0]],
            d.label_column,
        )

    def examples(idx: list[int], source: str) -> Examples:
        picked = [table.rows[i] for i in idx]
        extras = {
            c: [category_text(r.get(c)) if not is_missing(r.get(c)) else "(missing)" for r in picked]
            for c in cfg.eval.slice_columns
        }
        if d.time_column:
            extras[TIME] = [repr(as_time(r.get(d.time_column))) for r in picked]
        inputs = [{c: r.get(c) for c in features} for r in picked]
        keys = ["\x1f".join(category_text(x[c]) if not is_missing(x[c]) else "" for c in features) for x in inputs]
        labs = [normalise_label(r.get(d.label_column)) or "" for r in picked]
        return Examples(source, inputs, labs, [table.lines[i] for i in idx], extras, keys)

    unlabelled = examples(rows[False], f"{path} (unlabelled rows)") if rows[False] and not validation else None
    return Split(examples(rows[True], path), unlabelled, table.fingerprint)


def _latest(ex: Examples, share: float) -> tuple[list[int], list[int]]:
    """(earlier, latest) row positions: the latest ``share`` of the rows by the time column."""
    order = sorted(range(len(ex)), key=lambda i: (float(ex.extras[TIME][i]), i))
    n_held = max(1, int(round(share * len(ex))))
    return sorted(order[:-n_held]), sorted(order[-n_held:])


def _time_range(ex: Examples) -> str:
    days = [float(t) for t in ex.extras[TIME]]
    from datetime import datetime, timedelta

    first, last = (datetime(1970, 1, 1) + timedelta(days=x) for x in (min(days), max(days)))
    return f"{first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M}"


def split_by_time(train: Examples, val: Examples | None, cfg: Config, report: DataReport) -> tuple[Any, Any, Any]:
    """The held-out split and the selection split as the latest rows (no future leakage), when there is a
    time column; (train, validation, selection)."""
    d = cfg.data
    if val is None:
        keep, held = _latest(train, d.validation_split)
        train, val = train.subset(keep), train.subset(held, source=f"{train.source} (latest rows held out)")
        report.stats["split"] = (
            f"no validation data: held out the latest {len(val)} rows by {d.time_column} "
            f"({_time_range(val)}); training rows {_time_range(train)}"
        )
    select = None
    report.stats["selection_examples"] = 0
    if d.selection_split <= 0:
        report.stats["selection"] = "no selection split (data.selection_split is 0)"
    elif len(train) < MIN_FOR_SELECTION:
        report.no_selection = f"{len(train)} training rows are too few to carve a selection split"
        report.stats["selection"] = f"no selection split: {report.no_selection}, so the run {NO_CHOICE}"
    else:
        share = min(d.selection_split, d.max_selection_examples / len(train))
        keep, held = _latest(train, share)
        train, select = train.subset(keep), train.subset(held, source=f"{train.source} (selection split)")
        report.stats["selection_examples"] = len(select)
        report.stats["selection"] = (
            f"the latest {len(select)} training rows by {d.time_column} held out for "
            "early stopping, the best epoch and the decision threshold"
        )
    return train, val, select


def positive_first_order(cfg: Config, labels: list[str]) -> list[str]:
    """Class order: two classes put the positive one (data.positive_label, else the rarer) second, so that
    index 1 is what the model detects; more classes keep the usual order."""
    counts = Counter(labels)
    if len(counts) != 2:
        return list(cfg.data.label_names or []) + labels
    pos = cfg.data.positive_label
    if pos is None:
        pos = min(counts, key=lambda lab: (counts[lab], lab))
    neg = next(lab for lab in counts if lab != pos)
    return [neg, pos]


def read_tables(cfg: Config) -> TaskData:
    d, report = cfg.data, DataReport()
    tr = _read(d.train, cfg, report, validation=False)
    va = _read(d.validation, cfg, report, validation=True) if d.validation else Split(None, None, "")
    train, val, select = tr.labelled, va.labelled, None
    labels: list[str] = []
    if d.positive_label is not None and train is not None and d.positive_label not in set(train.labels):
        report.add(
            "error",
            "unknown_positive",
            f"data.positive_label {d.positive_label!r} is not a label of the "
            f"training data ({', '.join(sorted(set(train.labels)))})",
            d.train,
            field=d.label_column,
        )
    if train is not None and len(train) and not report.errors:
        if d.max_train_examples:
            from tunesmith.data.split import stratified_sample

            train = train.subset(stratified_sample(train.labels, d.max_train_examples, cfg.train.seed))
        if d.time_column:
            train, val, select = split_by_time(train, val, cfg, report)
        else:
            train, val = limit_and_split(train, val, d, cfg.train.seed, report, "rows")
            train, select = carve_selection(train, d, cfg.train.seed, report, "rows")
        train = add_replay(train, d, cfg.train.seed, report, lambda p: _read(p, cfg, report, False).labelled, "rows")
        everything = train if select is None else train.concat(select)
        labels = check_labelled(
            everything,
            val,
            report,
            d.min_examples_per_class,
            d.warn_examples_per_class,
            math.inf,
            positive_first_order(cfg, everything.labels),
        )
        check_columns(cfg, everything, val, tr.unlabelled, labels, report)
    elif train is not None and not len(train) and not report.errors:
        report.add(
            "error",
            "no_labels",
            f"no row has a label in column {d.label_column!r}; at least two classes are needed",
            d.train,
            field=d.label_column,
        )
    if report.errors:
        raise DataError(report.problems)
    assert train is not None and val is not None
    if tr.unlabelled is not None:
        report.stats["unlabelled_rows"] = f"{len(tr.unlabelled)} (pre-training only)"
    fingerprint = "+".join(f[:16] for f in (tr.fingerprint, va.fingerprint) if f)
    return TaskData(train, val, report, fingerprint, labels, select=select, unlabelled=tr.unlabelled)


# --- what each column is ------------------------------------------------------------------------------------
@dataclass
class FeaturePlan:
    kinds: dict[str, str]  # the feature columns kept, with their kind
    dropped: dict[str, str]  # column -> why it is left out


def feature_plan(cfg: Config, rows: list[dict[str, Any]]) -> FeaturePlan:
    """Each feature column's kind (detected, or data.categorical), and the columns left out: constant ones and
    IDs (text or whole numbers unique in every row). Computed from the training rows, labelled or not."""
    names = list(rows[0]) if rows else []
    kinds, dropped = {}, {}
    for name in names:
        values = [r.get(name) for r in rows]
        present = [category_text(v) for v in values if not is_missing(v)]
        kind = detect_kind(values)
        listed = cfg.data.categorical
        if listed is not None and name in listed:
            kind = "categorical"
        elif listed is not None and kind == "categorical" and all(as_number(v) is not None for v in present):
            kind = "numeric"  # whole-number codes the user did not list as categories
        unique = len(set(present))
        code_like = kind == "categorical" or (kind == "numeric" and all(_whole(v) for v in present))
        if unique + (len(present) < len(values)) <= 1:  # a missing value counts as a value here (a flag)
            dropped[name] = "constant" if present else "empty"
        elif code_like and unique == len(present) >= ID_MIN_ROWS and name not in (listed or []):
            dropped[name] = "unique in every row (an ID)"
        if name not in dropped:
            kinds[name] = kind
    return FeaturePlan(kinds, dropped)


def _whole(value: Any) -> bool:
    try:
        return float(value).is_integer()
    except (TypeError, ValueError):
        return False


def fit_schema(cfg: Config, rows: list[dict[str, Any]], labels: list[str]) -> Schema:
    plan = feature_plan(cfg, rows)
    columns = [fit_column(name, kind, [r.get(name) for r in rows]) for name, kind in plan.kinds.items()]
    return Schema(columns, cfg.data.label_column, labels)


def check_columns(
    cfg: Config,
    train: Examples,
    val: Examples | None,
    unlabelled: Examples | None,
    labels: list[str],
    report: DataReport,
) -> None:
    """The column checks: kinds, left-out columns, missing values, leakage, unseen categories, imbalance."""
    rows = train.inputs + (unlabelled.inputs if unlabelled is not None else [])
    plan = feature_plan(cfg, rows)
    src = train.source
    report.stats["columns"] = {k: sum(1 for v in plan.kinds.values() if v == k) for k in KINDS}
    report.stats["column_kinds"] = dict(plan.kinds)
    for name, why in plan.dropped.items():
        report.add(
            "warning",
            "id_column" if "ID" in why else "constant_column",
            f"column {name!r} is {why}: left out of the features",
            src,
            1,
            name,
        )
    if not plan.kinds:
        report.add("error", "no_features", "every feature column is constant or an ID; nothing to learn from", src, 1)
        return
    schema = Schema(
        [fit_column(n, k, [r.get(n) for r in rows]) for n, k in plan.kinds.items()], cfg.data.label_column, labels
    )
    shares = {c.name: c.missing_share for c in schema.columns if c.missing_share > 0}
    if shares:
        report.stats["missing_values"] = {k: f"{v:.1%}" for k, v in shares.items()}
        listed = ", ".join(f"{k} {v:.1%}" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])[:8])
        report.add(
            "warning",
            "missing_values",
            f"missing values in {len(shares)} column(s) ({listed}): numbers "
            "are filled with the training median and flagged, categories get a value of their own",
            src,
            field=next(iter(shares)),
        )
    _check_leakage(train, schema, report)
    if val is not None:
        for name, idx in schema.unseen(val.inputs).items():
            values = sorted({category_text(val.inputs[i][name]) for i in idx})[:5]
            report.add(
                "warning",
                "unseen_category",
                f"{len(idx)} validation row(s) have values of {name!r} the "
                f"training rows never had ({', '.join(map(repr, values))}; "
                f"{lines_text([val.lines[i] for i in idx])}): the model reads them as 'other'",
                val.source,
                val.lines[idx[0]],
                name,
            )
    counts = Counter(train.labels)
    rare = min(labels, key=lambda lab: counts[lab])
    share = counts[rare] / len(train)
    report.stats["positive_share" if len(labels) == 2 else "rarest_class_share"] = f"{share:.2%} ({rare})"
    if share < EXTREME_SHARE:
        report.add(
            "warning",
            "extreme_imbalance",
            f"{rare!r} is {share:.1%} of the labelled training rows: "
            f"accuracy would be {1 - share:.1%} by never predicting it, so the report leads with average "
            "precision (PR-AUC), recall at a fixed false-positive rate and precision in the top rows; "
            f"training weighs the classes (tabular.loss: {cfg.tabular.loss}) and the decision threshold "
            "follows eval.cost",
            src,
            field=cfg.data.label_column,
        )


def _check_leakage(train: Examples, schema: Schema, report: DataReport) -> None:
    """A column that alone separates the classes perfectly on the training rows: warned (it may be recorded after
    the outcome)."""
    if len(train) < ID_MIN_ROWS:
        return
    for col in schema.columns:
        if _separates(col, [r.get(col.name) for r in train.inputs], train.labels):
            report.add(
                "warning",
                "target_leakage",
                f"column {col.name!r} alone predicts the label perfectly on the "
                "training rows: if it is known only after the outcome (a chargeback, a status), it leaks "
                "the answer and the model will fail on new rows; list it in data.ignore if so",
                train.source,
                1,
                col.name,
            )


def _separates(col: Column, values: list[Any], labels: list[str]) -> bool:
    if col.kind == "categorical" or col.kind == "boolean":  # a missing value is a category of its own here
        by_value: dict[str, set[str]] = defaultdict(set)
        for v, y in zip(values, labels):
            by_value["\x00missing" if is_missing(v) else category_text(v)].add(y)
        pairs = list(zip(values, labels))
        if len(pairs) < ID_MIN_ROWS or len(set(labels)) < 2:
            return False
        return len(by_value) <= len(pairs) / 2 and all(len(s) == 1 for s in by_value.values())
    pairs = [(v, y) for v, y in zip(values, labels) if not is_missing(v)]
    if len(pairs) < ID_MIN_ROWS or len({y for _, y in pairs}) < 2:
        return False
    numbers = []
    for v, y in pairs:
        x = as_time(v) if col.kind == "datetime" else as_number(v)
        if x is not None:
            numbers.append((x, y))
    numbers.sort()
    runs, groups = 0, defaultdict(set)
    for x, y in numbers:
        groups[x].add(y)
    if any(len(s) > 1 for s in groups.values()):
        return False
    previous = None
    for x in sorted(groups):
        (y,) = groups[x]
        runs += y != previous
        previous = y
    return runs <= len({y for _, y in pairs})
