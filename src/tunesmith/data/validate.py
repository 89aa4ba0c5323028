"""Check labelled data in one pass and report every problem together.

Fatal problems (``severity == "error"``) stop a run before anything is written; warnings go into
the report. Checks that any labelled task shares (class counts, duplicates, leakage, imbalance)
live here; a task turns its rows into ``Examples`` and calls ``check_labelled``.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tunesmith.data.readers import Table
from tunesmith.errors import InputError, Problem

MAX_LINES_SHOWN = 5


@dataclass
class Examples:
    """Inputs and labels of one split, each with the file and line it came from."""

    source: str
    inputs: list[Any]
    labels: list[str]
    lines: list[int]
    extras: dict[str, list[str]] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)  # content identity for duplicates / leakage
    groups: list[str] = field(default_factory=list)  # data.group_column: rows of one group stay on one side of a split
    group_by: str = "data.group_column"  # what the groups are, as the split's description names them

    def __len__(self) -> int:
        return len(self.labels)

    def content_key(self) -> str:
        """Identity of exactly these examples in this order: the cache key of anything derived from them
        (a different seed's split or sample of the same file is different content)."""
        import hashlib

        h = hashlib.sha256()
        for x, y in zip(self.inputs, self.labels):
            h.update(repr(x).encode("utf-8", "surrogatepass"))
            h.update(b"\x1f" + y.encode() + b"\x1e")
        return h.hexdigest()[:24]

    def subset(self, idx: Sequence[int], source: str | None = None) -> Examples:
        return Examples(
            source or self.source,
            [self.inputs[i] for i in idx],
            [self.labels[i] for i in idx],
            [self.lines[i] for i in idx],
            {k: [v[i] for i in idx] for k, v in self.extras.items()},
            [self.keys[i] for i in idx] if self.keys else [],
            [self.groups[i] for i in idx] if self.groups else [],
            self.group_by,
        )

    def fingerprints(self) -> list[str]:
        """One identity per example (its content and label), stable across files and runs."""
        import hashlib

        bases = self.keys if self.keys else [repr(x) for x in self.inputs]
        return [
            hashlib.sha256(f"{b}\x1f{y}".encode("utf-8", "surrogatepass")).hexdigest()[:20]
            for b, y in zip(bases, self.labels)
        ]

    def concat(self, other: Examples) -> Examples:
        """These examples followed by ``other``'s (its lines keep their own numbering)."""
        extras = {k: v + other.extras.get(k, [""] * len(other)) for k, v in self.extras.items()}
        return Examples(
            self.source,
            self.inputs + other.inputs,
            self.labels + other.labels,
            self.lines + other.lines,
            extras,
            self.keys + other.keys if self.keys and other.keys else [],
            self.groups + other.groups if self.groups and other.groups else [],
            self.group_by,
        )


@dataclass
class DataReport:
    problems: list[Problem] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    # Why no selection split was carved (the share being above 0), as the selection line and the verdict say it;
    # judged on the training data before replay joins it
    no_selection: str | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def add(self, *args: Any, **kwargs: Any) -> None:
        self.problems.append(Problem(*args, **kwargs))

    def to_dict(self) -> dict[str, Any]:
        return {
            "errors": [p.__dict__ for p in self.errors],
            "warnings": [p.__dict__ for p in self.warnings],
            "stats": self.stats,
        }

    def render(self) -> str:
        """For a person: the problems, one per line with where they are, then the data's figures as aligned
        name / value lines (nested figures as 'name value, ...', not Python reprs)."""
        lines = [str(p) for p in self.problems]
        if self.stats:
            lines.append("data:")
            width = max(len(k) for k in self.stats) + 2
            for key, value in self.stats.items():
                name = key.replace("_", " ")
                if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
                    lines.append(f"  {name}")
                    inner = max(len(str(k)) for k in value) + 2
                    lines += [f"    {str(k):<{inner}}{plain(v)}" for k, v in value.items()]
                else:
                    lines.append(f"  {name:<{width}}{plain(value)}")
        return "\n".join(lines)


def plain(value: Any) -> str:
    """A figure as a person reads it: 1,234; 0.25; 'a 3, b 4' for a mapping; 'x, y' for a list."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {plain(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(plain(v) for v in value)
    return str(value)


def lines_text(lines: list[int], unit: str = "lines") -> str:
    shown = ", ".join(map(str, lines[:MAX_LINES_SHOWN]))
    more = f" and {len(lines) - MAX_LINES_SHOWN} more" if len(lines) > MAX_LINES_SHOWN else ""
    return f"{unit} {shown}{more}"


def require_columns(table: Table, columns: list[tuple[str, str]], report: DataReport) -> bool:
    """``columns`` holds (config key, column name); a missing one is fatal and names the key to change."""
    ok = True
    for key, col in columns:
        if col not in table.columns:
            allowed = ", ".join(table.columns) or "none"
            report.add(
                "error", "missing_column", f"column {col!r} (set by {key}) not found; columns: {allowed}", table.path, 1
            )
            ok = False
    return ok


class LabelTypeError(InputError):
    """A label that is a list or a mapping: no class can be named by it."""


def named_label(value: Any, names: list[str] | None) -> str | None:
    """A label cell normalised, an index into ``names`` (the config's data.label_names) read as that name."""
    label = normalise_label(value)
    if label is not None and names and label.isdigit() and int(label) < len(names):
        return names[int(label)]
    return label


def normalise_label(value: Any) -> str | None:
    """Labels may be strings, numbers or booleans; all become strings (1.0 -> "1", true -> "true"). None, NaN or
    blank means missing; a list or mapping raises LabelTypeError (its text would silently become a class)."""
    if value is None or isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | dict | set):
        kind = "mapping" if isinstance(value, dict) else "list"
        raise LabelTypeError(f"label is a {kind} ({_short(value)}); allowed: a string, a number or true/false")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_label(value: Any, report: DataReport, path: str, line: int, column: str) -> str | None:
    """The row's label, or None with the problem reported (missing, or of a type no class can have)."""
    try:
        label = normalise_label(value)
    except LabelTypeError as exc:
        report.add("error", "label_type", str(exc), path, line, column)
        return None
    if label is None:
        report.add("error", "missing_label", "label is missing", path, line, column)
    return label


def _same_number(labels: list[str]) -> list[list[str]]:
    """Groups of distinct label texts that name the same number ("1", "1.0", "01"): two classes by accident."""
    by_value: dict[float, list[str]] = defaultdict(list)
    for lab in labels:
        try:
            value = float(lab)
        except ValueError:
            continue
        if math.isfinite(value):
            by_value[value].append(lab)
    return [group for group in by_value.values() if len(group) > 1]


def sort_labels(labels: set[str], order: list[str] | None = None) -> list[str]:
    """The user's class order, so that saved ids mean what the user's ids mean: numeric labels by number (so
    2 < 10), else the order of ``order`` (``data.label_names``, then the labels as they first appear in the
    training data); labels ``order`` does not name follow alphabetically."""
    if labels and all(lab.lstrip("-").isdigit() for lab in labels):
        return sorted(labels, key=int)
    ranked = [lab for lab in dict.fromkeys(order or []) if lab in labels]
    return ranked + sorted(labels - set(ranked))


def check_labelled(
    train: Examples,
    validation: Examples | None,
    report: DataReport,
    min_per_class: int,
    warn_per_class: int,
    imbalance_ratio: float,
    order: list[str] | None = None,
) -> list[str]:
    """Class, duplicate and leakage checks shared by every labelled task. Returns the labels in the user's order
    (``sort_labels``; ``order`` defaults to their first appearance in ``train``)."""
    counts = Counter(train.labels)
    labels = sort_labels(set(counts), order if order is not None else list(train.labels))
    report.stats["train_examples"] = len(train)
    report.stats["class_counts"] = {lab: counts[lab] for lab in labels}
    for group in _same_number(labels):
        spelled = "; ".join(
            f"{lab!r} on {lines_text([ln for ln, y in zip(train.lines, train.labels) if y == lab])}" for lab in group
        )
        report.add(
            "error",
            "label_spelling",
            f"labels {', '.join(map(repr, group))} are the same number written differently ({spelled}); they would "
            "train as different classes: write each class one way",
            train.source,
            min(ln for ln, y in zip(train.lines, train.labels) if y in group),
            field="label",
        )
    if len(labels) == 1:
        report.add(
            "error",
            "single_class",
            f"only one class ({labels[0]!r}) in the training data; need two or more",
            train.source,
            field="label",
        )
    for lab in labels:
        if counts[lab] < min_per_class:
            lines = [ln for ln, y in zip(train.lines, train.labels) if y == lab]
            report.add(
                "error",
                "too_few_examples",
                f"class {lab!r} has {counts[lab]} training example(s); at least {min_per_class} needed "
                f"({lines_text(lines)})",
                train.source,
                lines[0],
                "label",
            )
        elif counts[lab] < warn_per_class:
            report.add(
                "warning",
                "few_examples",
                f"class {lab!r} has only {counts[lab]} training examples; {warn_per_class}+ recommended",
                train.source,
                field="label",
            )
    if len(labels) > 1:
        ratio = max(counts.values()) / min(counts.values())
        report.stats["imbalance_ratio"] = round(ratio, 2)
        if ratio > imbalance_ratio:
            big, small = counts.most_common()[0][0], counts.most_common()[-1][0]
            report.add(
                "warning",
                "imbalance",
                f"classes are imbalanced: {big!r} has {ratio:.1f}x the examples of {small!r}; "
                "macro-F1 is the fairer metric here",
                train.source,
                field="label",
            )
    for split in (train, validation):
        if split is not None:
            check_duplicates(split, report)
    if validation is not None:
        report.stats["validation_examples"] = len(validation)
        unseen = sorted(set(validation.labels) - set(labels))
        for lab in unseen:
            lines = [ln for ln, y in zip(validation.lines, validation.labels) if y == lab]
            report.add(
                "error",
                "unseen_label",
                f"label {lab!r} does not occur in the training data ({lines_text(lines)}); "
                f"training labels: {', '.join(labels)}",
                validation.source,
                lines[0],
                "label",
            )
        check_leakage(train, validation, report)
    return labels


def check_duplicates(split: Examples, report: DataReport) -> None:
    seen: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(split.keys):
        seen[key].append(i)
    dup_lines, conflicts = [], []
    for idx in seen.values():
        if len(idx) < 2:
            continue
        by_label = defaultdict(list)
        for i in idx:
            by_label[split.labels[i]].append(split.lines[i])
        if len(by_label) > 1:
            conflicts.append(by_label)
        for lines in by_label.values():
            dup_lines.extend(lines[1:])
    if dup_lines:
        dup_lines.sort()
        report.add(
            "warning",
            "duplicates",
            f"{len(dup_lines)} exact duplicate example(s) repeat an earlier one ({lines_text(dup_lines)})",
            split.source,
            dup_lines[0],
        )
    for by_label in conflicts[:MAX_LINES_SHOWN]:
        desc = "; ".join(f"{lab!r} on {lines_text(lines)}" for lab, lines in by_label.items())
        first = min(min(v) for v in by_label.values())
        report.add(
            "warning",
            "conflicting_labels",
            f"the same input has different labels: {desc}",
            split.source,
            first,
            "label",
        )
    if len(conflicts) > MAX_LINES_SHOWN:
        report.add(
            "warning",
            "conflicting_labels",
            f"{len(conflicts) - MAX_LINES_SHOWN} more inputs have conflicting labels",
            split.source,
        )
    report.stats.setdefault("duplicates", {})[split.source] = len(dup_lines)


def check_leakage(train: Examples, validation: Examples, report: DataReport) -> None:
    train_keys = set(train.keys)
    leaked = [ln for ln, key in zip(validation.lines, validation.keys) if key in train_keys]
    report.stats["train_validation_overlap"] = len(leaked)
    if leaked:
        share = len(leaked) / max(len(validation), 1)
        report.add(
            "warning",
            "leakage",
            f"{len(leaked)} validation example(s) ({share:.1%}) also occur in the training data, which "
            f"inflates validation scores ({lines_text(leaked)})",
            validation.source,
            leaked[0],
        )


def length_stats(lengths: list[int], max_length: int, report: DataReport, source: str) -> dict[str, Any]:
    arr = np.asarray(lengths)
    cut = float((arr > max_length).mean()) if len(arr) else 0.0
    stats = {
        "mean": round(float(arr.mean()), 1),
        "p50": int(np.percentile(arr, 50)),
        "p95": int(np.percentile(arr, 95)),
        "max": int(arr.max()),
        "max_length": max_length,
        "share_truncated": round(cut, 4),
    }
    if cut > 0.05:
        report.add(
            "warning",
            "truncation",
            f"{cut:.1%} of examples are longer than max_length={max_length} tokens and will be cut "
            f"(p95 is {stats['p95']}); raise train.max_length if the end of the text matters",
            source,
        )
    return stats


def choose_max_length(lengths: Sequence[int], model_limit: int, quantile: float = 98.0) -> int:
    """Default max_length: covers ``quantile``% of the training examples, rounded up to a multiple of 8."""
    want = int(np.percentile(np.asarray(lengths), quantile)) if len(lengths) else model_limit
    want = max(16, -(-want // 8) * 8)
    return min(want, model_limit)


def settle_max_length(
    configured: int | None, lengths: Sequence[int], limit: int, report: DataReport, default_cap: int | None = None
) -> int:
    """train.max_length, or one chosen from the training lengths (capped by ``default_cap`` when given); over
    the model's ``limit`` is fatal. The choice is said in the report."""
    from tunesmith.errors import DataError

    max_length = configured or choose_max_length(lengths, min(limit, default_cap or limit))
    if max_length > limit:
        report.add(
            "error",
            "max_length",
            f"train.max_length={max_length} exceeds the model's limit of {limit}",
            field="train.max_length",
        )
        raise DataError(report.problems)
    if configured:
        why = "set in config"
    else:
        covered = float(np.mean(np.asarray(lengths) <= max_length)) if len(lengths) else 1.0
        why = (
            "chosen: covers 98% of training examples"
            if covered >= 0.98
            else f"chosen: the default cap; covers {covered:.0%} of training examples whole, the rest are cut"
        )
    report.stats["max_length"] = f"{max_length} ({why})"
    return max_length
