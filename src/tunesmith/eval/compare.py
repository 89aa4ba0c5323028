"""Tuned vs baselines on the same examples: paired bootstrap confidence intervals on the difference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tunesmith.eval.metrics import macro_f1
from tunesmith.runtime import small_blas


def _macro_f1_batch(y: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    """Macro-F1 for many resamples at once; y and p are (resamples, n)."""
    r = y.shape[0]
    idx = (np.arange(r)[:, None] * k * k + y * k + p).ravel()
    cm = np.bincount(idx, minlength=r * k * k).reshape(r, k, k).astype(float)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    pred, sup = cm.sum(axis=1), cm.sum(axis=2)
    f1 = np.divide(2 * tp, pred + sup, out=np.zeros_like(tp), where=(pred + sup) > 0)
    present = (sup > 0) | (pred > 0)
    return (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def paired_bootstrap(
    y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, k: int, resamples: int, confidence: float, seed: int = 0
) -> dict[str, Any]:
    """Difference a - b in accuracy and macro-F1, with percentile intervals from resampling examples."""
    y_true, pred_a, pred_b = (np.asarray(x, dtype=np.int64) for x in (y_true, pred_a, pred_b))
    n = len(y_true)
    rng = np.random.default_rng(seed)
    lo_q, hi_q = (1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100
    out: dict[str, Any] = {}
    acc_diffs, f1_diffs = [], []
    for start in range(0, resamples, 200):  # chunks bound memory at 200 x n
        idx = rng.integers(0, n, size=(min(200, resamples - start), n))
        y, a, b = y_true[idx], pred_a[idx], pred_b[idx]
        acc_diffs.append((a == y).mean(axis=1) - (b == y).mean(axis=1))
        f1_diffs.append(_macro_f1_batch(y, a, k) - _macro_f1_batch(y, b, k))
    for name, diffs, point in (
        ("accuracy", np.concatenate(acc_diffs), float((pred_a == y_true).mean() - (pred_b == y_true).mean())),
        ("macro_f1", np.concatenate(f1_diffs), macro_f1(y_true, pred_a, k) - macro_f1(y_true, pred_b, k)),
    ):
        lo, hi = np.percentile(diffs, [lo_q, hi_q])
        out[name] = {
            "difference": point,
            "ci_low": float(lo),
            "ci_high": float(hi),
            "significant": bool(lo > 0 or hi < 0),
        }
    out["resamples"] = resamples
    out["confidence"] = confidence
    return out


def bootstrap_interval(
    y_true: np.ndarray, pred: np.ndarray, k: int, resamples: int, confidence: float, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of one model's accuracy and macro-F1 from resampling examples (the whiskers)."""
    y_true, pred = np.asarray(y_true, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    n = len(y_true)
    if n == 0:
        return {"accuracy": (0.0, 0.0), "macro_f1": (0.0, 0.0)}
    rng = np.random.default_rng(seed)
    acc, f1 = [], []
    for start in range(0, resamples, 200):
        idx = rng.integers(0, n, size=(min(200, resamples - start), n))
        acc.append((pred[idx] == y_true[idx]).mean(axis=1))
        f1.append(_macro_f1_batch(y_true[idx], pred[idx], k))
    q = [(1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100]
    return {
        name: tuple(float(v) for v in np.percentile(np.concatenate(vals), q))
        for name, vals in (("accuracy", acc), ("macro_f1", f1))
    }


def bootstrap_mean_interval(
    values: np.ndarray, resamples: int, confidence: float, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of a mean from resampling its items (per-token losses, per-answer scores)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = np.concatenate(
        [
            v[rng.integers(0, len(v), size=(min(500, resamples - s), len(v)))].mean(axis=1)
            for s in range(0, resamples, 500)
        ]
    )
    lo, hi = np.percentile(means, [(1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100])
    return float(lo), float(hi)


def bootstrap_ratio_interval(
    rows: list[tuple[float, int]], resamples: int, confidence: float, seed: int = 0
) -> tuple[float, float]:
    """Interval of sum(a)/sum(b) over (a, b) rows resampled whole: a loss per token whose tokens come in
    sequences (tokens of one sequence are not independent, so the sequences are what is resampled)."""
    if not rows:
        return (float("nan"), float("nan"))
    a = np.array([r[0] for r in rows], dtype=float)
    b = np.array([r[1] for r in rows], dtype=float)
    rng = np.random.default_rng(seed)
    ratios = []
    for s in range(0, resamples, 500):
        idx = rng.integers(0, len(a), size=(min(500, resamples - s), len(a)))
        ratios.append(a[idx].sum(axis=1) / np.maximum(b[idx].sum(axis=1), 1))
    lo, hi = np.percentile(np.concatenate(ratios), [(1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100])
    return float(lo), float(hi)


def majority_predictions(train_labels: np.ndarray, n: int) -> np.ndarray:
    values, counts = np.unique(train_labels, return_counts=True)
    return np.full(n, values[counts.argmax()], dtype=np.int64)


@dataclass
class LogisticFit:
    """A logistic regression as one linear layer on the raw features: logits = x @ weight.T + bias (classes the
    training data lacks get a bias far below the rest)."""

    weight: np.ndarray  # (classes, features)
    bias: np.ndarray  # (classes,)
    C: float

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        z = x @ self.weight.T + self.bias
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def fit_logistic(
    train_x: np.ndarray,
    train_y: np.ndarray,
    seed: int,
    classes: int | None = None,
    groups: list[str] | None = None,
) -> LogisticFit:
    """Logistic regression on standardised features, its strength chosen by 3-fold cross-validation on train only
    (folds of whole groups when ``groups`` are given: rows of one page in two folds favour a weak penalty),
    folded back into one linear layer on the raw features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # float64 whatever the features came in: on float32 the cross-validation could pick another strength for the
    # same rows (the probe's cached features against the run's head).
    train_x = np.asarray(train_x, dtype=np.float64)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, random_state=seed))
    folds = min(3, int(np.bincount(train_y).min())) if len(np.unique(train_y)) > 1 else 2
    cv: Any = max(folds, 2)
    if groups and len(set(groups)) >= 3:
        from sklearn.model_selection import GroupKFold

        cv = list(GroupKFold(n_splits=3).split(train_x, train_y, groups))
    search = GridSearchCV(pipe, {"logisticregression__C": [0.01, 0.1, 1.0]}, cv=cv, n_jobs=1)
    with small_blas():
        search.fit(train_x, train_y)
    scaler, lr = search.best_estimator_[0], search.best_estimator_[1]
    coef, intercept = lr.coef_, lr.intercept_
    if coef.shape[0] == 1:  # binary: one score for the second class; as two logits, [0, z]
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.array([0.0, intercept[0]])
    scale = np.where(scaler.scale_ == 0, 1.0, scaler.scale_)
    w = coef / scale
    b = intercept - (coef * (scaler.mean_ / scale)).sum(axis=1)
    k = classes or int(train_y.max()) + 1
    weight = np.zeros((k, train_x.shape[1]))
    bias = np.full(k, float(b.min()) - 30.0)  # unseen classes: never the argmax, probability ~0
    weight[lr.classes_], bias[lr.classes_] = w, b
    return LogisticFit(weight, bias, float(search.best_params_["logisticregression__C"]))


def linear_probe(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, seed: int, groups: list[str] | None = None
) -> tuple[np.ndarray, float]:
    """Logistic regression on frozen features (``fit_logistic``). Returns the probabilities on test_x and the
    chosen C."""
    fitted = fit_logistic(train_x, train_y, seed, groups=groups)
    return fitted.probabilities(np.asarray(test_x, dtype=np.float64)), fitted.C


def paired_bootstrap_mean(
    scores_a: np.ndarray, scores_b: np.ndarray, resamples: int, confidence: float, seed: int = 0
) -> dict[str, Any]:
    """Difference of mean per-example scores a - b (same examples), with a percentile bootstrap interval."""
    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    n = len(a)
    if n == 0:
        return {"difference": 0.0, "ci_low": 0.0, "ci_high": 0.0, "significant": False, "n": 0}
    diff = a - b
    lo, hi = bootstrap_mean_interval(diff, resamples, confidence, seed)
    return {
        "difference": float(diff.mean()),
        "ci_low": float(lo),
        "ci_high": float(hi),
        "significant": bool(lo > 0 or hi < 0),
        "n": n,
        "resamples": resamples,
        "confidence": confidence,
    }


def scored(y_true: np.ndarray, probs: np.ndarray, labels: list[str], confidence: float = 0.95) -> dict[str, Any]:
    """Classification metrics with each one's bootstrap interval (``intervals``): what `tunesmith eval` prints."""
    from tunesmith.eval.metrics import classification_metrics

    m = classification_metrics(y_true, probs, labels)
    m["intervals"] = {
        k: list(v) for k, v in bootstrap_interval(y_true, probs.argmax(1), len(labels), 1000, confidence).items()
    }
    m["confidence"] = confidence
    return m


def interval_verdict(c: dict[str, Any], confidence: float, against: str, figures: str) -> dict[str, Any]:
    """One sentence from a paired difference: better (its interval above zero), worse (below), else not measurably
    better, then ``figures``."""
    lo, hi = c["ci_low"], c["ci_high"]
    status = "better" if lo > 0 else ("worse" if hi < 0 else "not measurably better")
    lead = {"better": "Better than", "worse": "Worse than", "not measurably better": "Not measurably better than"}
    tail = "; the interval includes zero." if status == "not measurably better" else "."
    return {"status": status, "text": f"{lead[status]} {against}: {figures}{tail}", "against": "base"}
