"""A labelling queue: the rows "what to label next" picked from a pool (``labels/NAME.csv``, written by
``tunesmith label-next``), the classes and columns they are labelled with (``labels/NAME.json``), each label saved
into the CSV as it is given, and the training file a retrain reads: the source run's training data plus the rows
labelled so far. Text and image queues alike: an image queue's rows name their images (a path in the pool's
folder, or ``pool.npz[17]``), shown to the person labelling as pictures, and its retrain writes the training
images and the labelled ones as a listing beside PNG copies (the task's ``PoolKind.write_training``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunesmith.data.readers import read_table
from tunesmith.errors import InputError
from tunesmith.files import write_csv, write_json
from tunesmith.workspace.paths import Folders, safe_name

if TYPE_CHECKING:
    from tunesmith.tasks.pool import PoolKind


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
        """The queue as a page shows it: the rows (the text or the image's name, reason, label given), the classes,
        how many are done, and whether the rows are ``images``."""
        meta = self.meta
        columns, rows = self.rows()
        input_col, label_col = input_column(meta), meta["label_column"]
        items = [
            {"index": i, "text": str(r.get(input_col) or ""), "label": str(r.get(label_col) or ""),
             "reason": str(r.get("reason") or ""), "line": r.get("pool_line")}
            for i, r in enumerate(rows)
        ]  # fmt: skip
        done = sum(1 for it in items if it["label"])
        images = meta.get("kind") == "images"
        return {**meta, "name": self.name, "ready": self.ready(), "items": items, "done": done, "columns": columns,
                "images": images}  # fmt: skip

    def picture_png(self, index: int) -> bytes:
        """Row ``index`` of an image queue as a PNG, read from its pool (confined to the pool's folder)."""
        import io

        from PIL import Image

        meta = self.meta
        if meta.get("kind") != "images":
            raise InputError(f"queue {self.name!r}: its rows are texts, not images")
        _, rows = self.rows()
        if not 0 <= index < len(rows):
            raise InputError(f"row {index}: the queue has rows 0 to {len(rows) - 1}")
        kind, pool = self._pool(meta)
        pixels = kind.picture(pool, str(rows[index].get(input_column(meta)) or ""))
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, format="PNG")
        return out.getvalue()

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
        if meta.get("kind") == "images":
            return self._image_training(meta, train, labelled), len(labelled)
        original = read_table(train)
        columns = list(original.columns)
        out = self.folders.sub("labels") / f"{self.name}-train.csv"
        merged = [[r.get(c) for c in columns] for r in original.rows] + [[r.get(c) for c in columns] for r in labelled]
        write_csv(out, columns, merged)
        return out, len(labelled)

    def _image_training(self, meta: dict[str, Any], train: Path, labelled: list[dict[str, Any]]) -> Path:
        """``labels/NAME-train/train.csv``: the source run's training images (any layout the task reads) and the
        labelled pool images, as a listing beside lossless PNG copies."""
        from tunesmith.data.images import ImageRef

        kind, pool = self._pool(meta)
        column, label_col = input_column(meta), meta["label_column"]
        source = kind.read(train, column, label_col, meta.get("label_names"))
        missing = [line for line, label in zip(source.lines, source.labels) if label is None]
        if missing:
            raise InputError(f"{train}: {len(missing)} training images have no label (first at {missing[0]})")
        inputs = list(source.inputs)
        labels = [str(x) for x in source.labels]
        for row in labelled:
            cell = str(row.get(column) or "")
            inputs.append(ImageRef(cell, kind.picture(pool, cell), "RGB"))
            labels.append(str(row[label_col]))
        return kind.write_training(self.folders.sub("labels") / f"{self.name}-train", inputs, labels, column, label_col)

    def _pool(self, meta: dict[str, Any]) -> tuple[PoolKind, Path]:
        """The source task's pool reader and the queue's pool, confined to the workspace's folders."""
        from tunesmith.labels.next import kind_of

        return kind_of(meta["task"]), self.folders.confine(meta["pool"], "the queue's pool")


def input_column(meta: dict[str, Any]) -> str:
    """The column holding each row's text or image (queues made before images were labelled say text_column)."""
    return str(meta.get("input_column") or meta.get("text_column") or "text")
