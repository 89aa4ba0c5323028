"""causal-lm on the tiny Llama: the method matrix, the report, export parity (kept and refused), generate and
predict through the CLI and the Python API, and resume after an interruption."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

import tunesmith
from tests.conftest import llm_config, write_jsonl
from tunesmith.cli import main


@pytest.fixture(scope="module")
def runs(tiny_llama, chat_data, tmp_path_factory) -> dict[str, tunesmith.Run]:
    train, val = chat_data
    out = tmp_path_factory.mktemp("llm-runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("TUNESMITH_CACHE", str(out / "cache"))
    try:
        return {
            "lora": tunesmith.finetune(
                llm_config(
                    tiny_llama,
                    train,
                    val,
                    out,
                    method="lora",
                    train__epochs=8,
                    train__learning_rate=1e-2,
                    lora__merge=True,
                )
            ),
            "full": tunesmith.finetune(
                llm_config(
                    tiny_llama,
                    train,
                    val,
                    out,
                    method="full",
                    train__epochs=8,
                    train__learning_rate=3e-3,
                    eval__generate_examples=16,
                )
            ),
        }
    finally:
        mp.undo()


@pytest.mark.parametrize("method", ["lora", "full"])
def test_tuning_lowers_held_out_loss(runs, method):
    m = runs[method].metrics
    assert m["base"]["loss"] > 5.5  # random weights: about ln(vocabulary)
    assert m["tuned"]["loss"] < m["base"]["loss"] - (0.4 if method == "lora" else 3.0)
    assert m["perplexity"] == pytest.approx(float(torch.tensor(m["loss"]).exp()), rel=1e-5)
    assert m["n_generated"] == (8 if method == "lora" else 16)


def test_full_tuning_answers_better_than_the_base_with_an_interval(runs):
    m = runs["full"].metrics
    f1 = m["tuned_minus_base"]["token_f1"]
    assert m["tuned"]["token_f1"] > m["base"]["token_f1"] + 0.2
    assert f1["ci_low"] > 0 and f1["significant"]


@pytest.mark.parametrize("method", ["lora", "full"])
def test_run_directory_and_report(runs, method):
    run = runs[method]
    files = {p.name for p in run.path.iterdir()}
    assert {"config.yaml", "manifest.json", "report.json", "report.html", "validation_generations.jsonl"} <= files
    man = run.manifest
    assert man["task"] == "causal-lm" and man["method"] == method and man["data"]["format"] == "chat"
    assert man["fit"]["tokens_per_s"] > 0 and 0 <= man["fit"]["padding_share"] < 0.25  # packed batches
    samples = [json.loads(x) for x in (run.path / "validation_generations.jsonl").read_text().splitlines()]
    assert {"prompt", "reference", "base", "tuned", "token_f1_base", "rouge_l_tuned"} <= set(samples[0])
    html = (run.path / "report.html").read_text()
    assert "Side by side" in html and "perplexity" in html and samples[0]["reference"].split()[0] in html
    data = json.loads((run.path / "data_report.json").read_text())["stats"]["tokens"]
    assert data["billable_training_tokens"] == data["train"]["tokens"] * 8
    assert yaml.safe_load((run.path / "config.yaml").read_text())["train"]["metric"] == "loss"


def test_lora_saves_an_adapter_and_a_checked_merge(runs, tiny_llama):
    run = runs["lora"]
    export = run.manifest["export"]
    assert export["format"] == "transformers" and export["adapter"] == "adapter" and export["merged"]
    assert export["merge_check"]["identical_greedy_outputs"] == export["merge_check"]["prompts"] == 8
    assert (run.path / "adapter" / "adapter_config.json").is_file()
    targets = set(json.loads((run.path / "adapter" / "adapter_config.json").read_text())["target_modules"])
    assert targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    # The merged folder is plain transformers and answers exactly like base + adapter.
    from transformers import AutoModelForCausalLM

    from tunesmith.tasks.causal_lm.predictor import Generator

    gen = tunesmith.load(run.path)
    merged = AutoModelForCausalLM.from_pretrained(run.path / "model", use_safetensors=True)
    plain = Generator(run.path, run.manifest, merged.eval(), gen.tokenizer)
    prompts = [json.loads(x)["prompt"] for x in (run.path / "validation_generations.jsonl").read_text().splitlines()]
    assert gen.generate(prompts, max_new_tokens=12) == plain.generate(prompts, max_new_tokens=12)


def test_a_merge_that_changes_outputs_is_refused(tiny_llama, chat_data, tmp_path, monkeypatch, cache_dir):
    """Corrupt the merged weights on their way out: the parity check must refuse the export and keep nothing."""
    from peft.tuners.lora import LoraModel

    train, val = chat_data
    run = tunesmith.finetune(
        llm_config(tiny_llama, train, val, tmp_path, method="lora", train__epochs=2, train__learning_rate=1e-2)
    )
    real = LoraModel.merge_and_unload

    def corrupted(self, *a, **k):
        merged = real(self, *a, **k)
        with torch.no_grad():
            for p in merged.model.layers[0].mlp.parameters():
                p.mul_(-3.0)
        return merged

    monkeypatch.setattr(LoraModel, "merge_and_unload", corrupted)
    assert main(["export", str(run.path), "--merge"]) == 1
    assert not (run.path / "model").exists() and not list(run.path.glob(".model*"))
    assert "merged" not in json.loads((run.path / "manifest.json").read_text())["export"]


def test_generate_and_predict_through_cli_and_python(runs, tmp_path, capsys):
    run = runs["full"].path
    gen = tunesmith.load(run)
    prompt = "What does a cow say? (7)"
    expected = gen.generate(prompt, max_new_tokens=12)
    assert isinstance(expected, str) and expected
    assert "".join(gen.stream(prompt, max_new_tokens=12)) == expected  # streaming gives the same answer
    assert main(["generate", str(run), "--prompt", prompt, "--max-new-tokens", "12"]) == 0
    assert capsys.readouterr().out.strip() == expected
    prompts = write_jsonl(
        tmp_path / "prompts.jsonl",
        [{"id": 1, "prompt": prompt}, {"id": 2, "messages": [{"role": "user", "content": "What colour is the sky?"}]}],
    )
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(run), "--input", str(prompts), "--output", str(out), "--max-new-tokens", "12"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, 2] and rows[0]["completion"] == expected
    # Sampling is seeded and differs from greedy at a high temperature.
    a = gen.generate(prompt, max_new_tokens=12, temperature=1.5, seed=3)
    assert a == gen.generate(prompt, max_new_tokens=12, temperature=1.5, seed=3)
    # Bad prompt files name the line.
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"text": 1}\n')
    assert main(["predict", str(run), "--input", str(bad), "--output", str(out)]) == 2
    assert f"{bad}:line 2" in capsys.readouterr().err


def test_eval_command_scores_a_file(runs, chat_data, capsys):
    _, val = chat_data
    assert main(["eval", str(runs["full"].path), "--data", str(val), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["n"] == 40 and m["loss"] == pytest.approx(runs["full"].metrics["loss"], rel=1e-4)
    assert 0 <= m["token_f1"] <= 1 and m["n_generated"] == 40


def test_resume_continues_to_the_same_weights(tiny_llama, chat_data, tmp_path, cache_dir):
    """Stop after a checkpoint (max_steps), resume to the end: identical adapter weights to one straight run."""
    from safetensors.torch import load_file

    train, val = chat_data
    common = dict(
        method="lora",
        train__epochs=2,
        train__learning_rate=1e-2,
        train__checkpoint_every=5,
        train__early_stopping_patience=0,
    )
    straight = tunesmith.finetune(llm_config(tiny_llama, train, val, tmp_path / "a", **common))
    cfg = llm_config(tiny_llama, train, val, tmp_path / "b", **common)
    from tunesmith.train import loop

    calls = {"n": 0}
    real_step = torch.optim.AdamW.step

    class Stop(Exception):
        pass

    def step_then_stop(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 8:
            raise Stop
        return real_step(self, *a, **k)

    mp = pytest.MonkeyPatch()
    mp.setattr(torch.optim.AdamW, "step", step_then_stop)
    with pytest.raises(Stop):
        tunesmith.finetune(cfg)
    mp.undo()
    assert loop.latest_checkpoint(next((tmp_path / "b").iterdir()) / "checkpoints") is not None
    resumed = tunesmith.finetune(cfg, resume=True)
    assert resumed.manifest["fit"]["resumed_from"].endswith("ckpt-00000005")
    a = load_file(str(straight.path / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(resumed.path / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_text_and_prompt_completion_formats_train(tiny_llama, tmp_path, cache_dir):
    docs = tmp_path / "corpus.txt"
    docs.write_text("\n\n".join(f"The sky is blue and the grass is green. Line {i}." for i in range(40)))
    run = tunesmith.finetune(
        llm_config(tiny_llama, docs, None, tmp_path / "t", method="full", train__learning_rate=3e-3, train__epochs=10)
    )
    assert run.manifest["data"]["format"] == "text" and run.metrics["n_generated"] == 0
    assert run.metrics["tuned"]["loss"] < run.metrics["base"]["loss"] - 1.0
    # Without held-out prompts, a merge is checked on the opening of held-out documents.
    lora = tunesmith.finetune(
        llm_config(tiny_llama, docs, None, tmp_path / "tl", method="lora", train__epochs=2, lora__merge=True)
    )
    assert lora.manifest["export"]["merge_check"]["prompts"] == 8
    pairs = [{"prompt": f"What colour is the sky? ({i})", "completion": " The sky is blue."} for i in range(30)]
    pc = write_jsonl(tmp_path / "pc.jsonl", pairs)
    run = tunesmith.finetune(
        llm_config(tiny_llama, pc, None, tmp_path / "p", method="full", train__learning_rate=3e-3, train__epochs=6)
    )
    assert run.manifest["data"]["format"] == "prompt-completion"
    assert tunesmith.load(run.path).generate("What colour is the sky? (99)", max_new_tokens=8) == "The sky is blue."


def test_method_head_is_refused_for_generation(tiny_llama, chat_data, tmp_path):
    from tunesmith.errors import ConfigError

    train, val = chat_data
    with pytest.raises(ConfigError, match="allowed for task causal-lm: lora, full"):
        tunesmith.finetune(llm_config(tiny_llama, train, val, tmp_path, method="head"))


@pytest.mark.parametrize("method", ["lora", "full"])
def test_the_run_chose_by_the_answers_to_the_selection_prompts(runs, method):
    """The loss always falls in training; what keeps the tuned model is its written answers on the selection split."""
    kept = runs[method].manifest["kept"]
    assert kept["model"] == "fine-tuned" and kept["why"].startswith("fine-tuning beat the pre-trained model")
    assert "token_f1" in kept["why"]


def test_the_base_model_is_kept_when_the_tuned_answers_are_no_better(tiny_llama, chat_data, tmp_path, monkeypatch):
    """The tuned model's loss is lower, but its selection answers score below the base model's: the run keeps the
    base model as it is, says so in the verdict, and its folder answers exactly as the base model does."""
    from tunesmith.tasks.causal_lm.task import CausalLM

    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    real, calls = CausalLM._choice, []

    def choice(self, model, prep):
        figures = real(self, model, prep)
        calls.append(figures)
        return {**figures, "token_f1": 0.9 if len(calls) == 1 else 0.1}  # the base's answers first, then the tuned

    monkeypatch.setattr(CausalLM, "_choice", choice)
    train, val = chat_data
    run = tunesmith.finetune(llm_config(tiny_llama, train, val, tmp_path, method="lora", train__epochs=4))
    assert len(calls) == 2 and calls[1]["loss"] < calls[0]["loss"] - 0.4  # tuning did lower the selection loss
    kept = run.manifest["kept"]
    assert kept["model"] == "pre-trained model" and run.manifest["fit"]["selection"]["token_f1"] == 0.9
    assert kept["fine_tuned_selection"]["token_f1"] == 0.1 and kept["frozen_selection"]["token_f1"] == 0.9
    m = run.metrics
    assert m["tuned"]["loss"] == m["base"]["loss"] and m["tuned_minus_base"]["token_f1"]["difference"] == 0
    assert "keeps the base model as it is" in m["verdict"]["text"] and "10.0% against" in m["verdict"]["text"]
    html = (run.path / "report.html").read_text()
    assert "keeps the base model as it is" in html and "<th>kept (base model)</th>" in html
    assert "The run kept the base model" in html and "Perplexity did not fall" not in html
    lines = CausalLM.summary_lines(run.manifest, run.path)
    table = [line for line in lines if line.endswith("%")]  # the model rows: loss, perplexity, token F1, ROUGE-L
    assert [row[:10].strip() for row in table] == ["base", "kept base"]
    assert not (run.path / "adapter").exists() and (run.path / "model" / "model.safetensors").is_file()
    samples = [json.loads(x) for x in (run.path / "validation_generations.jsonl").read_text().splitlines()]
    gen = tunesmith.load(run.path)
    assert gen.generate([s["prompt"] for s in samples], max_new_tokens=16) == [s["base"] for s in samples]
