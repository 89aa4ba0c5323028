"""Per-example scores of a loaded model on an evaluation set, so two versions can be compared pairwise."""

from __future__ import annotations

from typing import Any

import numpy as np

from tunesmith.data.validate import Examples


def gate_metric(task: str) -> str:
    """The metric the promotion gate watches: accuracy for classifiers, answer-token loss for generators."""
    return "loss" if task == "causal-lm" else "accuracy"


def example_scores(model: Any, task: str, examples: Examples) -> np.ndarray:
    """One number per example whose mean is ``gate_metric(task)``: correct (1/0) for classifiers, mean loss per
    answer token for generators (examples without answer tokens left out)."""
    if task == "causal-lm":
        return _example_losses(model, examples)
    inputs = [r.pixels for r in examples.inputs] if task == "image-classification" else list(examples.inputs)
    probs = model.predict_proba(inputs)
    index = {lab: i for i, lab in enumerate(model.labels)}
    y = np.array([index.get(lab, -1) for lab in examples.labels])
    return (probs.argmax(axis=1) == y).astype(float)


def _example_losses(gen: Any, examples: Examples) -> np.ndarray:
    from tunesmith.tasks.causal_lm import PACK_MIN, _item, make_collate, render, validation_loss

    collate = make_collate(gen.tokenizer.pad_token_id or 0, max(gen.max_length, PACK_MIN), False)
    losses = []
    for record, line in zip(examples.inputs, examples.lines):
        ids, mask = render(gen.tokenizer, record)
        item = _item(ids[: gen.max_length], mask[: gen.max_length], line, record)
        loss, tokens = validation_loss(gen.model, [item], collate, 1)
        if tokens:
            losses.append(loss)
    return np.asarray(losses, dtype=float)
