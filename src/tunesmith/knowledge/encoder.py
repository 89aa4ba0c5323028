"""A sentence encoder: a catalog name, a local folder or a run's tuned encoder -> unit vectors of texts.

Texts are read the way the model was trained to be read (its declared pooling: the attention-masked mean for
sentence-transformers models such as all-MiniLM-L6-v2) and normalised, so a dot product is the cosine. The
longest input is the model's own ``max_seq_length`` (sentence_bert_config.json) where it declares one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.models.catalog import ModelSource, resolve
from tunesmith.models.pooled import declared_pooling, pool

DEFAULT_MAX_LENGTH = 256


def declared_max_length(folder: str | Path) -> int | None:
    spec = Path(folder) / "sentence_bert_config.json"
    try:
        return int(json.loads(spec.read_text(encoding="utf-8"))["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def encoder_folder(source: ModelSource) -> Path:
    """A finished embedding run keeps its tuned encoder in ``model/``; anything else is its own folder."""
    path = Path(source.path)
    return path / "model" if (path / "model" / "config.json").is_file() and (path / "manifest.json").is_file() else path


class TextEncoder:
    def __init__(self, spec: str, cache_dir: str | None = None, trust_remote_code: bool = False):
        from transformers import AutoModel, AutoTokenizer

        self.spec = spec
        self.source = resolve(spec, cache_dir)
        folder = encoder_folder(self.source)
        self.fingerprint = self.source.fingerprint
        self.tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
        self.model = AutoModel.from_pretrained(folder, use_safetensors=True, trust_remote_code=trust_remote_code)
        self.model.eval()
        self.pooling = declared_pooling(folder) or "mean"
        limit = int(getattr(self.tokenizer, "model_max_length", 0) or 0)
        self.max_length = declared_max_length(folder) or (limit if 0 < limit <= 4096 else DEFAULT_MAX_LENGTH)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def token_counts(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=True)["input_ids"]]

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        return encode_with(self.model, self.tokenizer, texts, self.max_length, self.pooling, batch_size)


def encode_with(
    model: Any, tokenizer: Any, texts: list[str], max_length: int, pooling: str = "mean", batch_size: int = 32
) -> np.ndarray:
    """(len(texts), width) float32 unit vectors of texts, cut at ``max_length`` tokens."""
    ids = tokenizer(list(texts), truncation=True, max_length=max_length, return_attention_mask=False)["input_ids"]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return encode_ids(model, [np.asarray(x, dtype=np.int64) for x in ids], pad, pooling, batch_size)


def pad_ids(seqs: list[np.ndarray], pad_id: int) -> tuple[Any, Any]:
    """Token-id sequences as one padded (ids, attention mask) pair of tensors."""
    import torch

    longest = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), longest), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def embed_batch(model: Any, ids: Any, mask: Any, pooling: str) -> Any:
    """Unit vectors of a padded batch: the encoder's last hidden state, pooled, normalised (differentiable)."""
    import torch

    hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    return torch.nn.functional.normalize(pool(hidden, mask, pooling), dim=-1)


def encode_ids(model: Any, ids: list[np.ndarray], pad_id: int, pooling: str, batch_size: int = 32) -> np.ndarray:
    """Unit vectors of token-id sequences in length-sorted batches (little padding); the model's training mode is
    restored after."""
    import torch

    out = np.zeros((len(ids), int(model.config.hidden_size)), dtype=np.float32)
    order = np.argsort([-len(x) for x in ids], kind="stable")
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for s in range(0, len(ids), batch_size):
            sel = order[s : s + batch_size]
            t, m = pad_ids([ids[i] for i in sel], pad_id)
            out[sel] = embed_batch(model, t, m, pooling).float().numpy()
    model.train(was_training)
    return out
