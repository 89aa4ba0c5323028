"""The run keeps the better of fine-tuning and the frozen encoder with a trained head (chosen on the selection
split), says so, and the kept model is what loads and predicts; a pooled MLP head survives LoRA, export and load."""

from __future__ import annotations

import numpy as np
import pytest

import tunesmith
from tests.conftest import make_rows, tiny_config, write_csv
from tunesmith.data.readers import read_table


@pytest.fixture(scope="module")
def runs(tiny_model, toy_data, tmp_path_factory) -> dict[str, tunesmith.Run]:
    out = tmp_path_factory.mktemp("runs")
    train, val = toy_data
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNESMITH_CACHE", str(out / "cache"))
        wrecked = tiny_config(tiny_model, train, val, out, train__learning_rate=3.0, train__epochs=2)
        pooled = tiny_config(
            tiny_model, train, val, out, method="lora", train__learning_rate=1e-2,
            classifier__pooling="mean", classifier__hidden=[16],
        )  # fmt: skip
        return {"wrecked": tunesmith.finetune(wrecked), "pooled": tunesmith.finetune(pooled)}


def validation_accuracy(run: tunesmith.Run, val_path: str) -> float:
    table = read_table(val_path)
    predictor = tunesmith.load(run.path)
    predicted = [p.label for p in predictor.predict([r["text"] for r in table.rows])]
    return float(np.mean([p == r["label"] for p, r in zip(predicted, table.rows)]))


def test_a_wrecked_fine_tune_falls_back_to_the_frozen_head(runs, toy_data):
    run = runs["wrecked"]
    kept = run.manifest["kept"]
    assert kept["model"] == "frozen encoder + head"
    assert kept["frozen_selection"]["macro_f1"] >= kept["fine_tuned_selection"]["macro_f1"]
    assert run.manifest["export"] == {"format": "transformers", "path": "model"}
    assert run.metrics["verdict"]["text"].startswith("Kept the frozen encoder with a trained head")
    assert run.metrics["accuracy"] >= 0.65  # the frozen head reads the toy words; a wrecked encoder does not
    assert validation_accuracy(run, str(toy_data[1])) == pytest.approx(run.metrics["accuracy"])
    assert "Kept the frozen encoder" in (run.path / "report.html").read_text()


def test_choices_are_made_on_the_selection_split(runs):
    report = (runs["wrecked"].path / "data_report.json").read_text()
    assert "held out for early stopping" in report
    history = runs["wrecked"].manifest["fit"]["warm_start"]["head_only_validation"]
    assert history["step"] > 0


def test_pooled_mlp_head_through_lora_export_and_load(runs, toy_data):
    run = runs["pooled"]
    assert run.manifest["classifier"] == {"pooling": "mean", "hidden": [16], "dropout": 0.1}
    assert run.manifest["export"]["format"] == "peft-adapter" or run.manifest["kept"]["model"] != "fine-tuned"
    assert run.metrics["accuracy"] >= 0.8
    assert validation_accuracy(run, str(toy_data[1])) == pytest.approx(run.metrics["accuracy"])


def test_too_few_training_examples_for_a_selection_split_means_no_choice(tiny_model, toy_data, tmp_path, monkeypatch):
    """With 16 training examples no selection split is carved, and no choice falls back on the validation data:
    the wrecked fine-tune (which the test above replaces with the frozen head) is kept, at its last step."""
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    train = write_csv(tmp_path / "small.csv", make_rows(16, 3))
    cfg = tiny_config(tiny_model, train, toy_data[1], tmp_path / "runs", train__learning_rate=3.0, train__epochs=2)
    run = tunesmith.finetune(cfg)
    kept, fit = run.manifest["kept"], run.manifest["fit"]
    assert kept["model"] == "fine-tuned" and kept["no_choice"] is True
    assert kept["why"].startswith("16 training rows are too few to carve a selection split")
    assert fit["selection"] is None and fit["best_step"] == 0 and fit["steps"] == 2, "no evaluation, no best step"
    assert fit["warm_start"]["head_only_validation"] is None, "the warm start head is not chosen on validation"
    assert "No choice was made: 16 training rows" in run.metrics["verdict"]["text"]
    assert "makes no choices" in (run.path / "data_report.json").read_text()
