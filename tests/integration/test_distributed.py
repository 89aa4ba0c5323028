"""Two CPU processes (gloo, through torchrun) give the result of one process, within float tolerance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from tests.conftest import tiny_config


def _no_dropout_model(tiny_model: Path, tmp_path: Path) -> Path:
    """Dropout draws differ between one and two processes, so this comparison runs without it."""
    import shutil

    folder = tmp_path / "nodrop"
    shutil.copytree(tiny_model, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def _train(cfg_path: Path, cache: Path, nproc: int) -> Path:
    env = {**os.environ, "TUNESMITH_CACHE": str(cache), "TUNESMITH_NO_PROGRESS": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "tunesmith.cli", "train", str(cfg_path), "--nproc", str(nproc)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return Path(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("steps", "tolerance"), [(3, 1e-5), (30, 2e-3)])
def test_two_processes_match_one(tiny_model, toy_data, tmp_path, steps, tolerance):
    # Attention key biases have an exactly-zero true gradient (softmax ignores a shift shared by all keys), so
    # their "gradient" is float noise that Adam scales up to lr-sized steps: they are left out of the short
    # comparison. fp32, because bf16 matrix products round differently for a half batch than for a whole one.
    # Over a longer run Adam lets float-order differences grow to about one step size (lr).
    model = _no_dropout_model(tiny_model, tmp_path)
    train, val = toy_data
    runs = {}
    for nproc in (1, 2):
        cfg = tiny_config(
            model,
            train,
            val,
            tmp_path / f"runs{nproc}",
            train__epochs=3,
            train__learning_rate=1e-3,
            train__gradient_accumulation=2,
            train__precision="fp32",
            train__max_steps=steps,
            train__early_stopping_patience=0,  # the step counts are compared
        )
        path = tmp_path / f"cfg{nproc}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        runs[nproc] = _train(path, tmp_path / "cache", nproc)
    one = json.loads((runs[1] / "manifest.json").read_text())
    two = json.loads((runs[2] / "manifest.json").read_text())
    assert one["processes"] == 1 and two["processes"] == 2
    assert one["fit"]["steps"] == two["fit"]["steps"] == steps
    a = load_file(str(runs[1] / "model" / "model.safetensors"))
    b = load_file(str(runs[2] / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    compared = [k for k in a if steps > 3 or not k.endswith("key.bias")]
    worst = max((a[k] - b[k]).abs().max().item() for k in compared)
    moved = max(
        (a[k] - load_file(str(model / "model.safetensors")).get(k.removeprefix("bert."), a[k])).abs().max().item()
        for k in a
    )
    assert moved > 5 * tolerance, "training moved the weights well beyond the tolerance"
    assert worst < tolerance, f"largest weight difference between 1 and 2 processes: {worst}"
    assert abs(one["metrics"]["accuracy"] - two["metrics"]["accuracy"]) <= 0.0125


def test_causal_lm_lora_trains_on_two_processes(tiny_llama, chat_data, tmp_path):
    """Packed batches, answer-only logits and the adapter wrap under DDP: a complete run whose held-out loss
    falls. (Each process averages over its own answer tokens and processes are weighted by examples, so the
    result approximates, not equals, the one-process token mean: no weight comparison here.)"""
    from tests.conftest import llm_config

    train, val = chat_data
    cfg = llm_config(tiny_llama, train, val, tmp_path / "runs", method="lora", train__epochs=2,
                     train__learning_rate=1e-2)  # fmt: skip
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = _train(path, tmp_path / "cache", 2)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["processes"] == 2 and manifest["status"] == "complete"
    assert manifest["metrics"]["tuned"]["loss"] < manifest["metrics"]["base"]["loss"]
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
