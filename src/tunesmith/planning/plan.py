"""tunesmith plan: every candidate model x method, probed and predicted, one recommended with its reasons.

Order of work: read the data and the hardware; for each option apply the data-driven defaults and the
memory estimate (options that cannot fit are marked and never started); probe the rest in a child process
each; predict time, peak memory and cost; recommend by the rules in ``PREFERENCE`` within the time budget and
the memory; write the recommended config, which ``tunesmith train`` accepts as it is.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tunesmith import config as cfgmod
from tunesmith.errors import ConfigError
from tunesmith.files import atomic_write_text
from tunesmith.hardware import GIB, Hardware, detect
from tunesmith.methods import get_method
from tunesmith.models.catalog import resolve
from tunesmith.pipeline.finetune import inspect
from tunesmith.pipeline.memory import estimate, trainable_params
from tunesmith.pipeline.resolve import data_driven_defaults, facts_at, resolve_config
from tunesmith.planning.predict import Prediction, predict
from tunesmith.tasks import get_task


def preference(task: str, n_train: int, classes: int = 2) -> tuple[list[str], str]:
    """Methods from the most to the least accurate to expect for this much data, and why (the task's rule)."""
    return get_task(task).method_preference(n_train, classes)


def parse_duration(text: str) -> float:
    """'90s', '10m', '1.5h', '2h30m' -> seconds."""
    parts = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*", text or "")
    if not text or parts is None or not any(parts.groups()):
        raise ConfigError(f"--budget {text!r}: expected a duration like 90s, 10m, 1.5h or 2h30m")
    h, m, s = (float(g) if g else 0.0 for g in parts.groups())
    return h * 3600 + m * 60 + s


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


@dataclass
class Option:
    model: str
    method: str
    status: str = "pending"  # ok, too_big, failed
    note: str = ""
    estimate_bytes: int = 0
    prediction: Prediction | None = None
    defaults: list[dict[str, Any]] = field(default_factory=list)
    probe: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return f"{self.model} / {self.method}"

    def to_dict(self, price: float) -> dict[str, Any]:
        p = self.prediction
        return {
            "model": self.model,
            "method": self.method,
            "status": self.status,
            "note": self.note,
            "estimated_peak_bytes": self.estimate_bytes,
            "predicted_seconds": round(p.seconds, 1) if p else None,
            "predicted_peak_bytes": p.peak_bytes if p else None,
            "predicted_gpu_peak_bytes": p.gpu_peak_bytes if p else None,
            "predicted_cost": round(p.cost(price), 4) if p else None,
            "phases_s": p.phases if p else None,
            "steps": p.steps if p else None,
            "defaults": self.defaults,
        }


@dataclass
class Plan:
    hardware: Hardware
    data: dict[str, Any]
    options: list[Option]
    price_per_hour: float
    budget_s: float | None
    recommended: Option | None = None
    reasons: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    config_path: Path | None = None
    seconds: float | None = None  # predicted time of the recommended config (fewer epochs when the budget asked)

    def kept_defaults(self) -> list[dict[str, Any]]:
        """The recommended option's data-driven defaults that its written config keeps (a time budget may have
        replaced the epochs; the reasons say so)."""
        if self.recommended is None:
            return []
        epochs = self.config.get("train", {}).get("epochs")
        return [d for d in self.recommended.defaults if d["key"] != "train.epochs" or d["value"] == epochs]

    def to_dict(self) -> dict[str, Any]:
        return {
            "hardware": self.hardware.to_dict(),
            "data": self.data,
            "price_per_hour": self.price_per_hour,
            "budget_s": self.budget_s,
            "options": [o.to_dict(self.price_per_hour) for o in self.options],
            "recommended": self.recommended.name if self.recommended else None,
            "recommended_seconds": round(self.seconds, 1) if self.seconds is not None else None,
            "reasons": self.reasons,
            "config": self.config,
            "config_path": str(self.config_path) if self.config_path else None,
        }

    def table(self) -> str:
        price = f"cost @ {self.price_per_hour:.2f}/h"
        head = f"{'option':<28} {'fits':<5} {'time':>9} {'peak memory':>12} {price:>13}  notes"
        rows = [head, "-" * len(head)]
        for o in self.options:
            p = o.prediction
            mark = "*" if o is self.recommended else " "
            fits = {"ok": "yes", "too_big": "no", "failed": "?"}.get(o.status, "?")
            time_s = format_duration(p.seconds) if p else "-"
            mem = (
                f"{p.peak_bytes / GIB:.2f} GiB"
                if p
                else f"~{o.estimate_bytes / GIB:.1f} GiB"
                if o.estimate_bytes
                else "-"
            )
            cost = f"{p.cost(self.price_per_hour):.3f}" if p else "-"
            rows.append(f"{mark}{o.name:<27} {fits:<5} {time_s:>9} {mem:>12} {cost:>13}  {o.note}")
        return "\n".join(rows)


def candidate_models(task: str, raw: dict[str, Any]) -> list[str]:
    from tunesmith.models.catalog import CATALOG

    if raw.get("model"):
        return [raw["model"]]
    return [name for name, entry in CATALOG.items() if entry.task == task]


def _data_summary(cfg: cfgmod.Config) -> tuple[dict[str, Any], int, Any]:
    """What the table says about the data, the max length, and what the task read (its label set)."""
    from collections import Counter

    _, data, _, _, max_length = inspect(cfg)
    counts = Counter(data.train.labels)
    summary: dict[str, Any] = {"train_examples": len(data.train), "validation_examples": len(data.val)}
    if data.labels:
        summary["classes"] = len(counts)
        summary["class_counts"] = dict(sorted(counts.items()))
        summary["imbalance"] = round(max(counts.values()) / max(1, min(counts.values())), 2)
    if "tokens" in data.report.stats:
        train_tokens = data.report.stats["tokens"].get("train", {})
        summary["tokens"] = {k: train_tokens[k] for k in ("mean", "p95", "max") if k in train_tokens}
    summary["max_length"] = max_length
    summary["warnings"] = [p.message for p in data.report.warnings]
    return summary, max_length, data


def make_plan(
    raw: dict[str, Any],
    *,
    methods: list[str] | None = None,
    budget_s: float | None = None,
    price_per_hour: float = 1.0,
    hardware: Hardware | None = None,
    timeout: float = 600,
    progress: Any = None,
) -> Plan:
    from tunesmith.planning.probe import probe

    say = progress or (lambda _msg: None)
    base = cfgmod.from_dict(raw)
    hardware = hardware or detect()
    data, max_length, read = _data_summary(base)
    allowed = get_task(base.task).methods
    for m in methods or []:
        if m not in allowed:
            raise ConfigError(f"--methods: got {m!r}; allowed for task {base.task}: {', '.join(allowed)}")
    plan = Plan(hardware, data, [], price_per_hour, budget_s)
    for model in candidate_models(base.task, raw):
        source = resolve(model, base.cache_dir, allow_pickle=base.trust_remote_code)
        facts = facts_at(source, base.task, max_length)
        for method in methods or list(allowed):
            option_raw = {**copy.deepcopy(raw), "model": model, "method": method}
            cfg = cfgmod.from_dict(option_raw)
            option = Option(model, method)
            plan.options.append(option)
            chosen = data_driven_defaults(cfg, read, source, max_length, hardware)
            option.defaults = [{"key": d.key, "value": d.value, "why": d.why} for d in chosen]
            real = resolve_config(cfg, chosen, max_length)
            micro = -(-real.train.batch_size // (real.train.gradient_accumulation or 1))
            classes, frozen = data.get("classes", 2), bool(real.train.freeze_embeddings)
            est = estimate(facts, real.task, method, max_length, real.lora.r or 8, classes, frozen)
            option.estimate_bytes = est.peak(micro)
            if option.estimate_bytes > hardware.budget_bytes:
                option.status = "too_big"
                option.note = (
                    f"estimated {option.estimate_bytes / GIB:.1f} GiB > {hardware.budget_bytes / GIB:.1f} GiB free: "
                    "not started"
                )
                continue
            say(f"probing {option.name} ...")
            result = probe(option_raw, timeout=timeout)
            if "error" in result:
                option.status, option.note = "failed", f"probe {result['error']}"
                continue
            option.probe = result
            trainable = trainable_params(facts, real.task, method, real.lora.r or 8, classes, frozen)
            option.prediction = predict(result, method, trainable)
            if option.prediction.peak_bytes > hardware.memory_available or (
                hardware.gpu and option.prediction.gpu_peak_bytes > hardware.gpu_memory_available
            ):
                option.status = "too_big"
                option.note = f"measured peak {option.prediction.peak_bytes / GIB:.1f} GiB does not fit"
                continue
            option.status = "ok"
            option.note = _settings_note(real)
    recommend(plan, raw)
    return plan


def _settings_note(cfg: cfgmod.Config) -> str:
    parts = get_method(cfg.method).describe(cfg)
    if cfg.train.gradient_accumulation > 1:
        parts.append(f"{cfg.train.gradient_accumulation} micro-batches")
    return ", ".join(parts)


def recommend(plan: Plan, raw: dict[str, Any]) -> None:
    order, why = preference(cfgmod.from_dict(raw).task, plan.data["train_examples"], plan.data.get("classes", 2))
    usable = [o for o in plan.options if o.status == "ok" and o.prediction is not None]
    if not usable:
        plan.reasons = ["no option could be probed within the memory of this machine; see the notes"]
        return
    ranked = sorted(usable, key=lambda o: (order.index(o.method), o.prediction.seconds if o.prediction else 0))
    plan.reasons.append(f"data: {why}")
    budget = plan.budget_s
    chosen: Option | None = None
    epochs_override: int | None = None
    if budget is None:
        chosen = ranked[0]
    else:
        for option in ranked:
            assert option.prediction is not None
            if option.prediction.seconds <= budget:
                chosen = option
                break
        if chosen is None:  # fewer epochs of the preferred option, if that fits
            for option in ranked:
                fewer = _epochs_within(option, budget)
                if fewer:
                    chosen, epochs_override = option, fewer
                    break
        if chosen is None:
            chosen = min(ranked, key=lambda o: o.prediction.seconds if o.prediction else 0)
            plan.reasons.append(
                f"budget: no option fits in {format_duration(budget)}; the fastest is recommended. "
                "Fewer examples (data.max_train_examples) would shorten it further"
            )
        else:
            assert chosen.prediction is not None
            passed = [o.name for o in ranked[: ranked.index(chosen)]]
            text = f"budget: {format_duration(budget)}"
            if passed:
                text += f"; {', '.join(passed)} would take longer"
            if epochs_override:
                text += f"; {epochs_override} epoch(s) instead of the default to fit"
            plan.reasons.append(text)
    assert chosen.prediction is not None
    plan.recommended = chosen
    seconds = chosen.prediction.seconds
    if epochs_override:
        seconds = _seconds_with_epochs(chosen, epochs_override)
    plan.seconds = seconds
    plan.reasons.append(
        f"memory: predicted peak {chosen.prediction.peak_bytes / GIB:.2f} GiB of "
        f"{plan.hardware.budget_bytes / GIB:.1f} GiB free"
    )
    plan.reasons.append(f"time: about {format_duration(seconds)} on {plan.hardware.describe()}")
    config = copy.deepcopy(raw)
    config["model"], config["method"] = chosen.model, chosen.method
    for d in chosen.defaults:
        cfgmod.set_key(config, d["key"], d["value"])
    if epochs_override:
        cfgmod.set_key(config, "train.epochs", epochs_override)
    plan.config = config


def _seconds_with_epochs(option: Option, epochs: int) -> float:
    p = option.prediction
    assert p is not None and option.probe is not None
    default_epochs = option.probe["resolved"]["epochs"]
    per_epoch = p.phases.get("train", 0.0) / max(1, default_epochs)
    return p.seconds - p.phases.get("train", 0.0) + per_epoch * epochs


def _epochs_within(option: Option, budget: float) -> int | None:
    if get_method(option.method).epochs_key != "train.epochs" or option.probe is None:
        return None
    for epochs in range(option.probe["resolved"]["epochs"] - 1, 0, -1):
        if _seconds_with_epochs(option, epochs) <= budget:
            return epochs
    return None


def write_config(plan: Plan, path: Path) -> Path:
    """The recommended config, with the prediction as a comment; ``tunesmith train`` reads it as it is."""
    if plan.recommended is None or plan.recommended.prediction is None:
        raise ConfigError("no option to recommend: nothing written")
    p = plan.recommended.prediction
    seconds = plan.seconds if plan.seconds is not None else p.seconds
    header = [
        f"# tunesmith plan: {plan.recommended.name}",
        f"# predicted: {format_duration(seconds)}, peak memory {p.peak_bytes / GIB:.2f} GiB, "
        f"cost {seconds / 3600 * plan.price_per_hour:.3f} at {plan.price_per_hour:.2f}/h",
        *[f"# {r}" for r in plan.reasons],
        *[f"# {d['key']} = {d['value']}: {d['why']}" for d in plan.kept_defaults()],
    ]
    text = "\n".join(header) + "\n" + yaml.safe_dump(plan.config, sort_keys=False)
    cfgmod.from_dict(yaml.safe_load(text))  # what is written must load
    atomic_write_text(path, text)
    plan.config_path = path
    return path
