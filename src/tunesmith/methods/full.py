"""full: every weight trains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunesmith.methods import METHODS, Job, export_transformers, fine_tune
from tunesmith.train.loop import FitResult


@METHODS.register("full")
class Full:
    name = "full"
    default_lr = 5e-5

    def train(self, job: Job) -> FitResult:
        for p in job.model.parameters():
            p.requires_grad_(True)
        return fine_tune(job, job.cfg.train.learning_rate or self.default_lr, job.cfg.full.warm_start_head)

    def export(self, model: Any, folder: Path, cfg: Any, check: Any = None) -> dict[str, Any]:
        return export_transformers(model, folder)  # the trained model itself: nothing to check against
