"""Which model a run keeps: fine-tuning must beat the frozen encoder with a trained head on the selection split."""

from __future__ import annotations

from types import SimpleNamespace

from tunesmith import config
from tunesmith.methods.training import choose_kept
from tunesmith.train.result import FitResult


def job(keep_better: bool = True, selection: int = 100) -> SimpleNamespace:
    cfg = config.from_dict({"data": {"train": "t.csv"}, "classifier": {"keep_better": keep_better}})
    return SimpleNamespace(cfg=cfg, kept=None, val_items=[{"labels": 0}] * selection, no_choice=None)


def result(macro_f1: float, loss: float) -> FitResult:
    return FitResult(best={"step": 10, "macro_f1": macro_f1, "accuracy": macro_f1, "loss": loss})


def test_fine_tuned_kept_when_it_beats_the_frozen_head():
    j = job()
    assert choose_kept(j, result(0.90, 0.3), result(0.85, 0.4)) is False
    assert j.kept["model"] == "fine-tuned" and "90.0% fine-tuned against 85.0%" in j.kept["why"]


def test_frozen_head_kept_when_fine_tuning_is_worse():
    j = job()
    assert choose_kept(j, result(0.70, 0.9), result(0.85, 0.4)) is True
    assert j.kept["model"] == "frozen encoder + head"
    assert j.kept["fine_tuned_selection"]["macro_f1"] == 0.70 and j.kept["frozen_selection"]["macro_f1"] == 0.85


def test_a_tie_goes_to_the_lower_selection_loss():
    j = job()
    assert choose_kept(j, result(0.85, 0.5), result(0.85, 0.4)) is True
    assert "tied, so the selection loss decided" in j.kept["why"]
    assert choose_kept(job(), result(0.85, 0.3), result(0.85, 0.4)) is False


def head(accuracy: float, loss: float) -> FitResult:
    """A logistic head's record (it carries its C), as the contrastive method's two candidates have."""
    return FitResult(best={"step": 0, "macro_f1": accuracy, "accuracy": accuracy, "loss": loss, "C": 0.1})


def test_two_heads_one_selection_example_apart_tie_and_the_loss_decides():
    """On 18 selection examples 12 against 13 correct is noise: the tuned encoder's head with the lower loss wins."""
    j = job(selection=18)
    assert choose_kept(j, head(12 / 18, 1.20), head(13 / 18, 1.63)) is False
    assert j.kept["model"] == "fine-tuned"
    assert "differ by at most one of the 18 selection examples" in j.kept["why"]
    assert "1.2000 against 1.6300" in j.kept["why"]
    j = job(selection=18)
    assert choose_kept(j, head(13 / 18, 1.70), head(12 / 18, 1.63)) is True  # ahead by one, but a worse loss
    assert j.kept["model"] == "frozen encoder + head"
    # two examples apart is a difference: the metric decides whatever the loss says
    assert choose_kept(job(selection=18), head(11 / 18, 0.5), head(13 / 18, 1.63)) is True
    # a fine-tuned network against a head: its sharper probabilities cost loss at equal accuracy; the metric decides
    j = job(selection=150)
    assert choose_kept(j, result(136 / 150, 0.363), head(135 / 150, 0.317)) is False
    assert j.kept["model"] == "fine-tuned" and "selection loss decided" not in j.kept["why"]


def test_told_to_keep_the_tuned_model():
    j = job(keep_better=False)
    assert choose_kept(j, result(0.70, 0.9), result(0.85, 0.4)) is True  # worse, and said so
    assert j.kept["model"] == "fine-tuned" and "keep_better is false" in j.kept["why"]


def test_a_judge_decides_against_the_untouched_model_on_its_own_metric():
    """A causal LM's loss is lower after training whatever its answers; the judge's token F1 decides instead."""
    from tunesmith.methods.base import Judge
    from tunesmith.methods.training import keep_untouched

    seen = []
    j = job()
    j.model, j.rebuild, j.untouched = "tuned", lambda: "base", {"loss": 2.0, "token_f1": 0.30}
    j.judge = Judge("token_f1", lambda model: seen.append(model) or {"loss": 1.0, "token_f1": 0.25})
    tuned = FitResult(best={"step": 10, "loss": 1.0})
    keep_untouched(j, tuned)
    assert seen == ["tuned"] and j.model == "base" and tuned.kept["model"] == "pre-trained model"
    assert "token_f1 25.0% fine-tuned against 30.0% pre-trained model" in j.kept["why"]
    j.model, j.judge = "tuned", Judge("token_f1", lambda model: {"loss": 1.0, "token_f1": 0.35})
    keep_untouched(j, tuned)
    assert j.model == "tuned" and tuned.kept["model"] == "fine-tuned"
