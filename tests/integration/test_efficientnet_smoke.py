"""The packaged EfficientNet-Lite0 with its own normalisation classifies a real photo correctly before any
fine-tuning (scikit-learn's sample flower is a daisy), then fine-tunes on a few images."""

from __future__ import annotations

import json

import numpy as np
import torch

import tunesmith
from tests.conftest import image_config, write_image_folder
from tunesmith.eval.report import PROBE
from tunesmith.models.catalog import resolve
from tunesmith.tasks.image_classification.vision import (
    EFFICIENTNET,
    EFFICIENTNET_PREPROCESS,
    Preprocess,
    build_classifier,
    resize_square,
)

DAISY = 985  # ImageNet-1k class index


def _top(model, photo: np.ndarray, pre: Preprocess) -> int:
    x = pre.normalise(torch.from_numpy(resize_square(photo, pre.size)[None]).float())
    with torch.inference_mode():
        return int(model.eval()(x).argmax())


def test_pretrained_efficientnet_sees_a_daisy_only_with_its_own_normalisation():
    from sklearn.datasets import load_sample_image

    model = build_classifier(resolve("efficientnet-lite0").path, EFFICIENTNET, [str(i) for i in range(1000)])
    flower = load_sample_image("flower.jpg")
    assert _top(model, flower, EFFICIENTNET_PREPROCESS) == DAISY
    imagenet = Preprocess(224, (123.7, 116.3, 103.5), (58.4, 57.1, 57.4))  # the usual mean/std: wrong here
    china = load_sample_image("china.jpg")
    wrong = [_top(model, img, imagenet) for img in (flower, china)]
    right = [_top(model, img, EFFICIENTNET_PREPROCESS) for img in (flower, china)]
    assert wrong != right


def test_efficientnet_fine_tunes_on_a_few_images(tmp_path, cache_dir):
    train = write_image_folder(tmp_path / "train", 12, 1)
    val = write_image_folder(tmp_path / "val", 4, 2)
    cfg = image_config("efficientnet-lite0", train, val, tmp_path / "runs", method="head")
    cfg["train"]["threads"] = None
    run = tunesmith.finetune(cfg)
    # 32 px pictures, under a quarter of the model's 224: trained at 160 px, and the saved model says so
    assert run.manifest["preprocess"] == {"size": 160, "mean": [127.0] * 3, "std": [128.0] * 3}
    assert run.manifest["max_length"] == 160
    report = json.loads((run.path / "report.json").read_text())
    assert (
        report["probe"]["features"]
        == "pooled features of the frozen pre-trained network (what enters its head), at its own 224 px input"
    )  # the general model at its own side
    html = (run.path / "report.html").read_text()
    assert "input 160 px" in html and "at its own 224 px input; fitted on" in html
    assert run.metrics["accuracy"] >= 0.9
    predictor = tunesmith.load(run.path)
    assert predictor.preprocess.size == 160
    pred = predictor.predict([str(val / "red" / "0.png")])[0]
    assert pred.label == "red"


def test_a_run_starts_from_a_saved_efficientnet_with_its_head_where_the_classes_match(tmp_path, cache_dir):
    """`tunesmith update` and `learn --warm` give a run's saved model folder as the next run's `model:` (an update
    of an EfficientNet model failed: its folder is not a Hugging Face folder)."""
    from safetensors.torch import load_file

    from tunesmith.labels.learn import warm_start
    from tunesmith.lifecycle.update import update
    from tunesmith.rundir import read_manifest
    from tunesmith.store import ModelStore
    from tunesmith.tasks.classification import label_list
    from tunesmith.tasks.image_classification.vision import backbone_kind

    train = write_image_folder(tmp_path / "train", 12, 1)
    val = write_image_folder(tmp_path / "val", 4, 2)
    first = tunesmith.finetune(image_config("efficientnet-lite0", train, val, tmp_path / "runs", train__epochs=2))
    folder = first.path / "model"
    assert backbone_kind(str(folder)) == EFFICIENTNET
    saved = load_file(str(folder / "model.safetensors"))
    labels = label_list(first.manifest["label_map"])

    same = build_classifier(str(folder), EFFICIENTNET, labels).net.state_dict()
    assert all(torch.equal(same[k], v) for k, v in saved.items()), "the saved weights, head included"
    assert same["_fc.weight"].shape[0] == len(labels)
    swapped = build_classifier(str(folder), EFFICIENTNET, labels[::-1]).net.state_dict()
    assert not torch.equal(swapped["_fc.weight"], saved["_fc.weight"]), "other class order: a new head"
    assert torch.equal(swapped["_conv_stem.weight"], saved["_conv_stem.weight"])
    assert build_classifier(str(folder), EFFICIENTNET, labels).preprocess == EFFICIENTNET_PREPROCESS  # native 224

    overrides, started = warm_start(first.path, set(labels))
    assert started == "the previous round's weights" and overrides[0] == f"model={folder}"
    store = ModelStore(tmp_path / "store")
    store.register(first.path, "colours")
    # 7 new images a class: 21 rows carve a selection split (under 20 the update would make no choices)
    new, new_val = write_image_folder(tmp_path / "new", 7, 3), write_image_folder(tmp_path / "new-val", 4, 4)
    updated = update("colours@v1", new, new_val, replay_ratio=1.0, store=store, overrides=["train.epochs=1"])
    assert updated.version == "colours@v2" and updated.passed
    second = read_manifest(updated.run)
    assert second["base_model"]["spec"] == str(store.run_dir("colours@v1") / "model")
    assert second["max_length"] == 160, "the side is chosen again from the data"
    assert second["metrics"]["baselines"][PROBE]["accuracy"] >= 0.9, "the probe reads the first version's model"
    assert second["metrics"]["accuracy"] >= 0.9
