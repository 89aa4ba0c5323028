"""How the planner scales a probe's metered model work up to the full run."""

from __future__ import annotations

import pytest

from tunesmith.planning.predict import _scale

PROBE = {
    "sizes": {"train": 256, "validation": 75, "generations": 0},
    "full": {"train": 1700, "validation": 500, "tokens": {"train": 45707, "validation": 13918}, "generations": 0},
}


def test_the_selection_split_is_the_real_runs_own_so_only_the_evaluations_scale():
    during = {"kind": "forward", "phase": "train", "split": "selection", "n": 300, "tokens": 8398}
    assert _scale(during, PROBE, evaluations=2.0) == 2.0
    assert _scale({**during, "phase": "evaluate"}, PROBE, evaluations=2.0) == 1.0


def test_validation_work_scales_by_tokens_and_training_forwards_by_the_training_split():
    val = {"kind": "forward", "phase": "evaluate", "split": "validation", "n": 75, "tokens": 2091}
    assert _scale(val, PROBE, evaluations=1.0) == pytest.approx(13918 / 2091)
    train = {"kind": "forward", "phase": "baselines", "split": "train", "n": 256, "tokens": 0}
    assert _scale(train, PROBE, evaluations=1.0) == pytest.approx(1700 / 256)
