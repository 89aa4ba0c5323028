"""Every method on the tiny model: it learns, trains only what it should, and writes a complete run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import tunesmith
from tests.conftest import tiny_config
from tunesmith import config

# Adapters take a higher rate than full fine-tuning, as in practice. The LoRA runs keep their adapters even where
# the frozen head scores as well (classifier.keep_better: false): these tests are about the adapter's files.
LR = {"full": {}, "head": {}, "lora": {"train__learning_rate": 1e-2, "classifier__keep_better": False}}
RUN_FILES = {
    "config.yaml",
    "manifest.json",
    "data_report.json",
    "report.json",
    "report.html",
    "validation_predictions.jsonl",
    "logs",
}


@pytest.fixture(scope="module")
def runs(tiny_model, toy_data, tmp_path_factory) -> dict[str, tunesmith.Run]:
    out = tmp_path_factory.mktemp("runs")
    train, val = toy_data
    result = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNESMITH_CACHE", str(out / "cache"))
        for method in ("full", "head", "lora"):
            cfg = tiny_config(tiny_model, train, val, out, method=method, eval__slice_columns=["group"], **LR[method])
            result[method] = tunesmith.finetune(cfg)
        result["lora-merged"] = tunesmith.finetune(
            tiny_config(tiny_model, train, val, out, method="lora", lora__merge=True, **LR["lora"])
        )
        result["full-embeddings"] = tunesmith.finetune(
            tiny_config(tiny_model, train, val, out, method="full", train__freeze_embeddings=False)
        )
        result["full-cold"] = tunesmith.finetune(
            tiny_config(tiny_model, train, val, out, method="full", full__warm_start_head=False)
        )
    return result


@pytest.mark.parametrize("method", ["full", "head", "lora"])
def test_each_method_beats_the_majority_class(runs, method):
    m = runs[method].metrics
    assert m["baselines"]["majority class"]["accuracy"] == 0.5
    floor = {"full": 0.9, "head": 0.65, "lora": 0.8}[method]
    assert m["accuracy"] >= floor
    assert m["tuned_minus"]["majority class"]["accuracy"]["ci_low"] > 0


@pytest.mark.parametrize("method", ["full", "head", "lora"])
def test_run_directory_describes_itself(runs, method):
    run = runs[method]
    assert {p.name for p in run.path.iterdir()} >= RUN_FILES
    man = json.loads((run.path / "manifest.json").read_text())
    assert man["status"] == "complete" and man["method"] == method
    assert man["label_map"] == {"0": "pos", "1": "neg"}  # as the classes first appear in train.csv
    assert {"torch", "transformers", "tunesmith"} <= set(man["versions"])
    assert man["data"]["fingerprint"] and man["base_model"]["fingerprint"]
    assert man["metrics"]["accuracy"] == pytest.approx(
        json.loads((run.path / "report.json").read_text())["summary"]["accuracy"]
    )
    assert not (run.path / "checkpoints").exists(), "checkpoints are replaced by the exported model"
    log = [json.loads(x) for x in (run.path / "logs" / "train.jsonl").read_text().splitlines()]
    assert any(r["kind"] == "step" for r in log) and any(r["kind"] == "eval" for r in log)
    assert list((run.path / "logs" / "tensorboard").glob("events.out.tfevents.*")), "TensorBoard is installed here"
    html = (run.path / "report.html").read_text()
    assert html.count("<svg") >= 4 and "linear probe" in html and "<script" not in html
    import re
    import xml.etree.ElementTree as ET

    for chart in re.findall(r"<svg.*?</svg>", html, re.S):
        ET.fromstring(chart)  # every chart is well-formed SVG, so browsers draw it


def test_full_exports_a_plain_transformers_model_that_matches_the_predictor(runs):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    run = runs["full"]
    folder = run.path / "model"
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    texts = ["great film and superb cast", "dull boring plot"]
    with torch.no_grad():
        plain = torch.softmax(model(**tok(texts, return_tensors="pt", padding=True)).logits, -1).numpy()
    pred = tunesmith.load(run.path)
    ours = pred.predict_proba(texts)
    np.testing.assert_allclose(ours, plain, atol=1e-5)
    out = pred.predict(texts)
    assert [p.label for p in out] == ["pos", "neg"]
    assert all(abs(sum(p.probabilities.values()) - 1) < 1e-5 for p in out)
    assert model.config.id2label == {0: "pos", 1: "neg"}


def test_head_trains_only_the_head(runs, tiny_model):
    base = load_file(str(tiny_model / "model.safetensors"))
    tuned = load_file(str(runs["head"].path / "model" / "model.safetensors"))
    for name, value in base.items():
        key = name if name in tuned else f"bert.{name}"
        if "pooler" in name:
            assert not torch.equal(tuned[key], value), f"{name} is part of the head and should train"
        else:
            assert torch.equal(tuned[key], value), f"{name} belongs to the frozen encoder"


@pytest.mark.parametrize(("run", "frozen"), [("full", True), ("full-embeddings", False)])
def test_full_keeps_the_token_embeddings_as_pre_trained_unless_told(runs, tiny_model, run, frozen):
    base = load_file(str(tiny_model / "model.safetensors"))
    done = runs[run]
    assert done.manifest["kept"]["model"] == "fine-tuned"
    assert config.load(done.path / "config.yaml").train.freeze_embeddings is frozen  # resolved and written
    tuned = load_file(str(done.path / "model" / "model.safetensors"))

    def same(name: str) -> bool:
        return torch.equal(tuned[name if name in tuned else f"bert.{name}"], base[name])

    assert same("embeddings.word_embeddings.weight") is frozen
    words = base["embeddings.word_embeddings.weight"].numel()
    assert done.manifest["fit"]["frozen"] == ([f"token embeddings ({words:,} weights)"] if frozen else [])
    shown = "full, token embeddings (" in (done.path / "report.html").read_text()
    assert shown is frozen, "the report's run panel says what stayed as pre-trained"
    assert not same("embeddings.position_embeddings.weight"), "only the token-embedding matrix is kept"
    assert not same("encoder.layer.0.attention.self.query.weight")


def test_lora_saves_an_adapter_and_merges_on_request(runs):
    plain = runs["lora"].path
    assert (plain / "adapter" / "adapter_config.json").is_file() and not (plain / "model").exists()
    merged = runs["lora-merged"].path
    assert (merged / "adapter" / "adapter_model.safetensors").is_file()
    assert (merged / "model" / "model.safetensors").is_file()
    check = json.loads((merged / "manifest.json").read_text())["export"]["merge_check"]
    assert check["examples"] == 80 and check["max_probability_difference"] <= 1e-4
    texts = ["great moving story", "awful stale script", "the cast was charming"]
    # The merged weights predict what base + adapter predicts.
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    man = json.loads((merged / "manifest.json").read_text())
    base = AutoModelForSequenceClassification.from_pretrained(man["base_model"]["path"], num_labels=2)
    with_adapter = PeftModel.from_pretrained(base, merged / "adapter").eval()
    pred = tunesmith.load(merged)
    enc = pred.tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        ref = torch.softmax(with_adapter(**enc).logits, -1).numpy()
    np.testing.assert_allclose(pred.predict_proba(texts), ref, atol=1e-5)
    assert tunesmith.load(plain).predict(texts)[0].label in {"pos", "neg"}


def test_slices_are_reported(runs):
    report = json.loads((runs["full"].path / "report.json").read_text())
    group = report["slices"]["group"]
    assert set(group["values"]) == {"a", "b"}
    n = sum(v["n"] for v in group["values"].values())
    assert n == report["summary"]["n"]
    assert 0 <= group["accuracy_gap"] <= 1


def test_resolved_config_is_written(runs):
    cfg = config.load(runs["full"].path / "config.yaml")
    assert cfg.train.max_length == 32 and cfg.train.learning_rate == pytest.approx(3e-3)
    assert config.load(runs["lora"].path / "config.yaml").train.learning_rate == pytest.approx(1e-2)
    assert cfg.eval.slice_columns == ["group"]


def test_second_run_reuses_the_token_cache(tiny_model, toy_data, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    train, val = toy_data
    cfg = tiny_config(tiny_model, train, val, tmp_path / "runs", train__epochs=1)
    tunesmith.finetune(cfg)
    tokens = sorted((tmp_path / "cache" / "tokens").iterdir())
    stamps = [p.stat().st_mtime_ns for p in tokens]
    assert len(tokens) == 3  # train, selection and validation
    from tunesmith.tasks.text_classification.task import TextClassification

    calls = []
    original = TextClassification.encode

    def spy(self, tokenizer, texts, max_length, data_key):
        out = original(self, tokenizer, texts, max_length, data_key)
        calls.append(getattr(self, "cache_hits", 0))
        return out

    monkeypatch.setattr(TextClassification, "encode", spy)
    tunesmith.finetune(cfg)
    assert calls == [1, 2, 3], "every split came from the cache"
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "cache" / "tokens").iterdir())] == stamps
    tunesmith.finetune({**cfg, "train": {**cfg["train"], "max_length": 16}})
    assert len(list((tmp_path / "cache" / "tokens").iterdir())) == 6, "a new max_length is a new entry"


def test_warm_start_fits_the_head_on_frozen_features_first(runs):
    warm = runs["full"].manifest["fit"]["warm_start"]
    assert warm["head_steps"] > 0 and warm["head_only_validation"]["accuracy"] > 0.5, "on by default"
    assert runs["full"].metrics["accuracy"] >= 0.9
    # Off, the head is still fitted (the candidate the fine-tuned model must beat), but fine-tuning starts fresh:
    cold = runs["full-cold"]
    assert cold.manifest["fit"]["warm_start"]["head_steps"] > 0
    assert cold.manifest["kept"]["model"] in {"fine-tuned", "frozen encoder + head"}

    def best_selection_loss(run: tunesmith.Run) -> float:
        log = map(json.loads, (run.path / "logs" / "train.jsonl").read_text().splitlines())
        return min(r["loss"] for r in log if r["kind"] == "eval")

    # Same steps, same data: starting from the fitted head ends at a lower selection loss than a fresh head.
    assert best_selection_loss(runs["full"]) < best_selection_loss(cold)


def json_lines(run) -> list[dict]:
    log = (run / "logs" / "train.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, log) if r.get("kind") == "step" and r.get("phase", "train") == "train"]


def test_a_different_seed_split_is_not_served_from_the_cache(tiny_model, toy_data, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    train, _ = toy_data
    held_out = []
    for seed in (1, 2):  # no validation file: each seed holds out different rows of the same size
        run = tunesmith.finetune(
            tiny_config(tiny_model, train, None, tmp_path / "runs", train__seed=seed, train__epochs=1)
        )
        preds = [json.loads(x) for x in (run.path / "validation_predictions.jsonl").read_text().splitlines()]
        held_out.append({p["text"] for p in preds})
        tokens = len(list((tmp_path / "cache" / "tokens").iterdir()))
        features = len(list((tmp_path / "cache" / "features").iterdir()))
        assert (tokens, features) == (3 * seed, 3 * seed), "new content, new cache entries"
    assert held_out[0] != held_out[1] and len(held_out[0]) == len(held_out[1])


def test_export_merges_a_finished_lora_run_on_request(tiny_model, toy_data, tmp_path, monkeypatch):
    from tunesmith.cli import main

    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    train, val = toy_data
    run = tunesmith.finetune(tiny_config(tiny_model, train, val, tmp_path / "runs", method="lora", **LR["lora"]))
    assert run.manifest["kept"]["model"] == "fine-tuned"
    texts = ["great moving story 3", "awful stale script 8"]
    with_adapter = tunesmith.load(run.path).predict_proba(texts)
    assert not (run.path / "model").exists()
    assert main(["export", str(run.path), "--merge"]) == 0
    man = json.loads((run.path / "manifest.json").read_text())
    assert man["export"]["merged"] and man["export"]["merge_check"]["max_probability_difference"] <= 1e-4
    from transformers import AutoModelForSequenceClassification

    plain = AutoModelForSequenceClassification.from_pretrained(run.path / "model")  # no peft needed
    assert plain.config.id2label == {0: "pos", 1: "neg"}
    np.testing.assert_allclose(tunesmith.load(run.path).predict_proba(texts), with_adapter, atol=1e-5)
    assert main(["export", str(runs_full_dir(tmp_path, tiny_model, toy_data)), "--merge"]) == 2


def runs_full_dir(tmp_path, tiny_model, toy_data):
    train, val = toy_data
    return tunesmith.finetune(tiny_config(tiny_model, train, val, tmp_path / "full", train__epochs=1)).path
