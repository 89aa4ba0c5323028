"""Prediction records: what a classifier returns, and prediction files written atomically."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.errors import InputError
from tunesmith.files import atomic_write_text


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float
    probabilities: dict[str, float]


def predictions(probs: np.ndarray, labels: list[str]) -> list[Prediction]:
    """One Prediction per row of class probabilities."""
    out = []
    for row in probs:
        i = int(row.argmax())
        out.append(Prediction(labels[i], float(row[i]), {lab: float(p) for lab, p in zip(labels, row)}))
    return out


def prediction_record(p: Prediction) -> dict[str, Any]:
    return {"label": p.label, "score": round(p.score, 6), **{f"p_{k}": round(v, 6) for k, v in p.probabilities.items()}}


def check_output(path: str | Path, allowed: tuple[str, ...] = (".jsonl", ".csv")) -> Path:
    """Where predictions go, checked before any work is done."""
    out = Path(path)
    if out.suffix.lower() not in allowed:
        if allowed == (".jsonl",):
            raise InputError(f"--output {out}: generation writes JSONL (.jsonl)")
        raise InputError(f"--output {out}: allowed endings are {' and '.join(allowed)}")
    return out


def write_records(out: Path, records: list[dict[str, Any]]) -> None:
    """Prediction rows as JSON lines or CSV (by the file's ending), written atomically."""
    if out.suffix.lower() == ".jsonl":
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
        data = buf.getvalue()
    atomic_write_text(out, data)
