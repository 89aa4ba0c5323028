"""Scores of a tabular model on encoded rows: class probabilities, frozen features, anomaly scores; and which
class the rare-event figures are about."""

from __future__ import annotations

from typing import Any

import numpy as np

Arrays = tuple[np.ndarray, np.ndarray]  # (numeric, categorical)


def _batched(model: Any, inputs: Arrays, fn: Any, batch_size: int = 1024) -> np.ndarray:
    import torch

    num, cat = inputs
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(num), batch_size):
            out.append(fn(torch.from_numpy(num[s : s + batch_size]), torch.from_numpy(cat[s : s + batch_size])).float())
    if not out:
        return np.zeros((0,), np.float32)
    return torch.cat(out).numpy()


def probabilities(model: Any, inputs: Arrays, batch_size: int = 1024) -> np.ndarray:
    import torch

    return _batched(model, inputs, lambda n, c: torch.softmax(model(n, c).float(), dim=-1), max(batch_size, 256))


def encode_rows(model: Any, inputs: Arrays) -> np.ndarray:
    return _batched(model, inputs, model.features)


def anomaly_scores(model: Any, inputs: Arrays) -> np.ndarray:
    return _batched(model, inputs, model.anomaly_scores)


def target_index(labels: list[str], y: np.ndarray | None = None) -> int:
    """The class the rare-event figures are about: the positive class (index 1) of two, else the rarest."""
    if len(labels) == 2 or y is None:
        return 1
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=len(labels))
    present = np.where(counts > 0, counts, np.iinfo(np.int64).max)
    return int(present.argmin())
