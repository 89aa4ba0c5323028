"""From a probe's measurements to the full run's wall time, peak memory and cost.

time = start-up (interpreter and imports, as measured) + reading the full data (as measured)
     + for tokenize, baselines, train and evaluate: the probe's fixed part of the phase (its time less the
       metered model work and the optimizer steps) + each metered piece of work scaled by how much more of
       its split the full run has, in tokens where inputs are tokens, else in examples (validation work
       during training also by the number of evaluations; generated answers by the number of prompts; the
       selection split, which the probe reads whole, by the number of evaluations alone)
     + optimizer steps: seconds per token position (per example for images and the head method) of the
       probe's steps after the first two, times the positions of the full run's planned batches
     + the rest of the probe (export, report) as it was.
peak memory = the probe's peak + the full run's tokenized data and cached features beyond the probe's
     + on CPU, one more copy of the training state (16 bytes a trainable parameter: weights, gradients, AdamW
     moments). A long CPU run keeps growing after the probe's eight steps: the allocator holds on to blocks
     of every batch shape it has seen, and each evaluation writes the best weights and a checkpoint. MiniLM
     full fine-tuning on 2,000 snippets went from 1.13 GiB at the start of training to 1.48-1.61 GiB, about
     the 0.36 GiB of its training state; a 2-layer test model with almost nothing to train did not grow.

Every evaluation the config asks for is counted: early stopping can only make the run shorter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunesmith.methods import get_method

PHASES = ("tokenize", "baselines", "train", "evaluate")


@dataclass
class Prediction:
    seconds: float
    peak_bytes: int
    gpu_peak_bytes: int
    phases: dict[str, float] = field(default_factory=dict)
    steps: int = 0

    def cost(self, price_per_hour: float) -> float:
        return self.seconds / 3600 * price_per_hour


def _on_features(method: str) -> bool:
    """The method trains on cached features (head): its steps and evaluations follow its own epochs."""
    return not get_method(method).keeps_activations


def _evaluations(probe: dict[str, Any], method: str) -> int:
    r, full = probe["resolved"], probe["full"]
    if _on_features(method):
        return r["head_epochs"]
    total = full["steps_per_epoch"] * r["epochs"]
    return r["epochs"] if not r["eval_every"] else -(-total // r["eval_every"])


def _step_seconds(probe: dict[str, Any], method: str) -> tuple[float, float]:
    """(seconds the probe's steps took, seconds the full run's steps will take)."""
    r, full = probe["resolved"], probe["full"]
    steps = [s for s in probe["steps"] if s["seconds"] is not None]
    spent = sum(s["seconds"] for s in steps)
    timed = steps[2:] if len(steps) > 2 else steps
    if not timed:
        return spent, 0.0
    if _on_features(method):  # head: a step is a small matrix product per example, many epochs over features
        per_sample = sum(s["seconds"] for s in timed) / max(1, sum(s["samples"] for s in timed))
        return spent, per_sample * full["train"] * r["head_epochs"]
    positions = full.get("positions_per_epoch")
    if positions and all(s["positions"] for s in timed):
        per_position = sum(s["seconds"] for s in timed) / sum(s["positions"] for s in timed)
        return spent, per_position * positions * r["epochs"]
    per_sample = sum(s["seconds"] for s in timed) / max(1, sum(s["samples"] for s in timed))
    return spent, per_sample * full["train"] * r["epochs"]


def _scale(record: dict[str, Any], probe: dict[str, Any], evaluations: float) -> float:
    sizes, full = probe["sizes"], probe["full"]
    if record["kind"] == "generate":
        per_call = max(1, sizes["generations"])
        return full["generations"] / per_call if record["n"] else 1.0
    if record["split"] == "selection":
        # Carved from the whole training data when it is read, before the probe narrows the splits: the probe
        # evaluates the real run's own selection split, so only the number of evaluations scales. (Scaled by the
        # data size as well, MiniLM on 2,000 snippets predicted 24.7 s for two passes over 300 of them.)
        return evaluations if record["phase"] == "train" else 1.0
    split = "train" if record["split"] == "train" else "validation"
    full_tokens = full.get("tokens", {}).get(split)
    if record.get("tokens") and full_tokens:  # the subset's lengths differ from the data's: scale by tokens
        ratio = full_tokens / record["tokens"]
    else:
        ratio = full[split] / max(1, sizes[split])
    return ratio * (evaluations if record["phase"] == "train" else 1.0)


def predict(probe: dict[str, Any], method: str, trainable_params: int = 0) -> Prediction:
    timings, sizes, full = probe["timings"], probe["sizes"], probe["full"]
    evaluations_full = _evaluations(probe, method)
    evaluations_probe = max(1, probe["evaluations"]) if not _on_features(method) else evaluations_full
    phases: dict[str, float] = {}
    for phase in PHASES:
        spent = float(timings.get(phase, 0.0))
        records = [r for r in probe["meter"] if r["phase"] == phase]
        metered = sum(r["seconds"] for r in records)
        if phase == "tokenize":  # no model work: scales with the examples
            ratio = (full["train"] + full["validation"]) / max(1, sizes["train"] + sizes["validation"])
            phases[phase] = spent * ratio
            continue
        fixed = spent - metered
        predicted = 0.0
        if phase == "train":
            step_spent, step_full = _step_seconds(probe, method)
            fixed -= step_spent
            predicted += step_full
        evaluations = evaluations_full / evaluations_probe
        predicted += sum(r["seconds"] * _scale(r, probe, evaluations) for r in records)
        phases[phase] = max(fixed, 0.0) + predicted
    accounted = sum(float(timings.get(p, 0.0)) for p in (*PHASES, "read_and_check"))
    phases["start_up"] = probe["import_s"]
    phases["read_and_check"] = probe["read_full_s"]
    phases["export_and_report"] = max(0.0, float(timings.get("total", 0.0)) - accounted)
    total = sum(phases.values())

    # Memory: the probe's peak, plus what the full run holds beyond the probe's subset.
    extra_examples = (full["train"] + full["validation"]) - (sizes["train"] + sizes["validation"])
    per_example = 8 * (full.get("mean_tokens") or 0) * 2 + 8 * 1024  # token ids and masks; cached features
    growth = 0 if probe.get("gpu_peak") else 16 * trainable_params
    peak = int(probe["peak_rss"] + growth + max(0, extra_examples) * per_example)
    steps = full["steps_per_epoch"] * probe["resolved"]["epochs"]
    return Prediction(total, peak, int(probe.get("gpu_peak", 0)), {k: round(v, 2) for k, v in phases.items()}, steps)
