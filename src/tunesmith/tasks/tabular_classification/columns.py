"""Columns of a table: what each one is (numeric, categorical, boolean, datetime), and the schema that turns raw
rows into the network's inputs. The schema is fitted on the training rows only, saved with the model as JSON, and
applied unchanged to validation rows, new rows at prediction time and later runs that start from a saved base."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np

MISSING = {"", "na", "n/a", "nan", "null", "none", "?", "-"}
TRUE, FALSE = {"true", "yes", "y", "t"}, {"false", "no", "n", "f"}
MAX_CATEGORIES = 100  # distinct values kept per categorical column; rarer ones share the "other" index
CATEGORICAL_INTEGERS = 10  # whole-number columns with at most this many distinct values are categories
KINDS = ("numeric", "categorical", "boolean", "datetime")


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip().lower() in MISSING


def as_number(value: Any) -> float | None:
    """A value as a finite number, or None (booleans are not numbers here)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):  # Parquet decimals too
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, str):
        if "_" in value:  # float() takes "1_000"; a data file does not mean a number by it
            return None
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        v = value.strip().lower()
        return True if v in TRUE else False if v in FALSE else None
    return None


def as_time(value: Any) -> float | None:
    """A date or date-time (ISO 8601 text, or a datetime from Parquet) as days since 1970-01-01 (UTC)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and len(value.strip()) >= 8 and value.strip()[:1].isdigit():
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    elif hasattr(value, "isoformat") and hasattr(value, "year"):  # a date
        moment = datetime(value.year, value.month, value.day)
    else:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone().replace(tzinfo=None)
    return (moment - datetime(1970, 1, 1)).total_seconds() / 86400.0


def category_text(value: Any) -> str:
    """The category a value stands for: numbers written one way (2 and 2.0 are one category)."""
    number = as_number(value)
    if number is not None and number.is_integer():
        return str(int(number))
    return str(value).strip()


def detect_kind(values: list[Any]) -> str:
    """numeric, categorical, boolean or datetime, from a column's non-missing values."""
    present = [v for v in values if not is_missing(v)]
    if not present:
        return "numeric"
    if all(as_bool(v) is not None for v in present):
        return "boolean"
    numbers = [as_number(v) for v in present]
    if all(n is not None for n in numbers):
        distinct = set(numbers)
        if distinct <= {0.0, 1.0}:
            return "boolean"
        if all(float(n).is_integer() for n in distinct) and len(distinct) <= CATEGORICAL_INTEGERS:
            return "categorical"
        return "numeric"
    if all(as_time(v) is not None for v in present):
        return "datetime"
    return "categorical"


@dataclass
class Column:
    """One feature column and what the schema learned of it on the training rows."""

    name: str
    kind: str
    missing_share: float = 0.0
    center: float = 0.0  # numeric / datetime: the median (what a missing value becomes)
    scale: float = 1.0  # numeric / datetime: the spread the values are divided by
    categories: list[str] = field(default_factory=list)  # categorical: index 2.. (0 unseen or rare, 1 missing)

    @property
    def numeric_width(self) -> int:
        """Numeric inputs this column gives: the value and, where values were missing, a missing flag."""
        if self.kind == "categorical":
            return 0
        return 1 + (1 if self.missing_share > 0 else 0)

    @property
    def cardinality(self) -> int:
        return len(self.categories) + 2 if self.kind == "categorical" else 0


@dataclass
class Schema:
    columns: list[Column]
    label_column: str
    labels: list[str]

    @property
    def numeric(self) -> list[Column]:
        return [c for c in self.columns if c.kind != "categorical"]

    @property
    def categorical(self) -> list[Column]:
        return [c for c in self.columns if c.kind == "categorical"]

    @property
    def n_numeric(self) -> int:
        return sum(c.numeric_width for c in self.numeric)

    @property
    def cardinalities(self) -> list[int]:
        return [c.cardinality for c in self.categorical]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": [asdict(c) for c in self.columns],
            "label_column": self.label_column,
            "labels": list(self.labels),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Schema:
        return cls([Column(**c) for c in d["columns"]], d["label_column"], list(d["labels"]))

    def encode(self, rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """(numeric float32 [n, n_numeric], categorical int64 [n, categorical columns]). Numbers are centred and
        scaled, missing ones set to the centre with a flag; categories map to their index (0: unseen or rare)."""
        num = np.zeros((len(rows), self.n_numeric), np.float32)
        cat = np.zeros((len(rows), len(self.categorical)), np.int64)
        j = 0
        for col in self.numeric:
            values = [_numeric_value(col, r.get(col.name)) for r in rows]
            flags = np.array([v is None for v in values])
            raw = np.array([col.center if v is None else v for v in values], np.float64)
            num[:, j] = np.clip((raw - col.center) / col.scale, -10, 10)  # one wild value cannot blow up a batch
            if col.numeric_width == 2:
                num[:, j + 1] = flags
            j += col.numeric_width
        for k, col in enumerate(self.categorical):
            index = {c: i + 2 for i, c in enumerate(col.categories)}
            cat[:, k] = [
                1 if is_missing(r.get(col.name)) else index.get(category_text(r.get(col.name)), 0) for r in rows
            ]
        return num, cat

    def unseen(self, rows: list[dict[str, Any]]) -> dict[str, list[int]]:
        """Per categorical column, the row positions whose value the training rows never had."""
        out: dict[str, list[int]] = {}
        for col in self.categorical:
            known = set(col.categories)
            bad = [
                i
                for i, r in enumerate(rows)
                if not is_missing(r.get(col.name)) and category_text(r.get(col.name)) not in known
            ]
            if bad and len(col.categories) < MAX_CATEGORIES:  # a capped column maps rare values to "other" anyway
                out[col.name] = bad
        return out


def _numeric_value(col: Column, value: Any) -> float | None:
    if is_missing(value):
        return None
    if col.kind == "boolean":
        b = as_bool(value)
        if b is None:
            n = as_number(value)
            return None if n is None else float(n != 0)
        return float(b)
    if col.kind == "datetime":
        return as_time(value)
    return as_number(value)


def fit_column(name: str, kind: str, values: list[Any]) -> Column:
    """What the schema keeps of one column, from the training rows' values."""
    missing = sum(is_missing(v) for v in values)
    col = Column(name, kind, missing_share=round(missing / max(len(values), 1), 6))
    if kind == "categorical":
        counts: dict[str, int] = {}
        for v in values:
            if not is_missing(v):
                key = category_text(v)
                counts[key] = counts.get(key, 0) + 1
        ranked = sorted(counts, key=lambda c: (-counts[c], c))
        col.categories = sorted(ranked[:MAX_CATEGORIES])
        return col
    numbers = np.array([x for x in (_numeric_value(col, v) for v in values) if x is not None], np.float64)
    if len(numbers):
        col.center = float(np.median(numbers))
        q25, q75 = np.percentile(numbers, [25, 75])
        spread = float(q75 - q25) / 1.349 if q75 > q25 else float(numbers.std())
        col.scale = spread if spread > 0 else 1.0
    return col
