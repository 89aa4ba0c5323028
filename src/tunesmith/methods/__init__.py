"""Methods decide what trains (all weights, the head only, adapters) and what is saved.

A method is an object with ``name``, ``default_lr``, ``train(job) -> FitResult`` and
``export(model, folder) -> dict``. ``train`` owns how its training runs, so a method that trains on
cached features (head) needs no change in fit(), the API or the CLI.
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


def get_method(name: str) -> Any:
    from tunesmith.methods import full, head, lora  # noqa: F401

    return METHODS.get(name)()
