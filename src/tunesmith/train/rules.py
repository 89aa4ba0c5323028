"""The arithmetic of the batch-size and epoch rules (pipeline/defaults.py gives them their reasons; a task that
trains extra models of its own, such as tabular's fewer-labels comparison, applies the same rules)."""

from __future__ import annotations

import math

MIN_STEPS_PER_EPOCH = 50


def batch_size_rule(n_train: int, sizes: tuple[int, ...]) -> int:
    """The largest of ``sizes`` that keeps at least MIN_STEPS_PER_EPOCH optimizer steps per epoch, else the
    smallest."""
    fits = [b for b in sizes if n_train / b >= MIN_STEPS_PER_EPOCH]
    return max(fits) if fits else sizes[0]


def epochs_rule(n_train: int, batch_size: int, target: int, low: int, high: int) -> int:
    """Epochs that give about ``target`` optimizer steps, between ``low`` and ``high``."""
    per_epoch = max(1, math.ceil(n_train / batch_size))
    return min(high, max(low, math.ceil(target / per_epoch)))
