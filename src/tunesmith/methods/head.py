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
from tunesmith.methods import METHODS, Job, export_transformers
from tunesmith.train.loop import FitResult, fit


def _stack(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    return {
        "features": torch.from_numpy(np.stack([it["features"] for it in items])),
        "labels": torch.tensor([it["labels"] for it in items], dtype=torch.long),
    }


def train_head(job: Job, lr: float, epochs: int, run_dir: Path | None, metric: str = "loss") -> FitResult:
    """Fit the model's own head on cached frozen features; the rest of the model is left as it is."""
    import torch.nn.functional as F

    from tunesmith.eval.metrics import classification_metrics

    head = job.task.feature_head(job.model)
    trainable = {id(p): p.requires_grad for p in job.model.parameters()}
    for p in job.model.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    train_x, val_x = job.features("head")
    train = [{"features": x, "labels": it["labels"]} for x, it in zip(train_x, job.train_items)]
    val_y = np.array([it["labels"] for it in job.val_items])

    def evaluate(module: torch.nn.Module) -> dict[str, float]:
        module.eval()
        with torch.no_grad():
            probs = torch.softmax(module(torch.from_numpy(val_x)).float(), dim=-1).numpy()
        m = classification_metrics(val_y, probs, job.task.labels)
        return {"loss": m["loss"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}

    def loss(module: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(module(batch["features"]).float(), batch["labels"])

    # Features are cheap to revisit: more epochs, no warm-up or length grouping, more patience.
    patience = job.cfg.train.early_stopping_patience
    train_cfg = cfgmod.replace(
        job.cfg.train,
        epochs=epochs,
        group_by_length=False,
        warmup_ratio=0.0,
        early_stopping_patience=max(patience, 5) if patience else 0,
        max_steps=None,
        metric="loss",
    )
    result = fit(
        head,
        train,
        collate=_stack,
        loss_fn=loss,
        cfg=train_cfg,
        lr=lr,
        evaluate=evaluate,
        run_dir=run_dir,
        resume=job.resume and run_dir is not None,
        accelerator=job.accelerator,
        on_eval=job.on_eval if run_dir is not None else None,  # the head method's own training, not a warm start
        desc="head",
    )
    for p in job.model.parameters():
        p.requires_grad_(trainable[id(p)])
    return result


@METHODS.register("head")
class Head:
    name = "head"
    default_lr = 5e-3

    def train(self, job: Job) -> FitResult:
        for p in job.model.parameters():
            p.requires_grad_(False)
        opts = job.cfg.head
        lr = job.cfg.train.learning_rate or opts.learning_rate
        return train_head(job, lr, opts.epochs, job.run_dir, job.cfg.train.metric)

    def export(self, model: Any, folder: Path, cfg: Any, check: Any = None) -> dict[str, Any]:
        return export_transformers(model, folder)  # the trained model itself: nothing to check against
