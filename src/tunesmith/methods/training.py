"""What the methods that train through the model's forward (full, lora) share: the optional head warm start,
then fit(); and the plain Hugging Face export."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tunesmith.methods.base import Job
from tunesmith.methods.head import train_head
from tunesmith.train.loop import fit
from tunesmith.train.result import FitResult


def fine_tune(job: Job, warm_start_head: bool, wrap: Callable[[Any], Any] | None = None) -> FitResult:
    """Optionally fit the head on cached frozen features first (on the plain model), then ``wrap`` the model
    (adapters), then run fit() at the resolved ``train.learning_rate``."""
    if warm_start_head and job.features is not None:
        job.warm_start = train_head(job, job.cfg.head.learning_rate, job.cfg.head.epochs, None)
    if wrap is not None:
        job.model = wrap(job.model)
    return fit(
        job.model,
        job.train_items,
        collate=job.collate,
        loss_fn=job.task.loss,
        cfg=job.cfg.train,
        evaluate=job.evaluate,
        run_dir=job.run_dir,
        resume=job.resume,
        lengths=job.lengths,
        accelerator=job.accelerator,
        on_eval=job.on_eval,
        mmap_threshold=job.task.mmap_threshold,
    )
