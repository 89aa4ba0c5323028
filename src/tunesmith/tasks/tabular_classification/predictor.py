"""A finished tabular run: class probabilities, the flag at the saved decision threshold, and the general
model's anomaly score for new rows (dicts of column -> value, or a CSV, JSONL or Parquet file)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.data.readers import read_table
from tunesmith.data.validate import Examples, normalise_label
from tunesmith.errors import DataError, InputError, Problem
from tunesmith.eval.compare import scored
from tunesmith.eval.rare_events import detection_metrics
from tunesmith.inference.base import PREDICTORS, Predictor
from tunesmith.inference.outputs import Prediction, check_output, write_records
from tunesmith.inference.weights import inside_run
from tunesmith.methods.base import ParityCheck
from tunesmith.tasks.tabular_classification.network import TabularModel
from tunesmith.tasks.tabular_classification.scoring import anomaly_scores, probabilities, target_index

SCALARS = (str, int, float, bool, type(None))
MAX_COLUMNS = 10_000


@dataclass(frozen=True)
class RowPrediction(Prediction):
    flagged: bool | None = None  # the probability of the positive class reached the saved decision threshold
    anomaly: float = 0.0  # the general model's anomaly score (higher: less like the training rows)


@PREDICTORS.register("tabular-classification")
class TabularPredictor(Predictor):
    input_kind = "row"

    def __init__(self, run_dir: Path, manifest: dict[str, Any], model: TabularModel, decision: dict | None):
        self.run_dir, self.manifest, self.model = run_dir, manifest, model
        self.labels = model.labels
        self.decision = decision
        self.schema = model.schema

    @classmethod
    def load(cls, run: Path, manifest: dict[str, Any]) -> TabularPredictor:
        import json

        folder = inside_run(run, manifest["export"].get("path"), "export.path")
        model = TabularModel.from_pretrained(folder)
        model.eval()
        decision = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("decision")
        return cls(run, manifest, model, decision)

    def check_rows(self, rows: Any) -> list[dict[str, Any]]:
        """Rows as mappings of column -> scalar; every column the model reads must be there (null for missing)."""
        if not isinstance(rows, list):
            raise InputError("predict takes a list of rows (mappings of column -> value)")
        needed = self.schema.names
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise InputError(f"row {i}: expected a mapping of column -> value, got {type(row).__name__}")
            if len(row) > MAX_COLUMNS:
                raise InputError(f"row {i}: {len(row)} columns; at most {MAX_COLUMNS}")
            bad = [k for k, v in row.items() if not isinstance(v, SCALARS)]
            if bad:
                raise InputError(
                    f"row {i}: column {bad[0]!r} holds a {type(row[bad[0]]).__name__}; allowed: a "
                    "string, a number, true/false or null"
                )
            missing = [c for c in needed if c not in row]
            if missing:
                raise InputError(
                    f"row {i}: missing column(s) {', '.join(missing)} (null marks a missing value); "
                    f"the model reads {', '.join(needed)}"
                )
        return rows

    def score(self, rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        inputs = self.schema.encode(self.check_rows(rows))
        return probabilities(self.model, inputs), anomaly_scores(self.model, inputs)

    def predict(self, rows: list[dict[str, Any]]) -> list[RowPrediction]:
        probs, anomaly = self.score(rows)
        t = target_index(self.labels)
        threshold = (self.decision or {}).get("threshold")
        has_decision = self.decision is not None and len(self.labels) == 2
        out = []
        for p, a in zip(probs, anomaly):
            i = int(p.argmax())
            flagged = (threshold is not None and bool(p[t] >= threshold)) if has_decision else None
            out.append(
                RowPrediction(
                    self.labels[i], float(p[i]), {lab: float(v) for lab, v in zip(self.labels, p)}, flagged, float(a)
                )
            )
        return out

    def predict_file(self, input_file: str | Path, output_file: str | Path, **options: Any) -> int:
        if options:
            raise InputError(f"{', '.join(options)}: generation options; this run is a tabular classifier")
        out = check_output(output_file)
        table = self._table(input_file)
        preds = self.predict([{c: r.get(c) for c in self.schema.names} for r in table.rows])
        records = []
        for line, p in zip(table.lines, preds):
            rec = {"line": line, "label": p.label, "score": round(p.score, 6)}
            rec |= {f"p_{k}": round(v, 6) for k, v in p.probabilities.items()}
            if p.flagged is not None:
                rec["flagged"] = p.flagged
            rec["anomaly"] = round(p.anomaly, 6)
            records.append(rec)
        write_records(out, records)
        return len(records)

    def _table(self, path: str | Path) -> Any:
        table = read_table(path)
        missing = [c for c in self.schema.names if c not in table.columns]
        if missing:
            raise DataError(
                [
                    Problem(
                        "error",
                        "missing_column",
                        f"the model reads column(s) the file lacks: {', '.join(missing)}",
                        str(path),
                        1,
                        missing[0],
                    )
                ]
            )
        return table

    def _labelled(self, path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
        column = self.manifest["data"].get("label_column", "label")
        table = self._table(path)
        if column not in table.columns:
            raise DataError(
                [
                    Problem(
                        "error", "missing_column", f"label column {column!r} is not in the file", str(path), 1, column
                    )
                ]
            )
        rows, labels, problems = [], [], []
        for row, line in zip(table.rows, table.lines):
            label = normalise_label(row.get(column))
            if label is None:
                continue
            if label not in self.labels:
                problems.append(
                    Problem(
                        "error",
                        "unseen_label",
                        f"label {label!r} is not one the model knows ({', '.join(self.labels)})",
                        str(path),
                        line,
                        column,
                    )
                )
            rows.append({c: row.get(c) for c in self.schema.names})
            labels.append(label)
        if problems or not rows:
            raise DataError(problems or [Problem("error", "no_labels", "no labelled rows", str(path), None, column)])
        return rows, labels

    def evaluate_file(self, path: str | Path) -> dict[str, Any]:
        rows, labels = self._labelled(path)
        probs, _ = self.score(rows)
        y = np.array([self.labels.index(v) for v in labels])
        t = target_index(self.labels)
        out = scored(y, probs, self.labels)
        out["detection"] = {self.labels[t]: detection_metrics((y == t).astype(np.int64), probs[:, t], 0.01, 100)}
        return out

    def example_scores(self, examples: Examples) -> np.ndarray:
        """Per row: the log loss of its label (the gate compares the mean, lower is better)."""
        probs, _ = self.score([dict(x) for x in examples.inputs])
        index = {lab: i for i, lab in enumerate(self.labels)}
        p = np.array([probs[i, index[y]] if y in index else 0.0 for i, y in enumerate(examples.labels)])
        return -np.log(np.clip(p, 1e-12, 1.0))

    def parity_check(self) -> ParityCheck:
        raise InputError(f"{self.run_dir}: a tabular run has no adapter to merge; its model/ folder is complete")
