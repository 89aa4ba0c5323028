"""lora: PEFT LoRA adapters plus the classification head; saved as an adapter, merged on request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunesmith.methods import METHODS, Job, fine_tune
from tunesmith.train.loop import FitResult


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

    def wrap(self, model: Any, opts: Any) -> Any:
        from peft import LoraConfig, TaskType, get_peft_model

        config = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=opts.r,
            lora_alpha=opts.alpha,
            lora_dropout=opts.dropout,
            target_modules=opts.target_modules,  # None: PEFT's default for the architecture
            modules_to_save=head_module_names(model),
        )
        return get_peft_model(model, config)

    def train(self, job: Job) -> FitResult:
        warm = job.cfg.lora.warm_start_head
        if warm and job.features is not None:  # before wrapping: the head is fitted on the plain model
            from tunesmith.methods.head import train_head

            job.warm_start = train_head(job, job.cfg.head.learning_rate, job.cfg.head.epochs, None)
        job.model = self.wrap(job.model, job.cfg.lora)
        return fine_tune(job, job.cfg.train.learning_rate or self.default_lr, warm_start_head=False)

    def export(self, model: Any, folder: Path, cfg: Any) -> dict[str, Any]:
        adapter = folder.parent / "adapter"
        model.save_pretrained(adapter, safe_serialization=True)
        info: dict[str, Any] = {"format": "peft-adapter", "adapter": adapter.name}
        if cfg.lora.merge:
            merged = model.merge_and_unload()
            merged.save_pretrained(folder, safe_serialization=True)
            info.update(format="transformers", path=folder.name, merged=True)
        return info
