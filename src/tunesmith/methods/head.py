"""head: the encoder is frozen; only the classification head trains, on features computed once and cached."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunesmith.methods import METHODS, Job
from tunesmith.train.loop import FitResult, fit


def _stack(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    return {
        "features": torch.from_numpy(np.stack([it["features"] for it in items])),
        "labels": torch.tensor([it["labels"] for it in items], dtype=torch.long),
    }


@METHODS.register("head")
class Head:
    name = "head"
    default_lr = 2e-3

    def train(self, job: Job) -> FitResult:
        import torch.nn.functional as F

        from tunesmith import config as cfgmod

        head = job.task.feature_head(job.model)
        for p in job.model.parameters():
            p.requires_grad_(False)
        for p in head.parameters():
            p.requires_grad_(True)
        train_x, val_x = job.features("head")
        train = [{"features": x, "labels": it["labels"]} for x, it in zip(train_x, job.train_items)]
        val_y = np.array([it["labels"] for it in job.val_items])
        opts = job.cfg.head

        def evaluate(module: torch.nn.Module) -> dict[str, float]:
            from tunesmith.eval.metrics import classification_metrics

            module.eval()
            with torch.no_grad():
                probs = torch.softmax(module(torch.from_numpy(val_x)).float(), dim=-1).numpy()
            m = classification_metrics(val_y, probs, job.task.labels)
            return {"loss": m["loss"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}

        def loss(module: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return F.cross_entropy(module(batch["features"]).float(), batch["labels"])

        # Features are cheap to revisit: more epochs, a higher rate, no warm-up or length grouping, more patience.
        train_cfg = cfgmod.replace(
            job.cfg.train,
            epochs=opts.epochs,
            group_by_length=False,
            warmup_ratio=0.0,
            early_stopping_patience=max(job.cfg.train.early_stopping_patience, 5)
            if job.cfg.train.early_stopping_patience
            else 0,
        )
        return fit(
            head,
            train,
            collate=_stack,
            loss_fn=loss,
            cfg=train_cfg,
            lr=job.cfg.train.learning_rate or opts.learning_rate,
            evaluate=evaluate,
            run_dir=job.run_dir,
            resume=job.resume,
            accelerator=job.accelerator,
            desc="head",
        )

    def export(self, model: Any, folder: Path, cfg: Any) -> dict[str, Any]:
        model.save_pretrained(folder, safe_serialization=True)
        return {"format": "transformers", "path": folder.name}
