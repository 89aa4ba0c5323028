"""A labelling queue: the rows "what to label next" picked from a pool (``labels/NAME.csv``, written by
``tunesmith label-next``), the classes and columns they are labelled with (``labels/NAME.json``), each label saved
into the CSV as it is given, and the training file a retrain reads: the source run's training data plus the rows
labelled so far."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunesmith.data.readers import read_table
from tunesmith.errors import InputError
from tunesmith.files import write_csv, write_json
from tunesmith.workspace.paths import Folders, safe_name


class LabelQueue:
    def __init__(self, folders: Folders, name: str):
        self.folders, self.name = folders, safe_name(name, "queue")
        self.csv = folders.home / "labels" / f"{self.name}.csv"
        self.meta_path = folders.home / "labels" / f"{self.name}.json"

    @classmethod
    def names(cls, folders: Folders) -> list[str]:
        return sorted(p.stem for p in (folders.home / "labels").glob("*.json"))

    def write_meta(self, meta: dict[str, Any]) -> None:
        self.meta_path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.meta_path, meta)

    @property
    def meta(self) -> dict[str, Any]:
        if not self.meta_path.is_file():
            raise InputError(f"queue {self.name!r}: no such labelling queue")
        return json.loads(self.meta_path.read_text(encoding="utf-8"))

    def ready(self) -> bool:
        return self.csv.is_file()

    def rows(self) -> tuple[list[str], list[dict[str, Any]]]:
        if not self.csv.is_file():
            return [], []
        table = read_table(self.csv)
        return table.columns, table.rows

    def state(self) -> dict[str, Any]:
        """The queue as a page shows it: the rows (text, reason, label given), the classes, how many are done."""
        meta = self.meta
        columns, rows = self.rows()
        text_col, label_col = meta["text_column"], meta["label_column"]
        items = [
            {"index": i, "text": str(r.get(text_col) or ""), "label": str(r.get(label_col) or ""),
             "reason": str(r.get("reason") or ""), "line": r.get("pool_line")}
            for i, r in enumerate(rows)
        ]  # fmt: skip
        done = sum(1 for it in items if it["label"])
        return {**meta, "name": self.name, "ready": self.ready(), "items": items, "done": done, "columns": columns}

    def set_label(self, index: int, label: str) -> dict[str, Any]:
        """Save one label (an empty one takes it back); InputError for a class the queue does not have."""
        meta = self.meta
        if label and label not in meta["classes"]:
            raise InputError(f"label {label!r}: not one of this queue's classes ({', '.join(meta['classes'])})")
        columns, rows = self.rows()
        if not 0 <= index < len(rows):
            raise InputError(f"row {index}: the queue has rows 0 to {len(rows) - 1}")
        rows[index][meta["label_column"]] = label
        write_csv(self.csv, columns, ([r.get(c) for c in columns] for r in rows))
        return self.state()

    def training_file(self) -> tuple[Path, int]:
        """``labels/NAME-train.csv``: the source run's training rows and the rows labelled so far (the source's
        columns; a column the pool lacks is left empty). Returns (file, labelled rows added)."""
        meta = self.meta
        _, rows = self.rows()
        labelled = [r for r in rows if r.get(meta["label_column"])]
        if not labelled:
            raise InputError(f"queue {self.name!r}: nothing is labelled yet")
        train = self.folders.confine(meta["train"], "the source run's data.train")
        original = read_table(train)
        columns = list(original.columns)
        out = self.folders.sub("labels") / f"{self.name}-train.csv"
        merged = [[r.get(c) for c in columns] for r in original.rows] + [[r.get(c) for c in columns] for r in labelled]
        write_csv(out, columns, merged)
        return out, len(labelled)
