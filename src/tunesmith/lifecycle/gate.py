"""The promotion gate: a new version may not regress on any earlier evaluation set by more than a threshold."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tunesmith.eval.compare import paired_bootstrap_mean

DEFAULT_MAX_REGRESSION = 1.0  # accuracy points (classifiers) or percent of the loss (generators)


@dataclass(frozen=True)
class SetComparison:
    """Old against new on one evaluation set (same examples, paired)."""

    eval_set: str
    metric: str
    n: int
    old: float
    new: float
    difference: float  # new - old, in the metric's units
    ci_low: float
    ci_high: float
    regression: float  # how much worse, in threshold units (points / percent); negative is better
    gated: bool  # earlier sets are gated; the new data's own set is shown only
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def regression_units(metric: str) -> str:
    return "percent of the loss" if metric == "loss" else "accuracy points"


def regression_amount(metric: str, old: float, new: float) -> float:
    """How much worse ``new`` is, in threshold units: percent of the loss (lower is better), else accuracy points."""
    if metric == "loss":
        return (new - old) / old * 100 if old > 0 else 0.0
    return (old - new) * 100


def compare_scores(
    eval_set: str,
    metric: str,
    old: np.ndarray,
    new: np.ndarray,
    max_regression: float,
    gated: bool,
    resamples: int = 1000,
    seed: int = 0,
) -> SetComparison:
    ci = paired_bootstrap_mean(new, old, resamples, 0.95, seed)
    old_mean, new_mean = float(np.mean(old)), float(np.mean(new))
    regression = regression_amount(metric, old_mean, new_mean)
    return SetComparison(
        eval_set=eval_set,
        metric=metric,
        n=len(old),
        old=old_mean,
        new=new_mean,
        difference=ci["difference"],
        ci_low=ci["ci_low"],
        ci_high=ci["ci_high"],
        regression=float(regression),
        gated=gated,
        passed=not gated or regression <= max_regression,
    )


def verdict(results: list[SetComparison], max_regression: float) -> tuple[bool, list[str]]:
    """(passes, reasons): every gated set within the threshold, each failure named with its figures."""
    reasons = [
        f"{r.eval_set}: {r.metric} {r.old:.4f} -> {r.new:.4f}, worse by {r.regression:.2f} "
        f"{regression_units(r.metric)} (allowed {max_regression:g})"
        for r in results
        if r.gated and r.regression > max_regression
    ]
    return not reasons, reasons
