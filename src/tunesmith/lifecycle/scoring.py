"""What the promotion gate compares: the task's gate metric. Per-example scores come from each version's
predictor (``Predictor.example_scores``), so two versions are compared pairwise on the same examples."""

from __future__ import annotations

from tunesmith.tasks import get_task


def gate_metric(task: str) -> str:
    """Accuracy for classifiers, answer-token loss for generators: the task's own ``gate_metric``."""
    return get_task(task).gate_metric
