"""lora: PEFT LoRA adapters plus the classification head; saved as an adapter, merged on request."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.errors import TunesmithError
from tunesmith.methods import METHODS, Job, ParityCheck, fine_tune
from tunesmith.train.loop import FitResult

# Largest probability difference allowed between base + adapter and the merged weights on the golden examples.
MERGE_TOLERANCE = 1e-4


def probability_parity(predict: Callable[[Any], np.ndarray]) -> ParityCheck:
    """Classifiers: the merged model's probabilities on the golden texts within MERGE_TOLERANCE."""

    def compare(before: np.ndarray, after: np.ndarray) -> tuple[bool, dict[str, Any]]:
        gap = float(np.abs(after - before).max()) if len(before) else 0.0
        return gap <= MERGE_TOLERANCE, {"examples": len(before), "max_probability_difference": gap}

    return ParityCheck(predict, compare, f"probabilities (tolerance {MERGE_TOLERANCE})")


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
class Lora:
    name = "lora"
    default_lr = 5e-4

    def wrap(self, model: Any, opts: Any, task: Any) -> Any:
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
        lr = job.cfg.train.learning_rate or self.default_lr
        return fine_tune(job, lr, job.cfg.lora.warm_start_head, wrap=lambda m: self.wrap(m, job.cfg.lora, job.task))

    def export(self, model: Any, folder: Path, cfg: Any, check: ParityCheck | None = None) -> dict:
        adapter = folder.parent / "adapter"
        model.save_pretrained(adapter, safe_serialization=True)
        info: dict[str, Any] = {"format": "peft-adapter", "adapter": adapter.name}
        if cfg.lora.merge:
            if check is None:
                raise ValueError("merging needs golden examples to check the merged weights against")
            info.update(merge_checked(model, folder, check))
        return info
