"""Answer tokens as training items, packing them into rows, and the loss computed only where answers are."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from tunesmith.tasks.causal_lm.rendering import render
from tunesmith.train.batching import pack_rows

IGNORE = -100
PACK_MIN = 256


def answer_item(ids: list[int], mask: list[bool], line: int) -> dict[str, Any]:
    return {"input_ids": np.asarray(ids, dtype=np.int32), "loss_mask": np.asarray(mask, dtype=bool), "line": line}


def answer_items(tokenizer: Any, records: list[dict[str, Any]], lines: list[int], max_length: int) -> list[dict]:
    """Each record rendered and cut to its first ``max_length`` tokens (evaluation of a finished model)."""
    items = []
    for record, line in zip(records, lines):
        ids, mask = render(tokenizer, record)
        items.append(answer_item(ids[:max_length], mask[:max_length], line))
    return items


def answer_loss(
    model: Any, items: list[dict[str, Any]], pad_id: int, max_length: int, batch_size: int
) -> tuple[float, int]:
    """Mean loss per answer token over ``items`` and the token count, in packed rows of max(max_length, 256)."""
    return validation_loss(model, items, make_collate(pad_id, max(max_length, PACK_MIN), True), batch_size)


def make_collate(pad_id: int, capacity: int, packing: bool) -> Any:
    """Rows of examples for training. Each example's ``targets[t]`` is the next token when that token carries
    loss, else IGNORE. With packing, examples share rows (first fit, longest first) and restart their position
    ids, so none attends to another; without, each example is its own row, padded at the end."""
    import torch

    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        lengths = [len(it["input_ids"]) for it in items]
        rows, fill = pack_rows(lengths, capacity) if packing else ([[i] for i in range(len(items))], lengths)
        width = max(fill)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        pos = torch.arange(width, dtype=torch.long).repeat(len(rows), 1)
        targets = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        for r, members in enumerate(rows):
            at = 0
            for i in members:
                x, m = items[i]["input_ids"], items[i]["loss_mask"]
                n = len(x)
                xt = torch.as_tensor(x, dtype=torch.long)
                ids[r, at : at + n] = xt
                pos[r, at : at + n] = torch.arange(n)
                nxt = torch.where(torch.as_tensor(m[1:], dtype=torch.bool), xt[1:], IGNORE)
                targets[r, at : at + n - 1] = nxt
                at += n
            if at < width:  # padding continues the last example's positions: it joins that block, after it
                last = pos[r, at - 1].item() if at else -1
                pos[r, at:] = torch.arange(last + 1, last + 1 + width - at)
        return {
            "input_ids": ids,
            "position_ids": pos,
            "targets": targets,
            "real_tokens": torch.tensor(sum(fill)),
        }

    return collate


def _unwrap(model: Any) -> Any:
    inner = getattr(model, "module", model)  # DistributedDataParallel
    if hasattr(inner, "get_base_model"):  # PEFT
        inner = inner.get_base_model()
    return inner


@contextlib.contextmanager
def logits_only_at(model: Any, where: Any):
    """While active, the output projection sees only the hidden states at ``where`` (a bool mask over batch and
    positions), so vocabulary logits are computed (and kept for backward) only where the loss needs them. The
    model's forward runs as usual, so DDP and PEFT wrappers see an ordinary call."""
    head = _unwrap(model).get_output_embeddings()

    def select(_module: Any, args: tuple) -> tuple:
        return (args[0][where],)

    handle = head.register_forward_pre_hook(select)
    try:
        yield
    finally:
        handle.remove()


def token_loss(model: Any, batch: dict[str, Any], reduction: str = "mean") -> Any:
    import torch.nn.functional as F

    targets = batch["targets"]
    where = targets != IGNORE
    with logits_only_at(model, where):
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets[where], reduction=reduction)


def validation_loss(
    model: Any, items: list[dict[str, Any]], collate: Any, batch_size: int, rows: list[tuple[float, int]] | None = None
) -> tuple[float, int]:
    """Mean loss per answer token over ``items`` (and the token count), in batches of similar length. ``rows``
    collects each sequence row's (loss sum, answer tokens): the clusters a perplexity interval resamples."""
    import torch

    device = next(model.parameters()).device
    order = np.argsort([-len(it["input_ids"]) for it in items], kind="stable")
    total, count = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for s in range(0, len(items), batch_size):
            batch = collate([items[i] for i in order[s : s + batch_size]])
            batch.pop("real_tokens")
            batch = {k: v.to(device) for k, v in batch.items()}
            n = int((batch["targets"] != IGNORE).sum())
            if n:
                losses = token_loss(model, batch, reduction="none")
                total += float(losses.sum())
                count += n
                if rows is not None:
                    per_row = (batch["targets"] != IGNORE).sum(dim=1).tolist()
                    sums = [float(x.sum()) for x in losses.split([int(c) for c in per_row])]
                    rows.extend((s_, int(c)) for s_, c in zip(sums, per_row) if c)
    return (total / count if count else float("nan")), count


def token_count(items: list[dict[str, Any]]) -> int:
    return sum(len(it["input_ids"]) for it in items)
