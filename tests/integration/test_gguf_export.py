"""GGUF export for llama.cpp and Ollama: the written file read back by transformers' GGUF loader answers the
held-out prompts as the merged model does; the tokenizer and chat template travel inside; refusals are clear."""

from __future__ import annotations

import json

import pytest

import tunesmith
from tests.conftest import llm_config, tiny_config
from tunesmith import api
from tunesmith.cli import main


@pytest.fixture(scope="module")
def lora_run(tiny_llama, chat_data, tmp_path_factory):
    """A LoRA run on the tiny Llama with a rotary base other than the default (written wrongly, it changes every
    answer: SmolLM2's 100,000 was once lost this way)."""
    import shutil

    out = tmp_path_factory.mktemp("gguf")
    base = out / "llama"
    shutil.copytree(tiny_llama, base)
    config = json.loads((base / "config.json").read_text())
    rope = config.get("rope_parameters") or {"rope_type": "default"}
    config["rope_parameters"] = {**rope, "rope_theta": 500.0}
    config.pop("rope_theta", None)
    (base / "config.json").write_text(json.dumps(config))
    return tunesmith.finetune(llm_config(base, *chat_data, out / "runs", train__epochs=2,
                                         cache_dir=str(out / "cache")))  # fmt: skip


@pytest.mark.parametrize("quant", ["f32", "f16", "q8_0"])
def test_the_gguf_file_answers_as_the_merged_model(lora_run, quant, capsys):
    import gguf

    assert main(["export", str(lora_run.path), "--gguf", "--quant", quant]) == 0
    said = capsys.readouterr().out
    info = json.loads((lora_run.path / "manifest.json").read_text())["gguf"]
    assert info["quant"] == quant and info["prompts"] == 8 and "identical greedy" in said
    assert info["identical_prompt_tokens"] == 8  # the tokenizer inside the file encodes prompts identically
    gap = {"f32": 1e-4, "f16": 0.05, "q8_0": 0.25}[quant]  # every position's log-probabilities, not only argmax
    assert info["max_logprob_difference"] < gap, info
    if quant in ("f32", "f16"):
        assert info["identical_greedy_outputs"] == 8
    else:
        assert info["identical_greedy_outputs"] >= 6  # 8-bit weights may flip a near-tie
    reader = gguf.GGUFReader(str(lora_run.path / "gguf" / "model.gguf"))
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("tokenizer.ggml.")}
    assert fields["general.architecture"] == "llama" and "<|im_start|>" in fields["tokenizer.chat_template"]
    assert fields["llama.rope.freq_base"] == 500.0
    kinds = {t.name: t.tensor_type.name for t in reader.tensors}
    assert kinds["blk.0.attn_norm.weight"] == "F32" and kinds["blk.0.attn_q.weight"] == quant.upper()
    modelfile = (lora_run.path / "gguf" / "Modelfile").read_text()
    assert "FROM ./model.gguf" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert "<|im_start|>assistant" in modelfile


def test_gguf_export_refuses_what_it_cannot_map(tiny_model, toy_data, lora_run, tmp_path, cache_dir, capsys):
    classifier = tunesmith.finetune(tiny_config(tiny_model, *toy_data, tmp_path / "runs", train__epochs=1,
                                                eval__probe=False))  # fmt: skip
    assert main(["export", str(classifier.path), "--gguf"]) == 2
    assert "GGUF export is for causal-lm runs" in capsys.readouterr().err
    assert not (classifier.path / "gguf").exists()
    assert main(["export", str(lora_run.path), "--gguf", "--quant", "q4"]) == 2
    with pytest.raises(tunesmith.errors.InputError, match="does not map"):
        manifest = json.loads((lora_run.path / "manifest.json").read_text())
        config = lora_run.path / "model" / "config.json"
        api.merge_adapter(lora_run.path)
        raw = json.loads(config.read_text())
        config.write_text(json.dumps({**raw, "model_type": "gpt_neox"}))
        try:
            api.export_gguf(lora_run.path)
        finally:
            config.write_text(json.dumps(raw))
            (lora_run.path / "manifest.json").write_text(json.dumps(manifest))
