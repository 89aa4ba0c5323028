import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tunesmith.data.split import stratified_sample, stratified_split
from tunesmith.train.batching import epoch_batches, shard
from tunesmith.train.checkpoint import complete_checkpoints, latest_checkpoint, load_checkpoint, save_checkpoint
from tunesmith.train.optim import lr_lambda, make_optimizer


def test_batches_are_reproducible_cover_everything_and_differ_by_epoch():
    lengths = list(np.random.default_rng(0).integers(5, 100, 203))
    a = epoch_batches(lengths, 203, 16, seed=1, epoch=0, group_by_length=True)
    assert a == epoch_batches(lengths, 203, 16, seed=1, epoch=0, group_by_length=True)
    assert a != epoch_batches(lengths, 203, 16, seed=1, epoch=1, group_by_length=True)
    assert sorted(i for b in a for i in b) == list(range(203))


def test_length_grouping_cuts_padding():
    lengths = list(np.random.default_rng(0).integers(5, 200, 4000))

    def padded(batches):
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    grouped = padded(epoch_batches(lengths, 4000, 32, 0, 0, True))
    plain = padded(epoch_batches(lengths, 4000, 32, 0, 0, False))
    assert grouped < 0.7 * plain


def test_shards_partition_a_batch():
    batch = list(range(11))
    parts = [shard(batch, r, 3) for r in range(3)]
    assert sum(parts, []) == batch and [len(p) for p in parts] == [4, 4, 3]


def test_stratified_split_keeps_class_shares_and_is_seeded():
    labels = ["a"] * 80 + ["b"] * 20
    keep, held = stratified_split(labels, 0.25, seed=3)
    assert sorted(keep + held) == list(range(100))
    assert [labels[i] for i in held].count("a") == 20 and [labels[i] for i in held].count("b") == 5
    assert (keep, held) == stratified_split(labels, 0.25, seed=3)
    assert held != stratified_split(labels, 0.25, seed=4)[1]
    sample = stratified_sample(labels, 10, seed=0)
    assert len(sample) == 10 and [labels[i] for i in sample].count("b") == 2


def test_schedules():
    f = lr_lambda("linear", warmup=10, total=110)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0) and f(60) == pytest.approx(0.5)
    assert f(110) == pytest.approx(0.0)
    c = lr_lambda("cosine", warmup=0, total=100)
    assert c(0) == pytest.approx(1.0) and c(50) == pytest.approx(0.5) and c(100) == pytest.approx(0.0, abs=1e-12)
    assert lr_lambda("constant", 5, 100)(80) == 1.0


def test_no_weight_decay_on_biases_and_norms():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    opt = make_optimizer(model, 1e-3, 0.1)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(model[0].weight)}


def _save(root: Path, step: int, keep: int = 2) -> Path:
    w = {"w": torch.full((3,), float(step))}
    return save_checkpoint(root, step, w, {"optimizer": {"x": torch.ones(1)}}, {"state": {"step": step}}, keep)


def test_checkpoints_are_complete_verified_and_pruned(tmp_path: Path):
    for step in (1, 2, 3):
        _save(tmp_path, step)
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["ckpt-00000002", "ckpt-00000003"]
    weights, state, meta = load_checkpoint(latest_checkpoint(tmp_path))
    assert weights["w"].tolist() == [3.0, 3.0, 3.0] and meta["state"]["step"] == 3
    assert json.loads((tmp_path / "ckpt-00000003" / "manifest.json").read_text())["step"] == 3


def test_a_damaged_or_unfinished_checkpoint_is_ignored(tmp_path: Path):
    _save(tmp_path, 1)
    last = _save(tmp_path, 2)
    (last / "weights.safetensors").write_bytes(b"corrupt")
    assert latest_checkpoint(tmp_path).name == "ckpt-00000001"
    half = tmp_path / "ckpt-00000005"
    half.mkdir()
    (half / "weights.safetensors").write_bytes(b"x")  # no manifest: a crash before it was written
    assert latest_checkpoint(tmp_path).name == "ckpt-00000001"


def test_kept_best_weights_include_batch_norm_statistics(tmp_path):
    """Best at the first evaluation, worse later: after fit() the model holds the first evaluation's weights
    and its batch-norm running statistics, with or without a run directory."""
    import numpy as np
    import torch

    from tunesmith import config
    from tunesmith.train.loop import fit

    for run_dir in (None, tmp_path):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
        items = [{"x": (torch.randn(4) * 3 + 1).numpy(), "y": i % 2} for i in range(32)]
        scripted = iter([0.9, 0.5, 0.4, 0.3])
        seen: list[dict] = []

        def evaluate(m, seen=seen, scripted=scripted):
            seen.append({k: v.detach().clone() for k, v in m.state_dict().items()})
            return {"accuracy": next(scripted), "loss": 1.0}

        def collate(batch):
            return {
                "x": torch.from_numpy(np.stack([b["x"] for b in batch])),
                "labels": torch.tensor([b["y"] for b in batch]),
            }

        def loss_fn(m, batch):
            return torch.nn.functional.cross_entropy(m(batch["x"]), batch["labels"])

        cfg = config.TrainConfig(epochs=4, batch_size=8, eval_every=4, threads=1, metric="accuracy",
                                 learning_rate=0.1, gradient_accumulation=1,
                                 freeze_batch_norm=False,
                                 early_stopping_patience=0)  # fmt: skip
        fit(model, items, collate=collate, loss_fn=loss_fn, cfg=cfg, evaluate=evaluate, run_dir=run_dir)
        first = seen[0]
        assert not torch.equal(first["1.running_mean"], seen[-1]["1.running_mean"])
        for k, v in model.state_dict().items():
            assert torch.equal(v, first[k]), k


def test_batch_norm_statistics_stay_frozen_by_default():
    import numpy as np
    import torch

    from tunesmith import config
    from tunesmith.train.loop import fit

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    before = model[1].running_mean.clone()
    items = [{"x": (torch.randn(4) * 3 + 1).numpy(), "y": i % 2} for i in range(32)]

    def collate(batch):
        return {
            "x": torch.from_numpy(np.stack([b["x"] for b in batch])),
            "labels": torch.tensor([b["y"] for b in batch]),
        }

    def loss_fn(m, batch):
        return torch.nn.functional.cross_entropy(m(batch["x"]), batch["labels"])

    fit(
        model,
        items,
        collate=collate,
        loss_fn=loss_fn,
        cfg=config.TrainConfig(epochs=2, batch_size=8, threads=1, learning_rate=0.1, gradient_accumulation=1),
    )
    assert torch.equal(model[1].running_mean, before)
    assert not torch.equal(model[1].weight.detach(), torch.ones(4))  # its affine weights still train
