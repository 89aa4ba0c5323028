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
from tunesmith.train.rules import MIN_STEPS_PER_EPOCH, batch_size_rule, epochs_rule

# Optimizer steps to aim for, and the epochs allowed around them, are each task's ``epoch_rule`` (measured on
# the recipe suite, docs/defaults.md). Early stopping (train.early_stopping_patience) on the selection split
# still ends a run that stops improving. The peak learning rate by method and model size is each task's
# ``learning_rates``.


# Batch sizes the rule picks from, and the optimizer steps per epoch it keeps at least (when the data allows):
# on 400 long documents a batch of 32 left 26 optimizer steps in 2 epochs and the tuned model fell 15 points
# below the frozen model's linear probe; batch 8 (the Hugging Face Trainer's default) trained well.
BATCH_SIZES = (8, 16, 32)


def batch_size_for(n_train: int, sizes: tuple[int, ...] = BATCH_SIZES, rule: str | None = None) -> Default:
    """The batch-size rule over ``sizes``; ``rule`` says why where a method fixes its own size."""
    batch = batch_size_rule(n_train, sizes)
    steps = math.ceil(n_train / batch)
    rule = rule or (
        f"the largest of {', '.join(map(str, sizes))} that keeps at least {MIN_STEPS_PER_EPOCH} steps per epoch"
    )
    return Default(
        "train.batch_size",
        batch,
        f"{n_train:,} training examples / {batch} = {steps} optimizer steps per epoch (rule: {rule})",
    )


def epochs_for(task: str, n_train: int, batch_size: int, method: str | None = None) -> Default:
    """Epochs from the optimizer steps the task aims for (``epoch_rule``: steps, lowest and highest epochs), or
    the method's own rule where it has one (contrastive)."""
    own = get_method(method).epoch_rule if method else None
    target, low, high = own or get_task(task).epoch_rule
    per_epoch = max(1, math.ceil(n_train / batch_size))
    epochs = epochs_rule(n_train, batch_size, target, low, high)
    return Default(
        "train.epochs",
        epochs,
        f"{per_epoch} optimizer steps per epoch x {epochs} epochs = {per_epoch * epochs:,} steps "
        f"(rule: about {target:,} steps, {low}-{high} epochs; early stopping on the selection split may end it sooner)",
    )


def learning_rate_for(method: str, task: str, params: int, batch_size: int | None = None) -> Default | None:
    """The task's rate for the method and model size; where the task's table is for a reference batch
    (``lr_reference_batch``), scaled by the square root of the batch over it (Rotten Tomatoes, 1,700 snippets,
    batch 32, 2 epochs: 78.8% at 5e-5, 79.9% at 1e-4)."""
    t = get_task(task)
    lr = t.learning_rate_for(method, params)
    if lr is None:  # head: its own head.learning_rate
        return None
    why = f"{method} on a {params / 1e6:,.1f}M-parameter model"
    ref = t.lr_reference_batch.get(method)
    if ref and batch_size and batch_size != ref:
        lr = float(f"{lr * math.sqrt(batch_size / ref):.2g}")
        why += f", x sqrt(batch {batch_size} / {ref})"
    return Default("train.learning_rate", lr, why)


def accumulation_for(
    cfg: Config, facts: ModelFacts, seq: int, hardware: Hardware, r: int, classes: int, batch_size: int
) -> Default:
    est = estimate(facts, cfg.task, cfg.method, seq, r, classes, bool(cfg.train.freeze_embeddings))
    budget = hardware.budget_bytes
    steps = micro_batches(est, batch_size, budget)
    micro = -(-batch_size // steps)
    where = "GPU memory" if hardware.gpu else "memory"
    return Default(
        "train.gradient_accumulation",
        steps,
        f"micro-batches of {micro} keep the estimated peak at {est.peak(micro) / GIB:.1f} GiB, within 80% of "
        f"the {budget / GIB:.1f} GiB free {where} (batch {batch_size} per optimizer step either way)",
    )


def data_driven(
    cfg: Config, n_train: int, facts: ModelFacts, seq: int, hardware: Hardware, classes: int = 2
) -> list[Default]:
    """The values for every open key that has a rule."""
    out: list[Default] = []
    batch = cfg.train.batch_size
    if batch is None:
        how = get_method(cfg.method)  # a method with its own sizes (contrastive's groups) says why
        out.append(batch_size_for(n_train, how.batch_sizes or get_task(cfg.task).batch_sizes, how.batch_rule))
        batch = int(out[-1].value)
    if cfg.train.epochs is None:
        out.append(epochs_for(cfg.task, n_train, batch, cfg.method))
    if cfg.train.learning_rate is None:
        rule = learning_rate_for(cfg.method, cfg.task, facts.params, batch)
        if rule is not None:
            out.append(rule)
    own = get_method(cfg.method).open_defaults(cfg, n_train)
    out.extend(own)
    r = next((int(d.value) for d in own if d.key == "lora.r"), cfg.lora.r)
    if cfg.train.gradient_accumulation is None:
        out.append(accumulation_for(cfg, facts, seq, hardware, r or 8, classes, batch))
    return out
