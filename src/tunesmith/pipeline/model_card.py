"""Model cards: a README.md in every ``model/`` and ``adapter/`` folder, with the YAML metadata the Hugging Face
Hub reads (base_model, library_name, pipeline_tag, license where known, metrics) and a summary a person reads: what
was tuned from what, on how much data (with its fingerprint), and how it compares with the general model. An
adapter also names its base by hub id where the catalog knows one, so that PEFT finds the base on another
machine (the local path stays in the manifest)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tunesmith.files import atomic_write_text, write_json
from tunesmith.models.catalog import CATALOG

PIPELINE_TAGS = {"text-classification": "text-classification", "image-classification": "image-classification",
                 "causal-lm": "text-generation"}  # fmt: skip
HEADLINE = ("accuracy", "macro_f1", "ece", "loss", "perplexity", "token_f1", "rouge_l", "exact_match")


def hub_base(manifest: dict[str, Any]) -> str | None:
    """The base model's hub id: the catalog's, or the config's own when it was one."""
    spec = str(manifest.get("base_model", {}).get("spec") or "")
    if spec in CATALOG:
        return CATALOG[spec].hub_id
    looks_local = spec.startswith((".", "/", "~")) or Path(spec).exists() or spec.count("/") != 1
    return None if looks_local else spec


def write_model_cards(run: Path, manifest: dict[str, Any]) -> list[Path]:
    """README.md in ``run/model`` and ``run/adapter`` (those that exist); an adapter made portable."""
    written = []
    for folder, library in (("model", "transformers"), ("adapter", "peft")):
        if (run / folder).is_dir():
            atomic_write_text(run / folder / "README.md", card(manifest, library))
            written.append(run / folder / "README.md")
    if (run / "adapter" / "adapter_config.json").is_file():
        portable_adapter(run / "adapter", manifest)
    return written


def portable_adapter(folder: Path, manifest: dict[str, Any]) -> None:
    hub = hub_base(manifest)
    config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    if hub and config.get("base_model_name_or_path") != hub:
        config["base_model_name_or_path"] = hub
        write_json(folder / "adapter_config.json", config)


def card(manifest: dict[str, Any], library: str) -> str:
    task, metrics = manifest["task"], manifest.get("metrics", {})
    spec = manifest.get("base_model", {}).get("spec")
    hub = hub_base(manifest)
    entry = CATALOG.get(str(spec))
    meta: dict[str, Any] = {"library_name": library, "pipeline_tag": PIPELINE_TAGS.get(task, task)}
    if hub:
        meta["base_model"] = hub
    if entry is not None and entry.license:
        meta["license"] = entry.license
    meta["tags"] = ["tunesmith", task, manifest.get("method", "")]
    meta["metrics"] = [k for k in HEADLINE if isinstance(metrics.get(k), int | float)]
    data = manifest.get("data", {})
    meta["tunesmith"] = {"data_fingerprint": data.get("fingerprint"),
                         "base_model_fingerprint": manifest.get("base_model", {}).get("fingerprint"),
                         "train_examples": data.get("train_examples"),
                         "validation_examples": data.get("validation_examples")}  # fmt: skip
    lines = ["---", yaml.safe_dump(meta, sort_keys=False).strip(), "---", ""]
    lines += [f"# {spec} tuned for {task} ({manifest.get('method')})", ""]
    if metrics.get("verdict"):
        lines += [metrics["verdict"]["text"], ""]
    if entry is not None and entry.hub_id and str(entry.subpath).endswith(".gguf"):
        lines += [f"The base was tunesmith's catalog build of {entry.hub_id} ({Path(entry.subpath).name}, "
                  "dequantised), whose weights differ slightly from the hub's.", ""]  # fmt: skip
    lines += _metrics_table(metrics, meta["metrics"])
    lines += ["", f"Measured on {metrics.get('n', data.get('validation_examples'))} held-out examples. Trained on "
              f"{data.get('train_examples')} examples (data fingerprint `{data.get('fingerprint')}`); the run's "
              "report.html has the whole comparison, with intervals.", ""]  # fmt: skip
    lines += [
        "## Use",
        "",
        "```python",
        *_usage(task, library, hub or str(spec), len(manifest.get("label_map", {}))),
        "```",
        "",
    ]
    return "\n".join(lines)


def _metrics_table(metrics: dict[str, Any], headline: list[str]) -> list[str]:
    """The tuned model's figures beside each baseline's: classifiers' baselines, or the base model for generators
    (whose answer scores are kept per model)."""
    tuned = metrics.get("tuned") if isinstance(metrics.get("tuned"), dict) else metrics
    baselines = dict(metrics.get("baselines") or {})
    if isinstance(metrics.get("base"), dict):
        baselines["base model"] = metrics["base"]
    keys = [k for k in (*headline, "token_f1", "rouge_l") if isinstance(tuned.get(k), int | float)]
    keys = list(dict.fromkeys(keys))
    rows = ["| metric | tuned |" + "".join(f" {name} |" for name in baselines), "|---|---|" + "---|" * len(baselines)]
    for key in keys:
        rows.append(f"| {key} | {_fmt(tuned[key])} |" + "".join(f" {_fmt(b.get(key))} |" for b in baselines.values()))
    return rows


def _fmt(value: Any) -> str:
    return "" if not isinstance(value, int | float) else f"{value:.4f}"


def _usage(task: str, library: str, base: str, labels: int) -> list[str]:
    if library == "peft":
        auto = "AutoModelForCausalLM" if task == "causal-lm" else "AutoModelForSequenceClassification"
        extra = "" if task == "causal-lm" else f", num_labels={labels}"
        return ["from peft import PeftModel", f"from transformers import {auto}", "",
                f'base = {auto}.from_pretrained("{base}"{extra})',
                'model = PeftModel.from_pretrained(base, "THIS_FOLDER")']  # fmt: skip
    if task == "causal-lm":
        return ["from transformers import pipeline", "", 'chat = pipeline("text-generation", model="THIS_FOLDER")',
                'print(chat([{"role": "user", "content": "Hello"}])[0]["generated_text"])']  # fmt: skip
    return ["import tunesmith", "", 'model = tunesmith.load("RUN_FOLDER")  # the run this folder belongs to',
            'print(model.predict(["an example"]))']  # fmt: skip
