"""full: every weight trains (the token embeddings too unless ``train.freeze_embeddings``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunesmith.config import Config
from tunesmith.methods.base import METHODS, Job, Method, ParityCheck, export_transformers
from tunesmith.methods.training import fine_tune, train_everything
from tunesmith.train.result import FitResult


@METHODS.register("full")
class Full(Method):
    name = "full"
    trains_encoder = True

    def default_learning_rate(self, cfg: Config) -> float:
        return 5e-5

    def train(self, job: Job) -> FitResult:
        frozen = train_everything(job)
        result = fine_tune(job, job.cfg.full.warm_start_head)
        result.frozen = frozen
        return result

    def export(self, model: Any, folder: Path, cfg: Config, check: ParityCheck | None = None) -> dict[str, Any]:
        return export_transformers(model, folder)  # the trained model itself: nothing to check against
