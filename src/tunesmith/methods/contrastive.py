"""contrastive: few-shot training the SetFit way, on tunesmith's own fit().

1. The head is fitted on the frozen encoder's cached features: the candidate the tuned model must beat.
2. The sentence encoder trains on groups of training examples (``train.batch_size`` texts, a few of each class
   in turn): the cosine similarity of every pair's embeddings in a group is pulled to 1 for two examples of one
   class and to 0 for two of different classes (mean squared error, SetFit's CosineSimilarityLoss, with the
   same-class and different-class pairs weighing half each as SetFit's balanced pairs do). A group of 16 gives
   120 pairs from 16 forwards, where SetFit's sampled pairs cost two forwards each. An epoch is as many texts as
   there are examples; classes take turns, so a small class's examples come up more often than a large one's.
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
import math
import random
from collections.abc import Iterator
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

PER_CLASS = 2  # examples of a class side by side in a group: its same-class pairs


def make_groups(labels: list[int], steps: int, size: int, per_class: int, seed: int) -> list[list[int]]:
    """``steps`` groups of ``size`` distinct examples (all of them where there are fewer), cut from one stream:
    classes come in turn (a shuffled round of every class, then the next), ``per_class`` examples of each, and a
    class's examples in shuffled rounds too. Every group holds same-class pairs wherever a class has two examples,
    and every class comes up about equally often; an example already in the group waits for the next one."""
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    queues: dict[int, list[int]] = {c: [] for c in by_class}

    def stream() -> Iterator[int]:
        while True:
            turn = sorted(by_class)
            rng.shuffle(turn)
            for c in turn:
                for _ in range(min(per_class, len(by_class[c]))):
                    if not queues[c]:
                        queues[c] = by_class[c][:]
                        rng.shuffle(queues[c])
                    yield queues[c].pop()

    size, source = min(size, len(labels)), stream()
    groups: list[list[int]] = []
    waiting: list[int] = []
    for _ in range(steps):
        group: list[int] = []
        for i in list(waiting):
            if i not in group and len(group) < size:
                group.append(i)
                waiting.remove(i)
        while len(group) < size:
            i = next(source)
            (waiting if i in group else group).append(i)
        groups.append(group)
    return groups


def group_plan(steps: int, batch: int, forwards: int) -> tuple[int, int]:
    """(how many groups, of how many texts): ``steps`` optimizer steps of ``batch`` texts, each step in
    ``forwards`` groups (micro-batches x processes: a group's pairs need the group in one forward, so each forward
    trains a smaller group of its own)."""
    return steps * forwards, max(2, math.ceil(batch / forwards))


def in_batch_loss(embed: Any) -> Any:
    """Every pair of texts in a group: the mean squared error between their embeddings' cosine similarity and 1
    (same class) or 0 (different classes), averaged over the same-class and the different-class pairs apart and
    then together, so that both kinds weigh half, as SetFit's balanced pairs do."""

    def loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        emb = torch.nn.functional.normalize(embed(model, batch).float(), dim=-1)
        y = batch["group_labels"]
        i, j = torch.triu_indices(len(y), len(y), 1, device=emb.device)
        target = (y[i] == y[j]).float()
        err = ((emb[i] * emb[j]).sum(-1) - target) ** 2
        same = target > 0
        parts = [err[m].mean() for m in (same, ~same) if bool(m.any())]
        return torch.stack(parts).mean()

    return loss


@METHODS.register("contrastive")
class Contrastive(Method):
    name = "contrastive"
    # An epoch is as many texts as there are examples, in groups of train.batch_size whose every pair trains. About
    # 60 optimizer steps of 16 texts (120 pairs each) against 255-300 steps of 8 sampled pairs, on the suite's
    # few-shot sets at 8 and 16 a class: intents +4.5 and +2.2 points, python-docs +0.7 and -0.9 (spread over seeds
    # 4-11 points), in a quarter to a half of the time (docs/benchmarks.md).
    epoch_rule = (60, 1, 20)
    batch_sizes = (16,)
    batch_rule = "contrastive trains on groups of 16 texts, all 120 pairs of each"
    trains_encoder = True

    def describe(self, cfg: Config) -> list[str]:
        return [
            f"{cfg.train.epochs} epochs of groups of {cfg.train.batch_size} (every pair in a group)",
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

        accumulation = cfg.train.gradient_accumulation or 1
        chunks = accumulation * (getattr(job.accelerator, "num_processes", 1) or 1)
        batch = cfg.train.batch_size
        per_epoch = math.ceil(len(labels) / batch)  # an epoch is as many texts as there are examples
        count, size = group_plan(cfg.train.epochs * per_epoch, batch, chunks)
        groups = make_groups(labels, count, size, PER_CLASS, cfg.train.seed)
        items = job.train_items

        def collate(forward: list[dict[str, Any]]) -> dict[str, Any]:
            (group,) = (b["group"] for b in forward)  # one group a forward
            out = job.collate([items[i] for i in group])
            out.pop("labels", None)
            out["group_labels"] = torch.tensor([labels[i] for i in group])
            out["examples"] = torch.tensor(len(group))  # the loop counts texts, not groups
            return out

        frozen = train_everything(job)
        for p in head.parameters():
            p.requires_grad_(False)  # the head is fitted afterwards, on the tuned features
        group_cfg = cfgmod.replace(
            cfg.train, epochs=1, batch_size=chunks, gradient_accumulation=accumulation, group_by_length=False,
            early_stopping_patience=0, metric="loss",
        )  # fmt: skip
        tuned = fit(
            job.model,
            [{"group": g} for g in groups],
            collate=collate,
            loss_fn=in_batch_loss(job.task.embed),
            cfg=group_cfg,
            run_dir=job.run_dir,
            resume=job.resume,
            accelerator=job.accelerator,
            mmap_threshold=job.task.mmap_threshold,
            desc="contrastive groups",
        )
        tuned.epochs_run = round(tuned.steps / per_epoch, 3)  # fit saw one long epoch of groups
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
