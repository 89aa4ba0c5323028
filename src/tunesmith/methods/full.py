"""full: every weight trains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunesmith.methods import METHODS, Job
from tunesmith.train.loop import FitResult, fit


@METHODS.register("full")
class Full:
    name = "full"
    default_lr = 5e-5

    def train(self, job: Job) -> FitResult:
        for p in job.model.parameters():
            p.requires_grad_(True)
        return fit(
            job.model,
            job.train_items,
            collate=job.collate,
            loss_fn=job.task.loss,
            cfg=job.cfg.train,
            lr=job.cfg.train.learning_rate or self.default_lr,
            evaluate=job.evaluate,
            run_dir=job.run_dir,
            resume=job.resume,
            lengths=job.lengths,
            accelerator=job.accelerator,
        )

    def export(self, model: Any, folder: Path, cfg: Any) -> dict[str, Any]:
        model.save_pretrained(folder, safe_serialization=True)
        return {"format": "transformers", "path": folder.name}
