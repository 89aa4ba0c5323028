"""fit() trains only a resolved config: open keys are the pipeline's to fill, never a silent fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunesmith import config
from tunesmith.train.loop import FitState, fit


def _parts():
    model = torch.nn.Linear(4, 2)
    items = [{"x": np.ones(4, np.float32), "y": i % 2} for i in range(8)]

    def collate(batch):
        return {"x": torch.from_numpy(np.stack([b["x"] for b in batch])), "y": torch.tensor([b["y"] for b in batch])}

    def loss_fn(m, batch):
        return torch.nn.functional.cross_entropy(m(batch["x"]), batch["y"])

    return model, items, collate, loss_fn


@pytest.mark.parametrize(
    ("given", "open_keys"),
    [
        ({"epochs": 1, "batch_size": 4, "gradient_accumulation": 1}, "learning_rate"),
        ({"learning_rate": 0.1, "batch_size": 4, "gradient_accumulation": 1}, "epochs"),
        ({"epochs": 1, "batch_size": 4}, "learning_rate, gradient_accumulation"),
        ({"epochs": 1, "learning_rate": 0.1, "gradient_accumulation": 1}, "batch_size"),
    ],
)
def test_open_keys_are_refused(given, open_keys):
    model, items, collate, loss_fn = _parts()
    with pytest.raises(ValueError, match=f"open: {open_keys}$"):
        fit(model, items, collate=collate, loss_fn=loss_fn, cfg=config.TrainConfig(threads=1, **given))


def test_an_evaluation_needs_the_metric_that_picks_the_best():
    model, items, collate, loss_fn = _parts()
    cfg = config.TrainConfig(epochs=1, batch_size=4, learning_rate=0.1, gradient_accumulation=1, threads=1)
    with pytest.raises(ValueError, match="needs train.metric"):
        fit(model, items, collate=collate, loss_fn=loss_fn, cfg=cfg, evaluate=lambda m: {"loss": 1.0})


def test_the_state_a_checkpoint_saves_round_trips():
    state = FitState(step=7, epoch=1, batch=3, best=0.5, best_step=6, bad_evals=1)
    from dataclasses import asdict

    assert FitState(**asdict(state)) == state
