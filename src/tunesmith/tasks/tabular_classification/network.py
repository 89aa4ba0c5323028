"""The tabular network: feature embeddings and an MLP encoder, a classification head, and the two
self-supervised parts of its pre-training (a projector for the contrastive loss, a decoder that restores
corrupted features). Plain torch, saved as safetensors with a config.json that holds the schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tunesmith.tasks.tabular_classification.columns import Schema

MODEL_TYPE = "tunesmith-tabular"


class Encoder(nn.Module):
    """Numbers as they are, each categorical value as a learned vector; then ``depth`` blocks of
    linear -> layer norm -> GELU -> dropout. Its output is the row's representation."""

    def __init__(
        self, n_numeric: int, cardinalities: list[int], embedding_dim: int, width: int, depth: int, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(c, embedding_dim) for c in cardinalities)
        layers: list[nn.Module] = []
        size = n_numeric + embedding_dim * len(cardinalities)
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.LayerNorm(width), nn.GELU(), nn.Dropout(dropout)]
            size = width
        self.body = nn.Sequential(*layers)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        parts = [numeric] + [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        return self.body(torch.cat(parts, dim=1))


class Pretraining(nn.Module):
    """What pre-training adds on top of the encoder: a projector (contrastive) and a decoder that restores each
    feature (numbers by squared error, categories by cross entropy). The decoder's error on a clean row is the
    general model's anomaly score."""

    def __init__(self, width: int, n_numeric: int, cardinalities: list[int]) -> None:
        super().__init__()
        self.projector = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, 128))
        self.decoder = nn.Linear(width, n_numeric + sum(cardinalities))
        self.n_numeric, self.cardinalities = n_numeric, list(cardinalities)

    def errors(self, h: torch.Tensor, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        """Per row: squared error of the numbers plus cross entropy of each category, restored from ``h``."""
        out = self.decoder(h)
        err = ((out[:, : self.n_numeric] - numeric) ** 2).sum(dim=1)
        start = self.n_numeric
        for i, c in enumerate(self.cardinalities):
            logits = out[:, start : start + c]
            err = err + nn.functional.cross_entropy(logits, categorical[:, i], reduction="none")
            start += c
        return err


class TabularModel(nn.Module):
    """Encoder + head (what fine-tuning trains and the run exports) + the pre-training parts (kept so that a
    saved model still scores anomalies and can pre-train further on new rows)."""

    def __init__(
        self, schema: Schema, width: int = 256, depth: int = 3, embedding_dim: int = 8, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.schema = schema
        self.arch = {"width": width, "depth": depth, "embedding_dim": embedding_dim, "dropout": dropout}
        cards = schema.cardinalities
        self.encoder = Encoder(schema.n_numeric, cards, embedding_dim, width, depth, dropout)
        self.head = nn.Linear(width, max(len(schema.labels), 2))
        self.pretraining = Pretraining(width, schema.n_numeric, cards)
        for p in self.pretraining.parameters():  # fine-tuning leaves them as pre-training left them
            p.requires_grad_(False)

    @property
    def labels(self) -> list[str]:
        return self.schema.labels

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(numeric, categorical))

    def features(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        return self.encoder(numeric, categorical)

    def anomaly_scores(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        return self.pretraining.errors(self.encoder(numeric, categorical), numeric, categorical)

    def config(self) -> dict[str, Any]:
        return {"model_type": MODEL_TYPE, "schema": self.schema.to_dict(), "architecture": self.arch}

    def save_pretrained(self, folder: str | Path, safe_serialization: bool = True, extra: dict | None = None) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(folder / "model.safetensors"))
        cfg = self.config() | (extra or {})
        if getattr(self, "decision", None):  # the decision threshold chosen for eval.cost (report.py)
            cfg["decision"] = self.decision
        (folder / "config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")

    @classmethod
    def from_pretrained(cls, folder: str | Path, labels: list[str] | None = None) -> TabularModel:
        """A saved model; with ``labels`` differing from its own, the head starts fresh for them (a base reused
        for a new task)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        cfg = read_config(folder)
        schema = Schema.from_dict(cfg["schema"])
        same = labels is None or list(labels) == schema.labels
        if labels is not None:
            schema.labels = list(labels)
        model = cls(schema, **cfg["architecture"])
        state = load_file(str(folder / "model.safetensors"))
        if not same:
            state = {k: v for k, v in state.items() if not k.startswith("head.")}
        model.load_state_dict(state, strict=same)
        return model


def read_config(folder: Path) -> dict[str, Any]:
    cfg = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    if cfg.get("model_type") != MODEL_TYPE:
        raise ValueError(
            f"{folder} is not a tunesmith tabular model (config.json model_type {cfg.get('model_type')!r})"
        )
    return cfg


def is_tabular_folder(folder: Path) -> bool:
    try:
        return json.loads((Path(folder) / "config.json").read_text(encoding="utf-8")).get("model_type") == MODEL_TYPE
    except (OSError, ValueError):
        return False
