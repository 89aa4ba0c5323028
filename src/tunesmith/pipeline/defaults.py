"""Defaults that follow the data when the config leaves a key open (the rules are in docs/planning.md).

Each rule gives the value and the reason, which go into the run's manifest (``defaults``) and the planner's
output, so nobody has to guess why a run trained for 6 epochs.
"""

from __future__ import annotations

import math

from tunesmith.config import Config, Default
from tunesmith.hardware import GIB, Hardware
from tunesmith.methods import get_method
from tunesmith.models.facts import ModelFacts
from tunesmith.pipeline.memory import estimate, micro_batches
from tunesmith.tasks import get_task

# Examples seen in training (examples x epochs) to aim for, and the epochs allowed around it, are each task's
# ``epoch_rule``: classifiers on a pre-trained encoder settle within a few thousand updates of one example;
# causal LMs memorise their training answers quickly, so they see fewer repeats. Early stopping
# (train.early_stopping_patience) still ends a run whose validation metric stops improving. The peak learning
# rate by method and model size is each task's ``learning_rates``.


def epochs_for(task: str, n_train: int) -> Default:
    target, low, high = get_task(task).epoch_rule
    epochs = min(high, max(low, math.ceil(target / max(n_train, 1))))
    return Default(
        "train.epochs",
        epochs,
        f"{n_train:,} training examples x {epochs} epochs = {n_train * epochs:,} examples seen "
        f"(rule: about {target:,}, {low}-{high} epochs)",
    )


def learning_rate_for(method: str, task: str, params: int) -> Default | None:
    lr = get_task(task).learning_rate_for(method, params)
    if lr is None:  # head: its own head.learning_rate
        return None
    return Default("train.learning_rate", lr, f"{method} on a {params / 1e6:,.1f}M-parameter model")


def accumulation_for(cfg: Config, facts: ModelFacts, seq: int, hardware: Hardware, r: int, classes: int) -> Default:
    est = estimate(facts, cfg.task, cfg.method, seq, r, classes)
    budget = hardware.budget_bytes
    steps = micro_batches(est, cfg.train.batch_size, budget)
    micro = -(-cfg.train.batch_size // steps)
    where = "GPU memory" if hardware.gpu else "memory"
    return Default(
        "train.gradient_accumulation",
        steps,
        f"micro-batches of {micro} keep the estimated peak at {est.peak(micro) / GIB:.1f} GiB, within 80% of "
        f"the {budget / GIB:.1f} GiB free {where} (batch {cfg.train.batch_size} per optimizer step either way)",
    )


def data_driven(
    cfg: Config, n_train: int, facts: ModelFacts, seq: int, hardware: Hardware, classes: int = 2
) -> list[Default]:
    """The values for every open key that has a rule."""
    out: list[Default] = []
    if cfg.train.epochs is None:
        out.append(epochs_for(cfg.task, n_train))
    if cfg.train.learning_rate is None:
        rule = learning_rate_for(cfg.method, cfg.task, facts.params)
        if rule is not None:
            out.append(rule)
    own = get_method(cfg.method).open_defaults(cfg, n_train)
    out.extend(own)
    r = next((int(d.value) for d in own if d.key == "lora.r"), cfg.lora.r)
    if cfg.train.gradient_accumulation is None:
        out.append(accumulation_for(cfg, facts, seq, hardware, r or 8, classes))
    return out
