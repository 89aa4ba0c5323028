"""head: the encoder is frozen; only the classification head trains, on features computed once and cached.

``train_head`` is also the warm start of ``full`` and ``lora``: a head fitted to the frozen features first
(linear probing, then fine-tuning), so that fine-tuning starts from a head that already reads the encoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunesmith import config as cfgmod
from tunesmith.config import Config
from tunesmith.errors import ConfigError
from tunesmith.methods.base import METHODS, Job, Method, ParityCheck, export_transformers
from tunesmith.models.facts import ModelFacts
from tunesmith.train.loop import fit
from tunesmith.train.result import FitResult


def _stack(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    return {
        "features": torch.from_numpy(np.stack([it["features"] for it in items])),
        "labels": torch.tensor([it["labels"] for it in items], dtype=torch.long),
    }


def train_head(
    job: Job, lr: float, epochs: int, run_dir: Path | None, metric: str | None = None, desc: str = "head"
) -> FitResult:
    """Fit the model's own head on cached frozen features; the rest of the model is left as it is. The epoch
    kept is the best on ``metric`` (train.metric when None), and the result names it."""
    import torch.nn.functional as F

    from tunesmith.eval.metrics import classification_metrics

    if job.features is None:
        raise ConfigError("method: head needs cached frozen features; this task has none")
    head = job.task.feature_head(job.model)
    trainable = {id(p): p.requires_grad for p in job.model.parameters()}
    for p in job.model.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    train_x, val_x = job.features()
    train = [{"features": x, "labels": it["labels"]} for x, it in zip(train_x, job.train_items)]
    val_y = np.array([it["labels"] for it in job.val_items])

    def evaluate(module: torch.nn.Module) -> dict[str, float]:
        module.eval()
        with torch.no_grad():
            probs = torch.softmax(module(torch.from_numpy(val_x)).float(), dim=-1).numpy()
        m = classification_metrics(val_y, probs, job.labels)
        return {"loss": m["loss"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}

    def loss(module: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(module(batch["features"]).float(), batch["labels"])

    # Features are cheap to revisit: more epochs, no warm-up or length grouping, more patience.
    patience = job.cfg.train.early_stopping_patience
    train_cfg = cfgmod.replace(
        job.cfg.train,
        epochs=epochs,
        learning_rate=lr,
        group_by_length=False,
        warmup_ratio=0.0,
        early_stopping_patience=max(patience, 5) if patience else 0,
        max_steps=None,
        metric=metric or job.cfg.train.metric,
    )
    result = fit(
        head,
        train,
        collate=_stack,
        loss_fn=loss,
        cfg=train_cfg,
        evaluate=evaluate,
        run_dir=run_dir,
        resume=job.resume and run_dir is not None,
        accelerator=job.accelerator,
        on_eval=job.on_eval if run_dir is not None else None,  # the head method's own training, not a warm start
        desc=desc,
    )
    for p in job.model.parameters():
        p.requires_grad_(trainable[id(p)])
    return result


@METHODS.register("head")
class Head(Method):
    name = "head"
    keeps_activations = False
    epochs_key = "head.epochs"

    def default_learning_rate(self, cfg: Config) -> float:
        return cfg.head.learning_rate

    def trainable_params(self, facts: ModelFacts, lora_r: int, classes: int, targets_per_layer: int) -> int:
        return max(facts.hidden, 1280) * max(classes, 2)

    def describe(self, cfg: Config) -> list[str]:
        return [f"{cfg.head.epochs} head epochs", f"lr {cfg.train.learning_rate:g}"]

    def train(self, job: Job) -> FitResult:
        for p in job.model.parameters():
            p.requires_grad_(False)
        return train_head(job, job.cfg.train.learning_rate, job.cfg.head.epochs, job.run_dir)

    def export(self, model: Any, folder: Path, cfg: Config, check: ParityCheck | None = None) -> dict[str, Any]:
        return export_transformers(model, folder)  # the trained model itself: nothing to check against
