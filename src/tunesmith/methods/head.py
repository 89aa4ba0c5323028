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
        return job.task.probability_metrics(val_y, probs, job.labels)

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
        evaluate=None if job.no_choice else evaluate,  # early stopping and the best epoch are choices
        run_dir=run_dir,
        resume=job.resume and run_dir is not None,
        accelerator=job.accelerator,
        on_eval=job.on_eval if run_dir is not None else None,  # the head method's own training, not a warm start
        desc=desc,
    )
    for p in job.model.parameters():
        p.requires_grad_(trainable[id(p)])
    return result


def linear_layer(head: torch.nn.Module) -> torch.nn.Linear | None:
    """The head's one weighted layer when the head is linear in its features (dropout aside); None for an MLP or
    a head behind a pooler."""
    weighted = [m for m in head.modules() if any(True for _ in m.parameters(recurse=False))]
    return weighted[0] if len(weighted) == 1 and isinstance(weighted[0], torch.nn.Linear) else None


def fit_logistic_head(
    job: Job, train_x: np.ndarray, choice_x: np.ndarray, desc: str = "logistic head"
) -> FitResult | None:
    """A linear head fitted as the linear probe is (logistic regression, its strength by cross-validation on the
    training data), written into the model's own head layer and scored on the selection split; None when the
    head is not one linear layer. On 8 intents examples per class this scored 75.9% where the head trained by
    gradient steps with early stopping on a 3-per-class selection split scored 65.6% (bench/bench_fewshot.py)."""
    import time

    from tunesmith.eval.compare import fit_logistic

    head = job.task.feature_head(job.model)
    layer = linear_layer(head)
    if layer is None:
        return None
    start = time.perf_counter()
    y = np.array([it["labels"] for it in job.train_items])
    groups = job.groups if job.groups and len(job.groups) == len(y) else None
    fitted = fit_logistic(train_x, y, job.cfg.train.seed, len(job.labels), groups)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(fitted.weight).to(layer.weight.dtype))
        layer.bias.copy_(torch.from_numpy(fitted.bias).to(layer.bias.dtype))
    head.eval()
    if job.no_choice:  # its figures would be the validation data's: nothing is chosen on them
        return FitResult(best=None, history=[], metric=None, train_seconds=time.perf_counter() - start)
    with torch.no_grad():
        probs = torch.softmax(head(torch.from_numpy(np.asarray(choice_x))).float(), dim=-1).numpy()
    seconds = time.perf_counter() - start
    m = job.task.probability_metrics(np.array([it["labels"] for it in job.val_items]), probs, job.labels)
    best = {"step": 0, **m, "C": fitted.C}
    return FitResult(best=best, history=[{"kind": "eval", **best}], metric=job.cfg.train.metric, train_seconds=seconds)


def refit_logistic_head(job: Job, train_x: np.ndarray, held_x: np.ndarray) -> dict[str, Any] | None:
    """Once the run's choices are made, the linear head is fitted again, as ``fit_logistic_head`` fits it, on all
    the labelled training rows: the training split and the selection split carved from it (``held_x``: those
    rows' features as the head reads them). The validation data stays unseen. None, and the head as it was, when
    no selection split was carved (choices were made on the validation data) or the head is not one linear layer.

    Few-shot data is where it counts: 8 intents examples per class lose 1 of 8 to the selection split; the head
    run on the 116 left scored 74.6%, fitted again on all 134 76.9% (seed 0; docs/benchmarks.md)."""
    from tunesmith.eval.compare import fit_logistic

    layer = linear_layer(job.task.feature_head(job.model))
    if job.held_items is None or not job.held_items or layer is None or len(held_x) != len(job.held_items):
        return None
    x = np.concatenate([np.asarray(train_x), np.asarray(held_x)])
    y = np.array([it["labels"] for it in [*job.train_items, *job.held_items]])
    groups = None
    if job.groups and job.held_groups and len(job.groups) + len(job.held_groups) == len(y):
        groups = [*job.groups, *job.held_groups]
    fitted = fit_logistic(x, y, job.cfg.train.seed, len(job.labels), groups)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(fitted.weight).to(layer.weight.dtype))
        layer.bias.copy_(torch.from_numpy(fitted.bias).to(layer.bias.dtype))
    return {
        "examples": len(y),
        "selection_examples": len(job.held_items),
        "C": fitted.C,
        "why": "the choices are made; the linear head is fitted again on the training and selection rows together",
    }


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
        if job.features is not None:  # a linear head: the logistic regression the linear probe fits, in seconds
            train_x, choice_x = job.features()
            fitted = fit_logistic_head(job, train_x, choice_x)
            if fitted is not None:
                fitted.refit = refit_logistic_head(job, train_x, choice_x)
                return fitted
        return train_head(job, job.cfg.train.learning_rate, job.cfg.head.epochs, job.run_dir)

    def export(self, model: Any, folder: Path, cfg: Config, check: ParityCheck | None = None) -> dict[str, Any]:
        return export_transformers(model, folder)  # the trained model itself: nothing to check against
