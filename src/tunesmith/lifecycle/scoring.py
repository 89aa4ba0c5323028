"""Per-example scores of a loaded model on an evaluation set, so two versions can be compared pairwise."""

from __future__ import annotations

import numpy as np

from tunesmith.data.validate import Examples
from tunesmith.inference.base import Predictor
from tunesmith.tasks import get_task


def gate_metric(task: str) -> str:
    """The metric the promotion gate watches (the task's: accuracy for classifiers, answer-token loss for
    generators)."""
    return get_task(task).gate_metric


def example_scores(model: Predictor, task: str, examples: Examples) -> np.ndarray:
    """One number per example whose mean is ``gate_metric(task)`` (the predictor's own scoring)."""
    return model.example_scores(examples)
