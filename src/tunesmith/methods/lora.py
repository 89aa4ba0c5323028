"""lora: PEFT LoRA adapters plus the classification head; saved as an adapter, merged on request."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from tunesmith.config import Config, Default
from tunesmith.errors import TunesmithError
from tunesmith.methods.base import METHODS, Job, Method, ParityCheck, TaskHooks
from tunesmith.methods.training import fine_tune
from tunesmith.models.facts import ModelFacts
from tunesmith.train.result import FitResult

# LoRA rank by training examples: a small adapter for little data (less to overfit), more capacity for more.
RANK_RULES = [(1_000, 4), (10_000, 8), (math.inf, 16)]


def lora_rank_for(n_train: int) -> list[Default]:
    r = next(v for bound, v in RANK_RULES if n_train < bound)
    why = f"{n_train:,} training examples (rule: r 4 under 1,000, 8 under 10,000, else 16)"
    return [Default("lora.r", r, why), Default("lora.alpha", 2 * r, "twice the rank (scale 2)")]


def merge_checked(model: Any, folder: Path, check: ParityCheck) -> dict[str, Any]:
    """Merge the adapter into full weights at ``folder`` (Hugging Face format), kept only if the reloaded merged
    model behaves like base + adapter on the check's golden examples."""
    before = check.run(model)
    merged = model.merge_and_unload()
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp, safe_serialization=True)
    reloaded = type(merged).from_pretrained(tmp, use_safetensors=True).eval()
    ok, figures = check.compare(before, check.run(reloaded))
    if not ok:
        shutil.rmtree(tmp, ignore_errors=True)
        raise TunesmithError(
            f"{folder.parent}: the merged weights do not reproduce base + adapter's {check.what} on the golden "
            f"held-out examples ({figures}); the merge was refused and not kept"
        )
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return {"format": "transformers", "path": folder.name, "merged": True, "merge_check": figures}


def head_module_names(model: Any) -> list[str]:
    """Top-level modules outside the pre-trained body (the new head), plus the body's pooler if it has one."""
    body = getattr(model, "base_model_prefix", "")
    names = [n for n, m in model.named_children() if n != body and any(True for _ in m.parameters())]
    if getattr(getattr(model, body, None), "pooler", None) is not None:
        names.append("pooler")
    return names


@METHODS.register("lora")
class Lora(Method):
    name = "lora"

    def default_learning_rate(self, cfg: Config) -> float:
        return 5e-4

    def open_defaults(self, cfg: Config, n_train: int) -> list[Default]:
        if cfg.lora.r is None:
            rank = lora_rank_for(n_train)
            return rank if cfg.lora.alpha is None else rank[:1]
        if cfg.lora.alpha is None:
            return [Default("lora.alpha", 2 * cfg.lora.r, "twice the rank (scale 2)")]
        return []

    def trainable_params(self, facts: ModelFacts, lora_r: int, classes: int, targets_per_layer: int) -> int:
        """Two r-wide matrices per adapted linear layer."""
        return (facts.layers or 12) * targets_per_layer * 2 * lora_r * (facts.hidden or 1024)

    def describe(self, cfg: Config) -> list[str]:
        return [*super().describe(cfg), f"r {cfg.lora.r}"]

    def wrap(self, model: Any, opts: Any, task: TaskHooks) -> Any:
        from peft import LoraConfig, PeftModel, get_peft_model

        if opts.init_adapter:
            return PeftModel.from_pretrained(model, opts.init_adapter, is_trainable=True)
        config = LoraConfig(
            task_type=task.peft_task_type,
            r=opts.r,
            lora_alpha=opts.alpha,
            lora_dropout=opts.dropout,
            target_modules=opts.target_modules or task.lora_targets(model),  # None: PEFT's default
            modules_to_save=task.lora_modules_to_save(model),
        )
        return get_peft_model(model, config)

    def train(self, job: Job) -> FitResult:
        return fine_tune(job, job.cfg.lora.warm_start_head, wrap=lambda m: self.wrap(m, job.cfg.lora, job.task))

    def export(self, model: Any, folder: Path, cfg: Config, check: ParityCheck | None = None) -> dict[str, Any]:
        adapter = folder.parent / "adapter"
        model.save_pretrained(adapter, safe_serialization=True)
        info: dict[str, Any] = {"format": "peft-adapter", "adapter": adapter.name}
        if cfg.lora.merge:
            if check is None:
                raise ValueError("merging needs golden examples to check the merged weights against")
            info.update(merge_checked(model, folder, check))
        return info
