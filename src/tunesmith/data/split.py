"""Stratified, seeded splitting and sub-sampling (numpy only)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def stratified_split(labels: list[str], share: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (keep, held_out): each class contributes ``share`` of its rows (at least one when it has two)."""
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    keep, held = [], []
    for label in sorted(by_class):
        idx = np.array(by_class[label])
        rng.shuffle(idx)
        n_held = int(round(len(idx) * share))
        if len(idx) >= 2:
            n_held = min(max(n_held, 1), len(idx) - 1)
        else:
            n_held = 0
        held.extend(idx[:n_held].tolist())
        keep.extend(idx[n_held:].tolist())
    return sorted(keep), sorted(held)


def stratified_sample(labels: list[str], n: int, seed: int) -> list[int]:
    """At most n indices with class shares kept; the order of the file is preserved."""
    if n >= len(labels):
        return list(range(len(labels)))
    _, held = stratified_split(labels, n / len(labels), seed)
    return held
