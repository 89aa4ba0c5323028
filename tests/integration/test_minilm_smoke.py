"""The real packaged MiniLM on a small slice of real Rotten Tomatoes snippets (the one real-model test)."""

from __future__ import annotations

import json

import pytest

import tunesmith
from tunesmith.examples import rotten_tomatoes


@pytest.mark.slow
def test_minilm_learns_sentiment_on_real_snippets(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    train, val = rotten_tomatoes(tmp_path / "rt", 800, 200, seed=1)
    run = tunesmith.finetune(
        {
            "model": "minilm-l6",
            "method": "full",
            "output_dir": str(tmp_path / "runs"),
            "data": {"train": str(train), "validation": str(val)},
            "train": {"epochs": 3, "batch_size": 16, "learning_rate": 5e-5, "max_length": 48},
            "eval": {"bootstrap": 200, "slice_columns": ["length"]},
        }
    )
    m = run.metrics
    majority = m["baselines"]["majority class"]["accuracy"]
    probe = m["baselines"]["linear probe (frozen pre-trained)"]["accuracy"]
    assert probe > majority + 0.05, "the frozen pre-trained features already carry sentiment"
    assert m["accuracy"] > majority + 0.1, m
    assert m["tuned_minus"]["majority class"]["accuracy"]["ci_low"] > 0
    man = json.loads((run.path / "manifest.json").read_text())
    assert man["base_model"]["spec"] == "minilm-l6" and man["label_map"] == {"0": "fresh", "1": "rotten"}
    pred = tunesmith.load(run.path).predict(
        ["A triumph: moving, funny and beautifully acted.", "A tedious, clumsy mess with nothing to say."]
    )
    assert [p.label for p in pred] == ["fresh", "rotten"]
