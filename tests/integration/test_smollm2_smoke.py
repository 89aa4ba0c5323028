"""The real SmolLM2-135M-Instruct (GGUF from its package, converted once): it answers correctly before tuning,
a LoRA run on a handful of chatterbot conversations lowers held-out loss, and its merge passes the parity check."""

from __future__ import annotations

import json

import pytest

import tunesmith
from tests.conftest import write_jsonl
from tunesmith.models.catalog import resolve

pytestmark = pytest.mark.slow


def test_smollm2_converts_answers_and_tunes(tmp_path, cache_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith.tasks.causal_lm.decoding import generate_texts
    from tunesmith.tasks.causal_lm.rendering import prompt_ids

    source = resolve("smollm2-135m")
    assert (cache_dir / "models").is_dir() and list((cache_dir / "models").glob("*/model.safetensors"))
    assert resolve("smollm2-135m").fingerprint == source.fingerprint  # the second resolve reuses the conversion
    tok = AutoTokenizer.from_pretrained(source.path)
    model = AutoModelForCausalLM.from_pretrained(source.path, use_safetensors=True)
    question = [{"role": "user", "content": "What is the capital of France?"}]
    (answer,) = generate_texts(model, tok, [prompt_ids(tok, question)], max_new_tokens=16)
    assert "Paris" in answer
    del model

    from tunesmith.examples import chatterbot

    train, val = chatterbot(tmp_path / "data", 24, 8)
    cfg = {
        "task": "causal-lm",
        "output_dir": str(tmp_path / "runs"),
        "data": {"train": str(train), "validation": str(val)},
        "train": {"epochs": 1, "batch_size": 8, "learning_rate": 2e-3, "max_length": 128},
        "lora": {"merge": True},
        "eval": {"generate_examples": 4, "max_new_tokens": 16, "bootstrap": 200},
    }
    run = tunesmith.finetune(cfg)
    m = run.metrics
    assert run.manifest["method"] == "lora" and run.manifest["base_model"]["spec"] == "smollm2-135m"
    assert m["tuned"]["loss"] < m["base"]["loss"]
    check = run.manifest["export"]["merge_check"]
    assert check["identical_greedy_outputs"] == check["prompts"] == 4
    samples = [json.loads(x) for x in (run.path / "validation_generations.jsonl").read_text().splitlines()]
    assert len(samples) == 4 and all(s["base"] for s in samples)
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "What is your name?"}])
    assert tunesmith.predict(run.path, prompts, tmp_path / "o.jsonl", max_new_tokens=12) == 1
