"""Exports of a finished run beside its model: the checked LoRA merge (ONNX lives in onnx_export.py)."""

from __future__ import annotations

from pathlib import Path

from tunesmith.errors import InputError
from tunesmith.files import write_json
from tunesmith.inference import load
from tunesmith.inference.weights import inside_run
from tunesmith.methods.lora import merge_checked
from tunesmith.pipeline.model_card import write_model_cards
from tunesmith.rundir import read_manifest


def merge_adapter(run_dir: str | Path) -> Path:
    """Merge a LoRA run's adapter into full weights, saved as ``RUN/model`` in Hugging Face format, kept only if
    it reproduces base + adapter on the run's golden held-out examples (probabilities for classifiers, greedy
    outputs for generators)."""
    run = Path(run_dir)
    if not run.is_dir():
        raise InputError(
            f"{run_dir}: export writes into a run directory; registered versions are read-only (export the run, "
            "then register it)"
        )
    manifest = read_manifest(run)
    export = manifest.get("export", {})
    if export.get("format") == "transformers" and not export.get("adapter"):
        raise InputError(f"{run}: this run's model is already full weights (method {manifest.get('method')})")
    if export.get("merged"):
        return inside_run(run, export.get("path"), "export.path")
    loaded = load(run)
    info = merge_checked(loaded.model, run / "model", loaded.parity_check())
    loaded.save_preprocessor(run / "model")
    manifest["export"] = {**export, **info}
    write_model_cards(run, manifest)
    write_json(run / "manifest.json", manifest)
    return run / "model"
