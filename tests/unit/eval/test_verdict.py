"""The one-sentence verdict at the top of every classification report."""

from __future__ import annotations

from types import SimpleNamespace

from tunesmith.eval.report import verdict

EV = SimpleNamespace(confidence=0.95)
PROBE = "linear probe (frozen pre-trained)"


def test_better_worse_and_within_noise():
    better = verdict(0.93, 0.867, {"difference": 0.063, "ci_low": 0.031, "ci_high": 0.094}, PROBE, None, EV)
    assert better["status"] == "better"
    assert better["text"] == (
        "Better than the general model (a linear probe on the frozen pre-trained model): accuracy 93.0% against "
        "86.7%, +6.3 points (95% CI +3.1 to +9.4)."
    )
    worse = verdict(0.817, 0.967, {"difference": -0.15, "ci_low": -0.19, "ci_high": -0.11}, PROBE, None, EV)
    assert worse["status"] == "worse" and worse["text"].startswith("Worse than the general model")
    tie = verdict(0.68, 0.70, {"difference": -0.02, "ci_low": -0.09, "ci_high": 0.05}, PROBE, None, EV)
    assert tie["status"] == "not measurably better" and "the interval includes zero" in tie["text"]


def test_the_kept_frozen_head_is_said_first():
    kept = {"model": "frozen encoder + head", "why": "fine-tuning did not beat the frozen encoder with a trained head"}
    v = verdict(0.70, 0.70, {"difference": 0.0, "ci_low": -0.03, "ci_high": 0.03}, PROBE, kept, EV)
    assert v["text"].startswith("Kept the frozen encoder with a trained head: fine-tuning did not beat")
