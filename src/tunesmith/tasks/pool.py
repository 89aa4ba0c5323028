"""An unlabelled pool: the examples a user could label next (label-next, learn), read per task.

A classification task that can rank unlabelled examples names a ``PoolKind`` (``Task.pool``): how its pool files
are read, what makes two examples the same one, how the frozen pre-trained model embeds them, and how a round of
the active-learning loop writes its training data. The labels layer (labels/next.py, labels/learn.py) works on
the ``Pool`` it returns and never looks inside an example, so text and images share one picking code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tunesmith.data.cache import ArrayCache, cache_key, cache_root
from tunesmith.data.validate import DataReport, LabelTypeError, named_label
from tunesmith.errors import DataError

Embed = Callable[[list[Any]], np.ndarray]  # examples -> one frozen-feature row each


@dataclass
class Pool:
    """Every row of a pool file, in file order."""

    path: str
    columns: list[str]  # the pool's own columns, written back with each pick
    rows: list[dict[str, Any]]  # each row's values of those columns
    lines: list[int]  # where each row is: its line in a table, its position (from 1) in an array file
    inputs: list[Any]  # what the model reads: texts, or ImageRefs
    keys: list[str]  # two rows with one key are the same example (case and spacing of a text, pixels of an image)
    labels: list[str | None]  # the label column's value; None where it is empty
    input_column: str
    label_column: str
    unit: str = "rows"
    line_word: str = "line"  # what ``lines`` count: lines of a table, rows of an array file
    set_aside: dict[str, int] = field(default_factory=dict)  # why rows are not candidates, and how many

    def shown(self, i: int, width: int = 60) -> str:
        """Row ``i`` as a person recognises it: the start of its text, or the image's file."""
        value = self.inputs[i]
        if isinstance(value, str):
            return " ".join(value.split())[:width]
        return Path(str(getattr(value, "source", value))).name[-width:]

    def with_labels(self, labels: list[str | None]) -> Pool:
        """The same rows, labelled as given (the learning loop's revealed rows)."""
        return replace(self, labels=list(labels), set_aside={})

    def candidates(self, known: set[str]) -> list[int]:
        """Rows that may be picked: not labelled, not a repeat of an earlier pool row, not a training example
        (``known``: training keys). Counts what was set aside, by reason."""
        seen: set[str] = set()
        out, aside = [], {"already labelled": 0, "repeats an earlier pool row": 0, "already in the training data": 0}
        for i, key in enumerate(self.keys):
            if self.labels[i] is not None:
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


class PoolKind:
    """What a task does with a pool. Subclasses live in the task's folder."""

    unit: ClassVar[str] = "rows"  # what one pool row is called in messages
    input_option: ClassVar[str] = ""  # the command-line option naming the input column
    default_input: ClassVar[str] = ""  # the input column of a pool read without a config (cold start)
    shown_as: ClassVar[str] = "example"  # the terminal listing's column header
    # label-next's strategy when none is asked for: the one that needed the fewest labels on the recipe suite's
    # sets of this kind (bench/bench_active.py, docs/benchmarks.md)
    default_strategy: ClassVar[str] = "diverse"
    # cosine similarity of two examples' frozen features from which they count as near-duplicates (label-next's
    # --near): on MiniLM's text features no two training examples of the suite's text sets reach 0.99
    default_near: ClassVar[float] = 0.95

    def input_column(self, data: Any) -> str:
        """The pool's input column a config's data section names (text_column, path_column)."""
        raise NotImplementedError

    def read(self, path: str | Path, input_column: str, label_column: str, label_names: list[str] | None) -> Pool:
        """Every row; DataError naming each unusable one (file, line, field); InputError for a missing file."""
        raise NotImplementedError

    def encoder(self, spec: str, cache_dir: str | None, trust_remote_code: bool, max_length: int | None) -> Embed:
        """The frozen pre-trained model's mean features of examples, cached by their content (the model loads
        on the first miss)."""
        raise NotImplementedError

    def predictable(self, inputs: list[Any]) -> list[Any]:
        """What a finished run's predictor reads for these examples."""
        return inputs

    def write_training(
        self, folder: Path, inputs: list[Any], labels: list[str], input_column: str, label_column: str
    ) -> Path:
        """A training file in ``folder`` that the task reads back as these labelled examples."""
        raise NotImplementedError

    def picture(self, path: str | Path, cell: str) -> np.ndarray | None:
        """The RGB pixels of the pool row whose input cell (as label-next writes it back) is ``cell``, for a
        person to look at; None where the examples are not pictures. InputError when there is no such row."""
        return None


def read_labels(values: list[Any], lines: list[int], path: str, column: str, names: list[str] | None) -> list:
    """Normalised labels of a pool's label cells; DataError naming each cell that is a list or mapping."""
    report, out = DataReport(), []
    for value, line in zip(values, lines):
        try:
            out.append(named_label(value, names))
        except LabelTypeError as exc:
            report.add("error", "label_type", str(exc), path, line, column)
            out.append(None)
    if report.problems:
        raise DataError(report.problems)
    return out


def cached_embeddings(
    cache_dir: str | None, kind: str, model_fp: str, size: int, keys: list[str], compute: Callable[[], np.ndarray]
) -> np.ndarray:
    """Frozen features of examples identified by ``keys``, from the feature cache or ``compute``: a loop that asks
    again and again embeds a pool once."""
    store = ArrayCache(cache_root(cache_dir), "features")
    digest = hashlib.sha256("\0".join(keys).encode("utf-8", "replace")).hexdigest()
    key = cache_key(f"pool-{kind}", model_fp, size, len(keys), digest)
    hit = store.get(key)
    if hit is None:
        hit = {"mean": compute()}
        store.put(key, hit)
    return hit["mean"]
