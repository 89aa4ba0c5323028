"""Metrics for rare events (fraud, defaults, failures), where accuracy says little: average precision (the area
under the precision-recall curve), ROC-AUC, recall at a fixed false-positive rate, precision among the top-scored
rows, the decision threshold with the lowest cost, calibration of the positive class, and paired bootstrap
intervals on the difference between two scorers on the same rows.

Written here rather than taken from scikit-learn because the bootstrap calls them thousands of times per report:
one sort per call, no input validation (each agrees with scikit-learn's definition; tests/unit checks that)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Metric = Callable[[np.ndarray, np.ndarray], float]


def _ranked(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative true and false positives at each distinct score, highest first."""
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last row of each run of tied scores
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    return tp.astype(float), fp.astype(float), s[last]


def average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """Sum over thresholds of precision x recall gained (scikit-learn's average_precision_score)."""
    pos = y.sum()
    if pos == 0:
        return float("nan")
    tp, fp, _ = _ranked(y, s)
    precision = tp / (tp + fp)
    recall_gain = np.diff(np.r_[0.0, tp]) / pos
    return float((precision * recall_gain).sum())


def roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    pos, neg = y.sum(), len(y) - y.sum()
    if pos == 0 or neg == 0:
        return float("nan")
    tp, fp, _ = _ranked(y, s)
    tpr, fpr = np.r_[0.0, tp / pos], np.r_[0.0, fp / neg]
    return float(np.trapezoid(tpr, fpr))


def recall_at_fpr(y: np.ndarray, s: np.ndarray, max_fpr: float) -> float:
    """The highest share of positives caught while flagging at most ``max_fpr`` of the negatives."""
    pos, neg = y.sum(), len(y) - y.sum()
    if pos == 0 or neg == 0:
        return float("nan")
    tp, fp, _ = _ranked(y, s)
    ok = fp / neg <= max_fpr + 1e-12
    return float(tp[ok].max() / pos) if ok.any() else 0.0


def precision_at_k(y: np.ndarray, s: np.ndarray, k: int) -> float:
    """Share of positives among the ``k`` highest-scored rows."""
    k = min(k, len(y))
    if k == 0:
        return float("nan")
    top = np.argsort(-s, kind="mergesort")[:k]
    return float(y[top].mean())


def detection_metrics(y: np.ndarray, s: np.ndarray, max_fpr: float, k: int) -> dict[str, float]:
    y = np.asarray(y, dtype=np.int64)
    s = np.asarray(s, dtype=np.float64)
    return {
        "average_precision": average_precision(y, s),
        "roc_auc": roc_auc(y, s),
        "recall_at_fpr": recall_at_fpr(y, s, max_fpr),
        "precision_at_k": precision_at_k(y, s, k),
    }


def choose_threshold(y: np.ndarray, p: np.ndarray, missed: float, false_alarm: float) -> float:
    """The probability at or above which a row is flagged with the lowest total cost on (y, p): missed x false
    negatives + false_alarm x false positives. Ties go to the higher threshold (fewer alarms)."""
    y = np.asarray(y, dtype=np.int64)
    tp, fp, scores = _ranked(y, np.asarray(p, dtype=np.float64))
    pos = y.sum()
    costs = np.r_[missed * pos, missed * (pos - tp) + false_alarm * fp]  # first: flag nothing
    best = int(np.argmin(costs))  # argmin takes the first: the highest threshold among equal costs
    return float("inf") if best == 0 else float(scores[best - 1])


def decision(y: np.ndarray, p: np.ndarray, threshold: float, missed: float, false_alarm: float) -> dict[str, Any]:
    """Counts and total cost of flagging rows with ``p >= threshold``."""
    y = np.asarray(y, dtype=np.int64)
    flag = np.asarray(p) >= threshold
    tp, fp = int((flag & (y == 1)).sum()), int((flag & (y == 0)).sum())
    fn, tn = int(((~flag) & (y == 1)).sum()), int(((~flag) & (y == 0)).sum())
    return {
        "flagged": int(flag.sum()),
        "true_positives": tp,
        "false_positives": fp,
        "missed": fn,
        "true_negatives": tn,
        "cost": missed * fn + false_alarm * fp,
        "recall": tp / max(tp + fn, 1),
        "precision": tp / max(tp + fp, 1) if tp + fp else float("nan"),
    }


def calibration(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Brier score, and predicted against observed positive rate per bin of equal row count (equal-width bins
    would put nearly every row of a rare event in the first one)."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(p, kind="mergesort")
    rows = []
    for chunk in np.array_split(order, min(bins, len(p))):
        if len(chunk):
            rows.append({"n": int(len(chunk)), "predicted": float(p[chunk].mean()), "observed": float(y[chunk].mean())})
    ece = sum(r["n"] * abs(r["predicted"] - r["observed"]) for r in rows) / max(len(p), 1)
    return {
        "brier": float(((p - y) ** 2).mean()),
        "ece": float(ece),
        "bins": rows,
        "mean_predicted": float(p.mean()),
        "observed_rate": float(y.mean()),
    }


def _resamples(y: np.ndarray, resamples: int, seed: int) -> list[np.ndarray]:
    """Row indices of bootstrap resamples that hold a positive and a negative (others are drawn again)."""
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    tries = 0
    while len(out) < resamples and tries < resamples * 10:
        tries += 1
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() != y[idx].max():
            out.append(idx)
    return out


def _percentiles(values: list[float], confidence: float) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    lo, hi = np.percentile(values, [(1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100])
    return float(lo), float(hi)


def paired_difference(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, metric: Metric, resamples: int, confidence: float, seed: int = 0
) -> dict[str, Any]:
    """metric(a) - metric(b) on the same rows, with a percentile interval from resampling rows."""
    y = np.asarray(y, dtype=np.int64)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    diffs = [metric(y[i], a[i]) - metric(y[i], b[i]) for i in _resamples(y, resamples, seed)]
    lo, hi = _percentiles(diffs, confidence)
    return {
        "difference": float(metric(y, a) - metric(y, b)),
        "ci_low": lo,
        "ci_high": hi,
        "significant": bool(lo > 0 or hi < 0),
    }


def interval(
    y: np.ndarray, s: np.ndarray, metric: Metric, resamples: int, confidence: float, seed: int = 0
) -> tuple[float, float]:
    """One scorer's percentile interval for ``metric`` from resampling rows."""
    y, s = np.asarray(y, dtype=np.int64), np.asarray(s, dtype=np.float64)
    return _percentiles([metric(y[i], s[i]) for i in _resamples(y, resamples, seed)], confidence)
