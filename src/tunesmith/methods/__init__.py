"""Methods decide what trains (all weights, the head only, adapters) and what is saved.

A method is an object with ``name``, ``default_lr``, ``train(job) -> FitResult`` and
``export(model, folder, cfg, check=None) -> dict``; ``check`` is a ParityCheck on golden examples, for methods
that must prove an export behaves like the trained model (a LoRA merge). ``train`` owns how its
training runs, so a method that trains on cached features (head) needs no change in fit(), the API or the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.registry import Registry

METHODS: Registry[Any] = Registry("method")


@dataclass
class Job:
    """Everything a method needs to train one model."""

    cfg: Any  # Config
    task: Any
    model: Any
    train_items: list[dict[str, Any]]
    val_items: list[dict[str, Any]]
    lengths: list[int]
    collate: Any
    evaluate: Any  # model -> metrics dict
    run_dir: Path | None
    resume: bool
    accelerator: Any
    features: Any = None  # callable(kind) -> (train_feats, val_feats), cached frozen features
    warm_start: Any = None  # FitResult of a head fitted to frozen features before fine-tuning, if any
    on_eval: Any = None  # record -> bool: called after each evaluation; True stops training (search pruning)


@dataclass
class ParityCheck:
    """How a task proves two models behave alike on golden held-out examples: ``run(model)`` gives what the
    model outputs (probabilities, greedy token ids), ``compare(before, after)`` gives (same enough, figures)."""

    run: Any  # model -> outputs
    compare: Any  # (outputs, outputs) -> (bool, dict)
    what: str  # e.g. "probabilities", "greedy outputs"


def get_method(name: str) -> Any:
    from tunesmith.methods import full, head, lora  # noqa: F401

    return METHODS.get(name)()


def fine_tune(job: Job, lr: float, warm_start_head: bool, wrap: Any = None) -> Any:
    """The shared path of methods that train through the model's forward (full, lora): optionally fit the head
    on cached frozen features first (on the plain model), then ``wrap`` the model (adapters), then run fit()."""
    from tunesmith.methods.head import train_head
    from tunesmith.train.loop import fit

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
        lr=lr,
        evaluate=job.evaluate,
        run_dir=job.run_dir,
        resume=job.resume,
        lengths=job.lengths,
        accelerator=job.accelerator,
        on_eval=job.on_eval,
        mmap_threshold=getattr(job.task, "mmap_threshold", 1 << 20),
    )


def export_transformers(model: Any, folder: Path, check: Any = None) -> dict[str, Any]:
    """Hugging Face format (safetensors), loadable by plain transformers."""
    model.save_pretrained(folder, safe_serialization=True)
    return {"format": "transformers", "path": folder.name}
