"""Seeded batch order: shuffled, optionally grouped by length, reproducible per epoch (so resume can skip)."""

from __future__ import annotations

import numpy as np


def epoch_batches(
    lengths: list[int] | None, n: int, batch_size: int, seed: int, epoch: int, group_by_length: bool
) -> list[list[int]]:
    """Batches of indices for one epoch. The same (seed, epoch) always gives the same batches."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n)
    if group_by_length and lengths is not None:
        # Sort inside mega-batches of 50 batches: similar lengths share a batch, yet the epoch stays shuffled.
        mega = batch_size * 50
        chunks = [order[i : i + mega] for i in range(0, n, mega)]
        lens = np.asarray(lengths)
        order = np.concatenate([c[np.argsort(-lens[c], kind="stable")] for c in chunks])
    batches = [order[i : i + batch_size].tolist() for i in range(0, n, batch_size)]
    if group_by_length and lengths is not None and len(batches) > 1:
        perm = rng.permutation(len(batches))
        batches = [batches[i] for i in perm]
    return batches


def shard(batch: list[int], rank: int, world: int) -> list[int]:
    """This process's share of a global batch (contiguous slices so that sizes differ by at most one)."""
    per, extra = divmod(len(batch), world)
    start = rank * per + min(rank, extra)
    return batch[start : start + per + (1 if rank < extra else 0)]
