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


def length_batches(lengths: list[int], max_batch: int = 64, token_budget: int = 8192) -> list[np.ndarray]:
    """Indices in batches of similar length, longest first: as many inputs per batch as fit ``token_budget``
    padded tokens (short inputs go in big batches, long ones in small), at most ``max_batch``."""
    order = np.argsort([-n for n in lengths], kind="stable")
    batches, s = [], 0
    while s < len(order):
        size = max(1, min(max_batch, token_budget // max(1, lengths[order[s]])))
        batches.append(order[s : s + size])
        s += size
    return batches


def pack_rows(lengths: list[int], capacity: int) -> tuple[list[list[int]], list[int]]:
    """Examples (by index) into as few rows as fit ``capacity`` tokens, filled evenly: rows are padded to the
    fullest one, so an even fill is what keeps padding small. First fit, longest first, into a width that
    starts at the even share and grows in steps of 8 only when something does not fit."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    longest, total = lengths[order[0]], sum(lengths)
    n_rows = -(-total // max(capacity, longest))
    width = max(longest, -(-total // n_rows))
    while True:
        rows: list[list[int]] = [[] for _ in range(n_rows)]
        fill = [0] * n_rows
        for i in order:
            slot = next((r for r in range(n_rows) if fill[r] + lengths[i] <= width), None)
            if slot is None:
                break
            rows[slot].append(i)
            fill[slot] += lengths[i]
        else:
            return rows, fill
        if width < max(capacity, longest):
            width = min(width + 8, max(capacity, longest))
        else:
            n_rows += 1
            width = max(longest, -(-total // n_rows))
