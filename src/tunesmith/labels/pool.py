"""An unlabelled pool: the rows a user could label next, read with file:line:field errors, and what is left
once the rows already labelled, repeated, or already in the training data are set aside."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.data.readers import read_table
from tunesmith.data.validate import DataReport, normalise_label, require_columns
from tunesmith.errors import DataError, InputError
from tunesmith.files import not_found


def same_text(text: str) -> str:
    """The form two texts are compared in: case and runs of white space do not make a new example."""
    return " ".join(text.split()).casefold()


@dataclass
class Pool:
    path: str
    columns: list[str]
    rows: list[dict[str, Any]]
    lines: list[int]
    texts: list[str]
    labelled: list[bool]  # the label column already holds a value
    text_column: str
    label_column: str
    set_aside: dict[str, int] = field(default_factory=dict)  # why rows are not candidates, and how many

    def candidates(self, known: set[str]) -> list[int]:
        """Rows that may be picked: not labelled, not a repeat of an earlier pool row, not a training text
        (``known``: training texts in ``same_text`` form). Counts what was set aside, by reason."""
        seen: set[str] = set()
        out, aside = [], {"already labelled": 0, "repeats an earlier pool row": 0, "already in the training data": 0}
        for i, text in enumerate(self.texts):
            key = same_text(text)
            if self.labelled[i]:
                aside["already labelled"] += 1
            elif key in seen:
                aside["repeats an earlier pool row"] += 1
            elif key in known:
                aside["already in the training data"] += 1
            else:
                out.append(i)
            seen.add(key)
        self.set_aside = {k: v for k, v in aside.items() if v}
        return out


def read_pool(path: str | Path, text_column: str, label_column: str) -> Pool:
    """Every row of a CSV, JSONL or Parquet file; DataError naming each row whose text is missing or empty."""
    if not Path(path).is_file():
        raise InputError(f"--pool {path}: {not_found(path)}")
    table = read_table(str(path))
    report = DataReport()
    if not require_columns(table, [("--text-column / data.text_column", text_column)], report):
        raise DataError(report.problems)
    for row, line in zip(table.rows, table.lines):
        text = row.get(text_column)
        if not isinstance(text, str) or not text.strip():
            kind = "missing" if text is None else ("empty" if isinstance(text, str) else f"not text ({text!r})")
            report.add("error", "non_text", f"text is {kind}; every pool row needs one", table.path, line, text_column)
    if report.problems:
        raise DataError(report.problems)
    if not table.rows:
        raise InputError(f"{table.path}: the pool holds no rows")
    return Pool(
        path=table.path,
        columns=list(table.columns),
        rows=table.rows,
        lines=list(table.lines),
        texts=[row[text_column] for row in table.rows],
        labelled=[normalise_label(row.get(label_column)) is not None for row in table.rows],
        text_column=text_column,
        label_column=label_column,
    )
