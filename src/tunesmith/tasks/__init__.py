"""Tasks: each keeps its data handling, model building, loss, evaluation and report in one file.

finetune() drives every task through the same hooks, in this order:
``read`` -> ``load_tokenizer`` -> ``check_lengths`` (all checks done, nothing written yet) -> ``prepare``
(training items, collate) -> ``build_model`` -> ``before_training`` (baselines measured on the untouched
pre-trained model) -> method.train with ``evaluator`` -> ``finish`` (report against the baselines) ->
method.export with ``parity_check`` -> manifest with ``manifest_extras``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunesmith.registry import Registry

TASKS: Registry[Any] = Registry("task")


@dataclass
class Prepared:
    """A task's training-ready data: items for fit(), their lengths, the collate function, and whatever the
    task needs later for evaluation (``extra``)."""

    train_items: list[dict[str, Any]]
    val_items: list[dict[str, Any]]
    lengths: list[int] | None  # per training item, for length-grouped batches; None: plain shuffled batches
    collate: Any
    pad_id: int
    extra: dict[str, Any] = field(default_factory=dict)


def get_task(name: str) -> Any:
    # Import here so that registering a task never imports torch for `validate`-only paths early.
    from tunesmith.tasks import causal_lm, image_classification, text_classification  # noqa: F401

    return TASKS.get(name)
