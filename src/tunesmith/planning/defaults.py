"""Defaults that follow the data when the config leaves a key open (the rules are in docs/planning.md).

Each rule gives the value and the reason, which go into the run's manifest (``defaults``) and the planner's
output, so nobody has to guess why a run trained for 6 epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tunesmith.config import Config
from tunesmith.planning.hardware import GIB, Hardware
from tunesmith.planning.memory import estimate, micro_batches
from tunesmith.planning.model_facts import ModelFacts

# Examples seen in training (examples x epochs) to aim for, and the epochs allowed around it. Classifiers on a
# pre-trained encoder settle within a few thousand updates of one example; causal LMs memorise their training
# answers quickly, so they see fewer repeats. Early stopping (train.early_stopping_patience) still ends a run
# whose validation metric stops improving.
EPOCH_RULES = {
    "text-classification": (8_000, 1, 10),
    "image-classification": (8_000, 1, 10),
    "causal-lm": (2_000, 1, 4),
}

# Peak learning rate by method, task and model size (parameters up to the bound).
LR_RULES: dict[tuple[str, str], list[tuple[float, float]]] = {
    ("full", "text-classification"): [(60e6, 5e-5), (200e6, 3e-5), (1e9, 2e-5), (math.inf, 1e-5)],
    ("full", "causal-lm"): [(200e6, 5e-5), (1e9, 2e-5), (math.inf, 1e-5)],
    ("full", "image-classification"): [(10e6, 3e-4), (100e6, 1e-4), (math.inf, 3e-5)],
    ("lora", "text-classification"): [(1e9, 5e-4), (math.inf, 2e-4)],
    ("lora", "causal-lm"): [(1e9, 5e-4), (math.inf, 2e-4)],
    ("lora", "image-classification"): [(1e9, 5e-4), (math.inf, 2e-4)],
}

# LoRA rank by training examples: a small adapter for little data (less to overfit), more capacity for more.
RANK_RULES = [(1_000, 4), (10_000, 8), (math.inf, 16)]


@dataclass(frozen=True)
class Default:
    key: str
    value: int | float
    why: str

    def override(self) -> str:
        return f"{self.key}={self.value}"


def epochs_for(task: str, n_train: int) -> Default:
    target, low, high = EPOCH_RULES[task]
    epochs = min(high, max(low, math.ceil(target / max(n_train, 1))))
    return Default(
        "train.epochs",
        epochs,
        f"{n_train:,} training examples x {epochs} epochs = {n_train * epochs:,} examples seen "
        f"(rule: about {target:,}, {low}-{high} epochs)",
    )


def learning_rate_for(method: str, task: str, params: int) -> Default | None:
    rules = LR_RULES.get((method, task))
    if rules is None:  # head: its own head.learning_rate
        return None
    lr = next(v for bound, v in rules if params <= bound)
    return Default("train.learning_rate", lr, f"{method} on a {params / 1e6:,.1f}M-parameter model")


def lora_rank_for(n_train: int) -> list[Default]:
    r = next(v for bound, v in RANK_RULES if n_train < bound)
    why = f"{n_train:,} training examples (rule: r 4 under 1,000, 8 under 10,000, else 16)"
    return [Default("lora.r", r, why), Default("lora.alpha", 2 * r, "twice the rank (scale 2)")]


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
    if cfg.train.learning_rate is None and cfg.method != "head":
        rule = learning_rate_for(cfg.method, cfg.task, facts.params)
        if rule is not None:
            out.append(rule)
    r = cfg.lora.r
    if cfg.method == "lora" and cfg.lora.r is None:
        rank = lora_rank_for(n_train)
        r = int(rank[0].value)
        out.append(rank[0])
        if cfg.lora.alpha is None:
            out.append(rank[1])
    elif cfg.lora.alpha is None and cfg.lora.r is not None:
        out.append(Default("lora.alpha", 2 * cfg.lora.r, "twice the rank (scale 2)"))
    if cfg.train.gradient_accumulation is None:
        out.append(accumulation_for(cfg, facts, seq, hardware, r or 8, classes))
    return out
