"""Stage 1, the general model: self-supervised pre-training on every training row, labelled or not.

Each row is seen twice: as it is, and corrupted (SCARF, Bahri et al. 2022: a share of its features replaced by the
same features of random other rows). The loss is the contrastive InfoNCE between the two views' projections plus
the error of restoring the clean features from the corrupted view (masked-feature reconstruction), so the encoder
learns what rows look like; the decoder's error on a clean row is then an anomaly score that needs no label.
It runs on fit() like fine-tuning, and its weights are cached by data, schema, settings and seed."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tunesmith.config import Config
from tunesmith.data.cache import ArrayCache, cache_key, cache_root
from tunesmith.tasks.tabular_classification.network import TabularModel
from tunesmith.train.loop import fit

TARGET_STEPS = 2000  # pre-training steps the default epochs aim for
EPOCHS = (5, 100)
BATCH = 256
LEARNING_RATE = 1e-3
TEMPERATURE = 1.0  # SCARF's
PROBE_ROWS = 1024  # rows whose fixed corruption measures the pre-training loss at each evaluation


@dataclass
class Pretrained:
    state: dict[str, np.ndarray]
    losses: list[float]  # the pre-training loss on the probe rows at each evaluation (the first: before training)
    epochs: int
    rows: int
    cached: bool
    seconds: float = 0.0


def pretrain_epochs(cfg: Config, rows: int) -> int:
    if cfg.tabular.pretrain_epochs is not None:
        return cfg.tabular.pretrain_epochs
    per_epoch = max(1, math.ceil(rows / min(BATCH, rows)))
    return min(EPOCHS[1], max(EPOCHS[0], math.ceil(TARGET_STEPS / per_epoch)))


def corrupt(
    num: torch.Tensor,
    cat: torch.Tensor,
    pool_num: torch.Tensor,
    pool_cat: torch.Tensor,
    share: float,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace about ``share`` of each row's features with the same feature of a random row of the pool."""
    n = num.shape[0]
    donors = torch.randint(0, pool_num.shape[0], (n,), generator=gen)
    mask_n = torch.rand(num.shape, generator=gen) < share
    mask_c = torch.rand(cat.shape, generator=gen) < share
    return torch.where(mask_n, pool_num[donors], num), torch.where(mask_c, pool_cat[donors], cat)


def pretraining_loss(model: TabularModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    num, cat, cnum, ccat = (
        batch["numeric"],
        batch["categorical"],
        batch["corrupt_numeric"],
        batch["corrupt_categorical"],
    )
    h_clean, h_corrupt = model.encoder(num, cat), model.encoder(cnum, ccat)
    z1 = F.normalize(model.pretraining.projector(h_clean), dim=1)
    z2 = F.normalize(model.pretraining.projector(h_corrupt), dim=1)
    logits = z1 @ z2.T / TEMPERATURE
    target = torch.arange(len(z1), device=z1.device)
    contrastive = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    width = max(model.schema.n_numeric + len(model.schema.cardinalities), 1)
    restore = model.pretraining.errors(h_corrupt, num, cat).mean() / width
    return contrastive + restore


def pretrain(
    model: TabularModel, num: np.ndarray, cat: np.ndarray, cfg: Config, source_fp: str, accelerator: Any = None
) -> Pretrained:
    """Pre-train ``model`` in place on the rows (numeric, categorical), or load the cached result."""
    t = cfg.tabular
    epochs = pretrain_epochs(cfg, len(num))
    h = hashlib.sha256(num.tobytes() + cat.tobytes()).hexdigest()[:24]
    key = cache_key(
        "tabular-pretrain-2", source_fp, h, model.schema.to_dict(), model.arch, t.corruption, epochs, cfg.train.seed
    )
    cache = ArrayCache(cache_root(cfg.cache_dir), "tabular")
    hit = cache.get(key)
    if hit is not None:
        losses = [float(x) for x in hit.pop("__losses__")]
        seconds = float(hit.pop("__seconds__")[0])
        model.load_state_dict({k: torch.from_numpy(v) for k, v in hit.items()})
        return Pretrained(hit, losses, epochs, len(num), True, seconds)
    start = time.perf_counter()
    for p in model.parameters():
        p.requires_grad_(True)
    pool_num, pool_cat = torch.from_numpy(num), torch.from_numpy(cat)
    gen = torch.Generator().manual_seed(cfg.train.seed)
    probe_gen = torch.Generator().manual_seed(cfg.train.seed + 7)
    probe = torch.randperm(len(num), generator=probe_gen)[:PROBE_ROWS]
    pn, pc = pool_num[probe], pool_cat[probe]
    cn, cc = corrupt(pn, pc, pool_num, pool_cat, t.corruption, probe_gen)
    probe_batch = {"numeric": pn, "categorical": pc, "corrupt_numeric": cn, "corrupt_categorical": cc}

    def collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        idx = torch.tensor([it["i"] for it in items])
        bn, bc = pool_num[idx], pool_cat[idx]
        xn, xc = corrupt(bn, bc, pool_num, pool_cat, t.corruption, gen)
        return {"numeric": bn, "categorical": bc, "corrupt_numeric": xn, "corrupt_categorical": xc}

    def evaluate(m: Any) -> dict[str, float]:
        m.eval()
        with torch.no_grad():
            return {"loss": float(pretraining_loss(m, probe_batch))}

    losses = [evaluate(model)["loss"]]
    train_cfg = dataclasses.replace(
        cfg.train,
        epochs=max(epochs, 1),
        batch_size=min(BATCH, len(num)),
        learning_rate=LEARNING_RATE,
        gradient_accumulation=1,
        metric="loss",
        early_stopping_patience=10,
        eval_every=0,
        max_steps=None,
        report_to=[],
        checkpoint_every=0,
        warmup_ratio=0.05,
        scheduler="cosine",
    )
    if epochs > 0:
        with torch.random.fork_rng():  # fine-tuning draws the same dropout masks whether this ran or came cached
            torch.manual_seed(cfg.train.seed)
            res = fit(
                model,
                [{"i": i} for i in range(len(num))],
                collate=collate,
                loss_fn=pretraining_loss,
                cfg=train_cfg,
                evaluate=evaluate,
                accelerator=accelerator,
                desc="pre-train",
            )
        losses += [float(r["loss"]) for r in res.history]
    for p in model.pretraining.parameters():
        p.requires_grad_(False)
    state = {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
    seconds = round(time.perf_counter() - start, 2)
    cache.put(key, {**state, "__losses__": np.array(losses, np.float64), "__seconds__": np.array([seconds])})
    return Pretrained(state, losses, epochs, len(num), False, seconds)
