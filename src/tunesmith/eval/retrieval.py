"""Retrieval quality per query: recall@k, MRR@10 and nDCG@10 against the passages each query should find.

Relevance is binary (a passage the query was paired with). Scores are per query, so the base and the tuned
encoder are compared on the same queries with a paired bootstrap."""

from __future__ import annotations

from typing import Any

import numpy as np

from tunesmith.eval.compare import bootstrap_mean_interval, interval_verdict, paired_bootstrap_mean

KS = (1, 5, 10)
NAMES = ("recall_at_1", "recall_at_5", "recall_at_10", "mrr_at_10", "ndcg_at_10")
SHOWN = {
    "recall_at_1": "recall@1",
    "recall_at_5": "recall@5",
    "recall_at_10": "recall@10",
    "mrr_at_10": "MRR@10",
    "ndcg_at_10": "nDCG@10",
}


def rankings(queries: np.ndarray, corpus: np.ndarray, depth: int = 10) -> np.ndarray:
    """(queries, depth) corpus indices, best first (ties by index), exact."""
    depth = min(depth, len(corpus))
    scores = queries @ corpus.T
    top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def per_query(ranked: np.ndarray, relevant: list[set[int]]) -> dict[str, np.ndarray]:
    out = {n: np.zeros(len(relevant)) for n in NAMES}
    discounts = 1.0 / np.log2(np.arange(2, 12))
    for i, (row, rel) in enumerate(zip(ranked, relevant)):
        hits = np.array([int(j) in rel for j in row[:10]], dtype=float)
        for k in KS:
            out[f"recall_at_{k}"][i] = hits[:k].sum() / len(rel)
        first = np.flatnonzero(hits)
        out["mrr_at_10"][i] = 1.0 / (first[0] + 1) if len(first) else 0.0
        ideal = discounts[: min(len(rel), 10)].sum()
        out["ndcg_at_10"][i] = float((hits * discounts[: len(hits)]).sum() / ideal)
    return out


def summarise(scores: dict[str, np.ndarray], bootstrap: int, confidence: float, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {n: float(np.mean(v)) for n, v in scores.items()}
    out["intervals"] = {n: bootstrap_mean_interval(list(v), bootstrap, confidence, seed) for n, v in scores.items()}
    out["n"] = len(next(iter(scores.values())))
    return out


def compare(
    tuned: dict[str, np.ndarray], base: dict[str, np.ndarray], bootstrap: int, confidence: float, seed: int
) -> dict[str, Any]:
    return {n: paired_bootstrap_mean(list(tuned[n]), list(base[n]), bootstrap, confidence, seed) for n in NAMES}


def verdict(base: dict[str, Any], tuned: dict[str, Any], comps: dict[str, Any], confidence: float) -> dict[str, Any]:
    """One sentence on recall@5 (what a retrieval-augmented answer reads), with the interval."""
    c = comps["recall_at_5"]
    lo, hi = c["ci_low"] * 100, c["ci_high"] * 100
    figures = (
        f"recall@5 {tuned['recall_at_5'] * 100:.1f}% against {base['recall_at_5'] * 100:.1f}%, "
        f"{c['difference'] * 100:+.1f} points ({int(confidence * 100)}% CI {lo:+.1f} to {hi:+.1f}, {c['n']} queries); "
        f"MRR@10 {tuned['mrr_at_10']:.3f} against {base['mrr_at_10']:.3f}"
    )
    return interval_verdict(c, confidence, "the general encoder", figures)
