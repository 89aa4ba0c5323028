"""contrastive: few-shot training the SetFit way, on tunesmith's own fit().

1. The head is fitted on the frozen encoder's cached features: the candidate the tuned model must beat.
2. The sentence encoder trains on pairs of training examples: the cosine similarity of their embeddings is pulled
   to 1 for two examples of one class and to 0 for two of different classes (mean squared error, SetFit's
   CosineSimilarityLoss). Each epoch pairs every example once, alternately with a same-class and a different-class
   partner, so ``train.epochs`` is the number of pairs per example and the steps per epoch are those of full
   fine-tuning (two texts per pair, one forward for both).
3. A fresh head is fitted on the tuned encoder's features of the training data (seconds).
4. The run keeps the better of 3 and 1 on the selection split (``classifier.keep_better``).
5. The kept model's linear head is fitted again on the training and selection rows together
   (``refit_logistic_head``): with 8 examples a class, the selection split holds one of them.

Both heads are logistic regressions fitted as the linear probe is (SetFit's head too) and written into the model's
linear head layer; an MLP head (``classifier.hidden``) trains by gradient steps as in the head method.

Why not the setfit library: it is not installed with tunesmith's dependencies, its default evaluation loads a
metric from the Hub (no network here), and its model is a sentence-transformers wrapper with a scikit-learn head
that tunesmith's predictor, export, ONNX and serve paths would each need to learn. Here the result is the same
encoder + head model every other method saves.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import torch

from tunesmith import config as cfgmod
from tunesmith.config import Config
from tunesmith.errors import ConfigError, InputError
from tunesmith.methods.base import METHODS, Job, Method, ParityCheck, export_transformers
from tunesmith.methods.head import fit_logistic_head, refit_logistic_head, train_head
from tunesmith.methods.training import copy_state, keep_better, train_everything
from tunesmith.train.loop import fit
from tunesmith.train.result import FitResult


def make_pairs(labels: list[int], epochs: int, seed: int) -> list[tuple[int, int, float]]:
    """(i, j, target) for every example i once per epoch: a same-class partner (target 1) in even rounds for even
    i, a different-class one (target 0) otherwise; classes with one example get different-class partners only."""
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    classes = sorted(by_class)
    pairs = []
    for epoch in range(epochs):
        order = list(range(len(labels)))
        rng.shuffle(order)
        for i in order:
            same = [j for j in by_class[labels[i]] if j != i]
            if (i + epoch) % 2 == 0 and same:
                pairs.append((i, rng.choice(same), 1.0))
            else:
                other = rng.choice([c for c in classes if c != labels[i]])
                pairs.append((i, rng.choice(by_class[other]), 0.0))
    return pairs


def cosine_loss(embed: Any) -> Any:
    """Mean squared error between the pair's cosine similarity and its target (the batch holds the first texts
    of its pairs, then the second ones)."""

    def loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        emb = embed(model, batch).float()
        half = emb.shape[0] // 2
        sim = torch.nn.functional.cosine_similarity(emb[:half], emb[half:])
        return torch.nn.functional.mse_loss(sim, batch["target"].float())

    return loss


@METHODS.register("contrastive")
class Contrastive(Method):
    name = "contrastive"
    # An epoch is one pair per example. SetFit draws 20 iterations x 2 pairs per example; about 300 optimizer steps
    # and 5-20 pairs per example cost 2-4 minutes on 2 CPU cores for 100-400 short texts.
    epoch_rule = (300, 5, 20)
    inputs_per_example = 2
    trains_encoder = True

    def describe(self, cfg: Config) -> list[str]:
        return [
            f"{cfg.train.epochs} pairs per example",
            f"lr {cfg.train.learning_rate:g}",
            f"{cfg.head.epochs} head epochs",
            *self._frozen(cfg),
        ]

    def train(self, job: Job) -> FitResult:
        if job.features is None or job.encode is None:
            raise ConfigError("method: contrastive needs a classification task with sentence embeddings (text)")
        labels = [int(it["labels"]) for it in job.train_items]
        if len(set(labels)) < 2:
            raise InputError("method: contrastive needs at least two classes in the training data")
        cfg = job.cfg
        head = job.task.feature_head(job.model)
        fresh = copy_state(head.state_dict())
        job.warm_start = self._head(job, *job.features(), "frozen head")
        frozen_head = copy_state(head.state_dict())

        pairs = make_pairs(labels, cfg.train.epochs, cfg.train.seed)
        items = job.train_items

        def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
            out = job.collate([items[p["a"]] for p in batch] + [items[p["b"]] for p in batch])
            out.pop("labels", None)
            out["target"] = torch.tensor([p["target"] for p in batch])
            return out

        frozen = train_everything(job)
        for p in head.parameters():
            p.requires_grad_(False)  # the head is fitted afterwards, on the tuned features
        pair_cfg = cfgmod.replace(cfg.train, epochs=1, group_by_length=False, early_stopping_patience=0, metric="loss")
        tuned = fit(
            job.model,
            [{"a": a, "b": b, "target": t} for a, b, t in pairs],
            collate=collate,
            loss_fn=cosine_loss(job.task.embed),
            cfg=pair_cfg,
            run_dir=job.run_dir,
            resume=job.resume,
            accelerator=job.accelerator,
            mmap_threshold=job.task.mmap_threshold,
            desc="contrastive pairs",
        )
        job.model.eval()
        train_x, choice_x = job.encode(job.model)
        head.load_state_dict(fresh)
        fitted = self._head(job, train_x, choice_x, "head on the tuned encoder")
        # The run's record is the encoder's training; what it is judged by is the head fitted on its end state.
        tuned.best, tuned.metric, tuned.best_step = fitted.best, fitted.metric, tuned.steps
        tuned.warm_start = job.warm_start.best
        tuned.frozen = frozen
        keep_better(job, tuned, frozen_head)
        if job.kept and job.kept["model"] != "fine-tuned":
            train_x, choice_x = job.features()
        tuned.refit = refit_logistic_head(job, train_x, choice_x)
        return tuned

    @staticmethod
    def _head(job: Job, train_x: Any, choice_x: Any, desc: str) -> FitResult:
        """A logistic-regression head where the head is linear, else the head method's gradient training."""
        fitted = fit_logistic_head(job, train_x, choice_x, desc)
        if fitted is not None:
            return fitted
        on = dataclasses.replace(job, features=lambda: (train_x, choice_x))
        return train_head(on, job.cfg.head.learning_rate, job.cfg.head.epochs, None, desc=desc)

    def export(self, model: Any, folder: Path, cfg: Config, check: ParityCheck | None = None) -> dict[str, Any]:
        return export_transformers(model, folder)  # encoder + head, as the full method saves them
