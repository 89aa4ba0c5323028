"""A NaN loss stops the run before the bad step is applied, and names the last good checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunesmith import config
from tunesmith.errors import TrainingDiverged
from tunesmith.train.checkpoint import latest_checkpoint, load_checkpoint
from tunesmith.train.loop import fit


def test_nan_loss_stops_without_applying_the_step(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    items = [{"x": torch.randn(4).numpy(), "y": i % 2} for i in range(32)]
    calls = {"n": 0}

    def collate(batch):
        return {
            "x": torch.from_numpy(np.stack([b["x"] for b in batch])),
            "labels": torch.tensor([b["y"] for b in batch]),
        }

    def loss_fn(m, batch):
        calls["n"] += 1
        loss = torch.nn.functional.cross_entropy(m(batch["x"]), batch["labels"])
        return loss * float("nan") if calls["n"] == 4 else loss

    cfg = config.TrainConfig(
        epochs=2, batch_size=8, checkpoint_every=1, threads=1, learning_rate=0.1, gradient_accumulation=1
    )
    with pytest.raises(TrainingDiverged) as exc:
        fit(model, items, collate=collate, loss_fn=loss_fn, cfg=cfg, run_dir=tmp_path)
    last = latest_checkpoint(tmp_path / "checkpoints")
    assert last.name == "ckpt-00000003"
    msg = str(exc.value)
    assert "nan at step 4" in msg and "no update was applied" in msg and str(last) in msg
    weights, _, _ = load_checkpoint(last)
    for name, p in model.named_parameters():
        assert torch.equal(p.detach(), weights[name]), "the model holds the last good weights"
    assert all(p.grad is None for p in model.parameters())
