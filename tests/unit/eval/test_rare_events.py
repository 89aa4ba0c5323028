"""The rare-event metrics agree with scikit-learn's definitions, ties included; the threshold is the cheapest."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from tunesmith.eval.rare_events import (
    average_precision,
    calibration,
    choose_threshold,
    decision,
    paired_difference,
    precision_at_k,
    recall_at_fpr,
    roc_auc,
)


@pytest.mark.parametrize("seed", range(6))
def test_average_precision_and_roc_auc_match_scikit_learn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(400) < 0.06).astype(int)
    s = np.round(rng.random(400) + 0.6 * y, 1)  # rounded: many ties
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_recall_at_a_false_positive_rate_is_the_best_point_of_the_roc_curve_within_it():
    rng = np.random.default_rng(3)
    y = (rng.random(2000) < 0.05).astype(int)
    s = rng.random(2000) + y
    fpr, tpr, _ = roc_curve(y, s)
    assert recall_at_fpr(y, s, 0.01) == pytest.approx(tpr[fpr <= 0.01].max())
    assert recall_at_fpr(y, s, 0.0) <= recall_at_fpr(y, s, 0.01) <= recall_at_fpr(y, s, 0.1)


def test_precision_at_k_counts_the_top_rows():
    y = np.array([1, 0, 1, 0, 0, 1])
    s = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.05])
    assert precision_at_k(y, s, 1) == 1.0 and precision_at_k(y, s, 3) == pytest.approx(2 / 3)
    assert precision_at_k(y, s, 100) == 0.5


def test_the_chosen_threshold_has_the_lowest_cost_and_ties_flag_fewer():
    rng = np.random.default_rng(5)
    for _ in range(20):
        y = (rng.random(300) < 0.08).astype(int)
        p = np.round(rng.random(300) * 0.5 + 0.4 * y, 2)
        missed, alarm = float(rng.integers(1, 200)), 1.0
        t = choose_threshold(y, p, missed, alarm)
        costs = {c: decision(y, p, c, missed, alarm)["cost"] for c in [*np.unique(p), np.inf]}
        best = min(costs.values())
        assert decision(y, p, t, missed, alarm)["cost"] == best
        assert t == max(c for c, v in costs.items() if v == best)
    y = np.array([0, 0, 1])
    assert choose_threshold(y, np.array([0.9, 0.8, 0.1]), 1.0, 5.0) == np.inf  # flagging costs more than missing


def test_calibration_bins_hold_equal_rows_and_the_brier_score_is_the_mean_square():
    y = np.array([0] * 90 + [1] * 10)
    p = np.linspace(0, 0.2, 100)
    cal = calibration(y, p)
    assert [b["n"] for b in cal["bins"]] == [10] * 10
    assert cal["brier"] == pytest.approx(((p - y) ** 2).mean())
    assert cal["bins"][-1]["observed"] == 1.0 and cal["bins"][0]["observed"] == 0.0


def test_a_paired_difference_of_a_model_with_itself_is_zero_and_a_better_model_wins():
    rng = np.random.default_rng(9)
    y = (rng.random(600) < 0.1).astype(int)
    good, noise = y + rng.normal(0, 0.3, 600), rng.random(600)
    same = paired_difference(y, good, good, average_precision, 200, 0.95)
    assert same["difference"] == 0 and same["ci_low"] == 0 == same["ci_high"]
    d = paired_difference(y, good, noise, average_precision, 200, 0.95)
    assert d["significant"] and d["ci_low"] > 0.3
