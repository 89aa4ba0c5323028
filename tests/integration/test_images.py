"""image-classification with a tiny random ResNet and a tiny ViT: the method matrix, the report with its gallery,
predict on image files through the CLI and the Python API, a checked LoRA merge, augmentation."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

import tunesmith
from tests.conftest import image_config, make_image
from tunesmith.cli import main


@pytest.fixture(scope="module")
def runs(tiny_resnet, tiny_vit, image_data, tmp_path_factory) -> dict[str, tunesmith.Run]:
    train, val = image_data
    out = tmp_path_factory.mktemp("image-runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("TUNESMITH_CACHE", str(out / "cache"))
    try:
        return {
            "full": tunesmith.finetune(image_config(tiny_resnet, train, val, out, method="full")),
            "head": tunesmith.finetune(image_config(tiny_vit, train, val, out, method="head")),
            "lora": tunesmith.finetune(image_config(tiny_vit, train, val, out, method="lora", lora__merge=True)),
        }
    finally:
        mp.undo()


@pytest.mark.parametrize("method", ["full", "head", "lora"])
def test_each_method_learns_the_classes(runs, method):
    m = runs[method].metrics
    assert m["accuracy"] >= 0.9 and m["baselines"]["majority class"]["accuracy"] < 0.4
    assert m["tuned_minus"]["majority class"]["accuracy"]["ci_low"] > 0


def test_the_kept_best_model_scores_what_its_evaluation_scored(tiny_resnet, image_data, tmp_path, cache_dir):
    """Batch-norm statistics are part of the kept best weights: the final report equals the best evaluation
    even when a later epoch was worse (evaluations every 2 steps, no early stop, a high learning rate)."""
    train, val = image_data
    run = tunesmith.finetune(
        image_config(tiny_resnet, train, val, tmp_path, method="full", train__eval_every=2, train__epochs=4,
                     train__learning_rate=3e-2, train__early_stopping_patience=0)
    )  # fmt: skip
    history = json.loads((run.path / "report.json").read_text())["fit"]["history"]
    best = max(history, key=lambda h: h["macro_f1"])
    assert best["step"] == run.manifest["fit"]["best_step"]
    assert run.metrics["macro_f1"] == pytest.approx(best["macro_f1"], abs=1e-9)


def test_run_directory_report_and_gallery(runs):
    run = runs["full"]
    man = json.loads((run.path / "manifest.json").read_text())
    assert man["task"] == "image-classification" and man["preprocess"]["size"] == 32
    assert "tokens_per_s" not in man["fit"] and man["fit"]["samples_per_s"] > 0
    assert man["label_map"] == {"0": "blue", "1": "green", "2": "red"}
    html = (run.path / "report.html").read_text()
    assert html.count("<h2>Most confident mistakes") == 1, "the gallery replaces the mistakes table"
    if "<figure" in html:  # each mistake says where the image came from
        assert re.search(r"<figcaption>[^<]+\.png \(line \d+\)<br>true", html)
    preds = [json.loads(x) for x in (run.path / "validation_predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 30 and preds[0]["image"].endswith(".png")
    assert (run.path / "model" / "tunesmith_image_model.json").is_file()


def test_head_trains_only_the_head(runs, tiny_vit):
    from safetensors.torch import load_file

    base = load_file(str(tiny_vit / "model.safetensors"))
    tuned = load_file(str(runs["head"].path / "model" / "model.safetensors"))
    body = [k for k in base if not k.startswith("classifier")]
    assert body and all(torch.equal(base[k], tuned[k]) for k in body)


def test_lora_adapter_and_checked_merge(runs):
    export = runs["lora"].manifest["export"]
    assert export["adapter"] == "adapter" and export["merged"] and export["merge_check"]["examples"] == 30
    cfg = json.loads((runs["lora"].path / "adapter" / "adapter_config.json").read_text())
    assert set(cfg["target_modules"]) == {"q_proj", "v_proj"} and "classifier" in cfg["modules_to_save"]


def test_predict_an_image_file_through_cli_and_python(runs, image_data, tmp_path, capsys):
    from PIL import Image

    run = runs["full"].path
    img = tmp_path / "probe.png"
    Image.fromarray(make_image("green", 999, (40, 56))).save(img)
    pred = tunesmith.load(run).predict([str(img)])[0]
    assert pred.label == "green" and set(pred.probabilities) == {"blue", "green", "red"}
    same = tunesmith.load(run).predict([np.asarray(Image.open(img))])[0]
    assert same.probabilities == pytest.approx(pred.probabilities, abs=1e-6)
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(run), "--input", str(img), "--output", str(out)]) == 0
    row = json.loads(out.read_text())
    assert row["label"] == "green" and row["score"] == pytest.approx(pred.score, abs=1e-5)
    _, val = image_data
    assert main(["predict", str(run), "--input", str(val), "--output", str(tmp_path / "all.csv")]) == 0
    assert len((tmp_path / "all.csv").read_text().splitlines()) == 31
    assert main(["eval", str(run), "--data", str(val), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["accuracy"] == runs["full"].metrics["accuracy"]
    assert main(["predict", str(run), "--input", str(tmp_path / "missing.png"), "--output", str(out)]) == 2


def test_augmentation_changes_training_pixels_only():
    from tunesmith.tasks.image_classification.vision import augment

    batch = torch.from_numpy(np.stack([make_image("red", i).transpose(2, 0, 1) for i in range(4)])).float()
    gen = torch.Generator().manual_seed(0)
    out = augment(batch, 0.6, True, 0.1, gen)
    assert out.shape == batch.shape and not torch.equal(out, batch)
    assert float(out.min()) >= 0 and float(out.max()) <= 255
    same = augment(batch, 1.0, False, 0.0, torch.Generator().manual_seed(0))
    # crop_scale 1 keeps the full area but may still change the aspect ratio; without flip and jitter the mean
    # colour stays that of the image.
    assert torch.allclose(same.mean(dim=(2, 3)), batch.mean(dim=(2, 3)), atol=12)
