"""Token ids through a text encoder: dynamic padding, class probabilities and the frozen body's features (the
linear probe's and the head's input, and the pool embeddings of label-next)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tunesmith.models.pooled import pool
from tunesmith.train.batching import length_batches

# Longest input the defaults choose (train.max_length may go up to the model's limit). Classifying a long text
# rarely needs all of it, and the cost of every step grows with the length: docs/defaults.md has the
# measurement behind this figure.
DEFAULT_LENGTH_CAP = 128


def make_collate(pad_id: int) -> Any:
    """Dynamic padding: each batch is padded to its own longest example, not to max_length."""
    import torch

    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        longest = max(len(it["input_ids"]) for it in items)
        ids = torch.full((len(items), longest), pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), longest), dtype=torch.long)
        for i, it in enumerate(items):
            n = len(it["input_ids"])
            ids[i, :n] = torch.as_tensor(it["input_ids"], dtype=torch.long)
            mask[i, :n] = 1
        batch = {"input_ids": ids, "attention_mask": mask}
        if "labels" in items[0]:
            batch["labels"] = torch.tensor([it["labels"] for it in items], dtype=torch.long)
        return batch

    return collate


def predict_proba(model: Any, ids: list[np.ndarray], pad_id: int, batch_size: int = 64) -> np.ndarray:
    """Class probabilities in length-sorted, token-budgeted batches, so little compute goes to padding."""
    import torch

    collate = make_collate(pad_id)
    out: list[np.ndarray] = [None] * len(ids)  # type: ignore[list-item]
    model.eval()
    device = next(model.parameters()).device
    with torch.inference_mode():
        for sel in length_batches([len(x) for x in ids], batch_size):
            batch = {k: v.to(device) for k, v in collate([{"input_ids": ids[i]} for i in sel]).items()}
            probs = torch.softmax(model(**batch).logits.float(), dim=-1).cpu().numpy()
            for j, i in enumerate(sel):
                out[i] = probs[j]
    return np.stack(out) if out else np.zeros((0, 0))


def body_of(model: Any) -> Any:
    return getattr(model, getattr(model, "base_model_prefix", ""), None) or model.base_model


def frozen_features(model: Any, ids: list[np.ndarray], pad_id: int, batch_size: int = 64) -> dict[str, np.ndarray]:
    """The frozen body's last hidden state read three ways: the first token, the attention-masked mean (the
    strongest frozen reading of sentence encoders, used by the linear probe) and the max; the head reads the
    one its pooling names."""
    import torch

    body = body_of(model)
    collate = make_collate(pad_id)
    order = np.argsort([-len(x) for x in ids], kind="stable")
    out: dict[str, np.ndarray] = {}
    body.eval()
    with torch.inference_mode():
        for s in range(0, len(ids), batch_size):
            sel = order[s : s + batch_size]
            batch = collate([{"input_ids": ids[i]} for i in sel])
            hidden = body(**batch).last_hidden_state.float()
            for how, key in (("cls", "first"), ("mean", "mean"), ("max", "max")):
                pooled = pool(hidden, batch["attention_mask"], how).numpy()
                out.setdefault(key, np.zeros((len(ids), pooled.shape[-1]), dtype=np.float32))[sel] = pooled
    return out
