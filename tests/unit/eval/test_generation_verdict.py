"""The one-sentence verdict of a generation report: generated answers against the base model's."""

from __future__ import annotations

from tunesmith.eval.report_generation import generation_verdict

MODELS = {"base": {"loss": 2.0, "token_f1": 0.193}, "tuned": {"loss": 1.2, "token_f1": 0.161}}


def test_answers_decide_not_the_loss():
    comps = {"token_f1": {"difference": -0.032, "ci_low": -0.072, "ci_high": 0.011, "n": 32}}
    v = generation_verdict(MODELS, comps, 0.95)
    assert v["status"] == "not measurably better"  # the loss fell, the answers did not improve
    assert v["text"] == (
        "Not measurably better than the base model: token F1 of the generated answers 16.1% against 19.3%, "
        "-3.2 points (95% CI -7.2 to +1.1, 32 prompts); the interval includes zero."
    )
    worse = {"token_f1": {"difference": -0.05, "ci_low": -0.08, "ci_high": -0.01, "n": 32}}
    assert generation_verdict(MODELS, worse, 0.95)["text"].startswith("Worse than the base model")


def test_without_generated_answers_the_loss_is_said_as_such():
    v = generation_verdict(MODELS, {}, 0.95)
    assert v["status"] == "better" and "answer quality is not measured" in v["text"]
