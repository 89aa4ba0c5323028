"""Classification metrics as pure numpy functions of (true ids, predicted probabilities)."""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def per_class(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 and support per class; 0 where undefined (no predictions or no examples)."""
    tp = np.diag(cm).astype(float)
    pred = cm.sum(axis=0).astype(float)
    support = cm.sum(axis=1).astype(float)
    precision = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1, support


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> float:
    """Mean F1 over the classes present in y_true or y_pred (as scikit-learn does)."""
    cm = confusion(y_true, y_pred, k)
    _, _, f1, support = per_class(cm)
    present = (support > 0) | (cm.sum(axis=0) > 0)
    return float(f1[present].mean()) if present.any() else 0.0


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """Weighted gap between confidence and accuracy over equal-width confidence bins."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(ece)


def reliability(y_true: np.ndarray, probs: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Per equal-width confidence bin: its range, count, mean confidence and accuracy (the reliability diagram)."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == np.asarray(y_true)).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    out = []
    for b in range(bins):
        sel = which == b
        if sel.any():
            out.append(
                {
                    "low": float(edges[b]),
                    "high": float(edges[b + 1]),
                    "n": int(sel.sum()),
                    "confidence": float(conf[sel].mean()),
                    "accuracy": float(correct[sel].mean()),
                }
            )
    return out


def binary_curves(y_true: np.ndarray, scores: np.ndarray, points: int = 200) -> dict[str, Any]:
    """ROC and precision-recall curves of the positive class (id 1), thinned to about ``points`` points, with
    the area under the ROC curve and average precision (scikit-learn's definitions)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    y = (np.asarray(y_true) == 1).astype(int)
    if y.min() == y.max():
        return {}
    fpr, tpr, _ = roc_curve(y, scores)
    precision, recall, _ = precision_recall_curve(y, scores)

    def thin(xs: np.ndarray, ys: np.ndarray) -> list[tuple[float, float]]:
        keep = np.unique(np.linspace(0, len(xs) - 1, min(points, len(xs))).astype(int))
        return [(float(xs[i]), float(ys[i])) for i in keep]

    return {
        "roc": thin(fpr, tpr),
        "roc_auc": float(roc_auc_score(y, scores)),
        "pr": thin(recall[::-1], precision[::-1]),
        "average_precision": float(average_precision_score(y, scores)),
        "positive_rate": float(y.mean()),
    }


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, labels: list[str]) -> dict[str, Any]:
    y_true = np.asarray(y_true, dtype=np.int64)
    k = len(labels)
    y_pred = probs.argmax(axis=1)
    cm = confusion(y_true, y_pred, k)
    precision, recall, f1, support = per_class(cm)
    eps = 1e-12
    nll = float(-np.log(np.clip(probs[np.arange(len(y_true)), y_true], eps, 1.0)).mean()) if len(y_true) else 0.0
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else 0.0,
        "macro_f1": macro_f1(y_true, y_pred, k),
        "loss": nll,
        "ece": expected_calibration_error(y_true, probs),
        "per_class": {
            lab: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, lab in enumerate(labels)
        },
        "confusion_matrix": cm.tolist(),
        "labels": list(labels),
    }


def slice_metrics(
    y_true: np.ndarray, probs: np.ndarray, labels: list[str], columns: dict[str, list[str]]
) -> dict[str, Any]:
    """Accuracy and macro-F1 per value of each slice column, and the largest gap between values."""
    out: dict[str, Any] = {}
    y_true = np.asarray(y_true)
    for col, values in columns.items():
        vals = np.asarray(values)
        rows = {}
        for v in sorted(set(values)):
            sel = vals == v
            m = classification_metrics(y_true[sel], probs[sel], labels)
            rows[v] = {"n": m["n"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
        accs = [r["accuracy"] for r in rows.values() if r["n"] > 0]
        worst = min(rows, key=lambda v: rows[v]["accuracy"])
        best = max(rows, key=lambda v: rows[v]["accuracy"])
        out[col] = {
            "values": rows,
            "accuracy_gap": float(max(accs) - min(accs)) if accs else 0.0,
            "best": best,
            "worst": worst,
        }
    return out
