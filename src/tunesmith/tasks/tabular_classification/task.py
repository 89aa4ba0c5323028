"""Tabular classification: fraud, defaults, failures and other rare events in a table.

Stage 1 (``build_model``): the general model, a small network pre-trained without labels on every training row
(pretrain.py), which already scores anomalies. Stage 2 (the method, on fit()): fine-tuning with the labels,
``full`` or ``head``, with a loss that weighs the rare class (tabular.loss). The report (report.py) puts the tuned
model beside the anomaly score, IsolationForest, gradient-boosted trees and logistic regression on the same rows,
with fewer labels too."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.config import Config
from tunesmith.data.validate import DataReport
from tunesmith.errors import DataError, Problem
from tunesmith.methods.base import ParityCheck
from tunesmith.models.catalog import ModelSource
from tunesmith.tasks import classification as clf
from tunesmith.tasks.base import TASKS, Task, TaskData
from tunesmith.tasks.classification import ClassificationPrepared
from tunesmith.tasks.tabular_classification.columns import Schema
from tunesmith.tasks.tabular_classification.network import TabularModel, is_tabular_folder, read_config
from tunesmith.tasks.tabular_classification.reading import fit_schema, read_tables
from tunesmith.tasks.tabular_classification.scoring import (
    Arrays,
    anomaly_scores,
    encode_rows,
    probabilities,
    target_index,
)
from tunesmith.train.result import FitResult


@TASKS.register("tabular-classification")
class TabularClassification(Task):
    name = "tabular-classification"
    unit = "rows"
    # Small networks on thousands of rows: batches of 64-256 and about 1,000 optimizer steps, 5-60 epochs
    # (early stopping on the selection split ends most runs sooner).
    batch_sizes = (64, 128, 256)
    epoch_rule = (1000, 5, 60)
    learning_rates = {"full": [(math.inf, 1e-3)]}
    mmap_threshold = 1 << 20
    gate_metric = "loss"  # per row: the log loss of the true class (accuracy says little about rare events)
    gate_lower_is_better = True

    # --- data -------------------------------------------------------------------------------
    def read(self) -> TaskData:
        return read_tables(self.cfg)

    def load_preprocessor(self, source: ModelSource, data: TaskData) -> Schema:
        """The schema: a saved model's own (its columns must be in the data), else fitted on the training rows."""
        if source.path and is_tabular_folder(Path(source.path)):
            schema = Schema.from_dict(read_config(Path(source.path))["schema"])
            missing = [c for c in schema.names if data.train.inputs and c not in data.train.inputs[0]]
            if missing:
                raise DataError(
                    [
                        Problem(
                            "error",
                            "missing_column",
                            f"the model {source.spec} reads columns the data lacks: {', '.join(missing)}",
                            self.cfg.data.train,
                            1,
                            missing[0],
                        )
                    ]
                )
            schema.labels = list(data.labels)
            return schema
        if source.path:
            raise DataError(
                [
                    Problem(
                        "error",
                        "model",
                        f"model: {source.spec} is not a tabular model (a run or "
                        "base_model folder of tabular-classification, or tabular-net)",
                        source.spec,
                    )
                ]
            )
        return fit_schema(self.cfg, _pretraining_rows(data), data.labels)

    def save_preprocessor(self, preprocessor: Schema, folder: Path) -> None:
        """The schema is saved inside the model's config.json."""

    def check_inputs(self, preprocessor: Schema, data: TaskData) -> int:
        report = data.report
        report.stats["features"] = (
            f"{len(preprocessor.columns)} columns -> {preprocessor.n_numeric} numeric inputs "
            f"and {len(preprocessor.categorical)} categorical"
        )
        return len(preprocessor.columns)

    # --- hooks ------------------------------------------------------------------------------
    def prepare(self, preprocessor: Schema, data: TaskData, input_size: int) -> TabularPrepared:
        enc = preprocessor.encode
        tr, va = enc(data.train.inputs), enc(data.val.inputs)
        sel = data.select
        weights = class_weights(self.cfg, data.train.labels, data.labels)
        return TabularPrepared(
            train_items=clf.label_items(data.train.labels, data.labels),
            val_items=clf.label_items(data.val.labels, data.labels),
            select_items=None if sel is None else clf.label_items(sel.labels, data.labels),
            select_inputs=None if sel is None else enc(sel.inputs),
            select_key=sel.content_key() if sel is not None else "",
            lengths=None,
            collate=_collate(tr, weights),
            pad_id=0,
            input_size=input_size,
            data=data,
            train_inputs=tr,
            val_inputs=va,
            keys=(data.train.content_key(), data.val.content_key()),
            predict=lambda model, x, batch_size: probabilities(model, x, batch_size),
            features=_frozen_features,
            schema=preprocessor,
            pretrain_inputs=enc(_pretraining_rows(data)),
            class_weight=weights,
            weighted=self.cfg.tabular.loss == "weighted",
        )

    def build_model(self, source: ModelSource, data: TaskData) -> TabularModel:
        """The general model: pre-trained on every training row, labelled or not (cached), from a saved tabular
        model when ``model:`` names one."""
        from tunesmith.tasks.tabular_classification.pretrain import pretrain

        schema = self.load_preprocessor(source, data)
        t = self.cfg.tabular
        if source.path:
            model = TabularModel.from_pretrained(source.path, data.labels)
        else:
            model = TabularModel(schema, t.width, t.depth, t.embedding_dim)
        num, cat = schema.encode(_pretraining_rows(data))
        model.pretrained = pretrain(model, num, cat, self.cfg, source.fingerprint)
        return model

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        """tabular.loss: weighted cross entropy (the log weights added to the logits, so the model's own logits
        stay the data's probabilities), focal, or plain."""
        import torch.nn.functional as F

        logits = model(batch["numeric"], batch["categorical"]).float()
        y, w = batch["labels"], batch["class_weight"]
        kind = self.cfg.tabular.loss
        if kind == "weighted":
            return F.cross_entropy(logits + w.log(), y, weight=w)
        if kind == "focal":
            logp = F.log_softmax(logits, dim=-1).gather(1, y[:, None]).squeeze(1)
            return (-((1 - logp.exp()) ** self.cfg.tabular.focal_gamma) * logp).mean()
        return F.cross_entropy(logits, y)

    def feature_head(self, model: Any) -> Any:
        return model.head

    def before_training(self, model: Any, prep: TabularPrepared, source: ModelSource, main: bool) -> Baseline:
        """Read before any weight changes: the general model's anomaly scores and its frozen features."""
        import torch

        model.eval()
        with torch.no_grad():
            feats = {k: encode_rows(model, x) for k, x in prep.splits().items()}
            anomaly = anomaly_scores(model, prep.val_inputs)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        return Baseline(feats, anomaly, model.pretrained, state, dict(model.arch))

    def method_features(self, baseline: Baseline) -> Any:
        def features() -> tuple[np.ndarray, np.ndarray]:
            f = baseline.features
            return f["train"], f["select"] if "select" in f else f["val"]

        return features

    def probability_metrics(self, y: np.ndarray, probs: np.ndarray, labels: list[str]) -> dict[str, float]:
        from tunesmith.eval.rare_events import average_precision

        out = super().probability_metrics(y, probs, labels)
        t = target_index(labels, y)
        out["average_precision"] = average_precision((np.asarray(y) == t).astype(np.int64), probs[:, t])
        return out

    def evaluator(self, prep: TabularPrepared) -> Any:
        y, x, labels = prep.choice_y, prep.choice_inputs, prep.labels

        def evaluate(model: Any) -> dict[str, float]:
            return self.probability_metrics(y, probabilities(model, x, self.cfg.eval.batch_size), labels)

        return evaluate

    def parity_check(self, prep: TabularPrepared) -> ParityCheck:
        golden = tuple(a[:256] for a in prep.val_inputs)
        return clf.probability_parity(lambda m: probabilities(m, golden, self.cfg.eval.batch_size))

    def finish(
        self,
        run: Path,
        cfg: Config,
        model: Any,
        prep: TabularPrepared,
        baseline: Baseline,
        report: DataReport,
        fit: FitResult,
    ) -> dict[str, Any]:
        from tunesmith.tasks.tabular_classification.report import build_report

        base = TabularModel(prep.schema, **baseline.arch)
        base.load_state_dict(baseline.state)
        base.save_pretrained(run / "base_model", extra={"role": "general model: pre-trained without labels"})
        fewer = [self._fewer_labels(share, prep, baseline) for share in cfg.eval.fewer_labels]
        full = build_report(run, cfg, model, prep, baseline, report, fit, [f for f in fewer if f is not None])
        model.decision = full["summary"].get("decision")
        return full

    def _fewer_labels(self, share: float, prep: TabularPrepared, baseline: Baseline) -> FewerLabels | None:
        """The tuned model's recipe with only ``share`` of the training labels (stratified, at least 2 of each
        class), from the same pre-trained model, early-stopped on the same selection split."""
        from tunesmith.data.split import stratified_split
        from tunesmith.train.loop import fit
        from tunesmith.train.rules import batch_size_rule, epochs_rule

        labels = [prep.labels[i] for i in prep.train_y]
        _, idx = stratified_split(labels, share, self.cfg.train.seed + 3)
        idx = _at_least_two(idx, labels, self.cfg.train.seed)
        if len(set(labels[i] for i in idx)) < len(prep.labels):
            return None
        model = TabularModel(prep.schema, **baseline.arch)
        model.load_state_dict(baseline.state)
        items = [prep.train_items[i] for i in idx]
        sub = tuple(a[idx] for a in prep.train_inputs)
        batch = batch_size_rule(len(idx), self.batch_sizes)
        epochs = epochs_rule(len(idx), batch, *self.epoch_rule)
        cfg = dataclasses.replace(
            self.cfg.train,
            batch_size=batch,
            epochs=epochs,
            gradient_accumulation=1,
            report_to=[],
            checkpoint_every=0,
            max_steps=None,
        )
        remap = [{"i": j, "labels": it["labels"]} for j, it in enumerate(items)]
        fit(
            model,
            remap,
            collate=_collate(sub, prep.class_weight_for(items)),
            loss_fn=self.loss,
            cfg=cfg,
            evaluate=self.evaluator(prep),
            desc=f"{share:.0%} of labels",
        )
        return FewerLabels(share, np.asarray(idx), probabilities(model, prep.val_inputs, self.cfg.eval.batch_size))

    def manifest_extras(self, prep: TabularPrepared) -> dict[str, Any]:
        d = self.cfg.data
        return {
            "data": {
                "label_column": d.label_column,
                "time_column": d.time_column,
                "unlabelled_rows": len(prep.data.unlabelled) if prep.data.unlabelled is not None else 0,
            },
            "label_map": dict(enumerate(prep.labels)),
            "columns": {c.name: c.kind for c in prep.schema.columns},
        }

    @staticmethod
    def summary_lines(manifest: dict[str, Any], run_dir: Path) -> list[str]:
        from tunesmith.tasks.tabular_classification.report import summary_lines

        return summary_lines(manifest, run_dir)

    @classmethod
    def activation_bytes(cls, input_size: int) -> int:
        """Per row: the inputs and, for each of up to 16 layers of up to 1,024 units, about eight width-long fp32
        tensors (linear, norm and its statistics, GELU, dropout mask): a generous bound for any tabular.width and
        depth, still tiny beside the process itself."""
        return 4 * (64 * input_size + 8 * 1024 * 16)

    @classmethod
    def method_preference(cls, n_train: int, classes: int = 2) -> tuple[list[str], str]:
        return ["full", "head"], "tables: fine-tuning the pre-trained encoder with the labels, else a head on it"


@dataclass(kw_only=True)
class TabularPrepared(ClassificationPrepared):
    schema: Schema
    pretrain_inputs: Arrays
    class_weight: np.ndarray
    weighted: bool

    def splits(self) -> dict[str, Arrays]:
        out = {"train": self.train_inputs, "val": self.val_inputs}
        if self.select_inputs is not None:
            out["select"] = self.select_inputs
        return out

    def class_weight_for(self, items: list[dict[str, Any]]) -> np.ndarray:
        """The loss's class weights for a subset of the training rows (the fewer-labels runs)."""
        counts = np.bincount([it["labels"] for it in items], minlength=len(self.labels))
        return _weights(counts, self.weighted)


@dataclass
class Baseline:
    features: dict[str, np.ndarray]  # frozen pre-trained features per split
    anomaly: np.ndarray  # the general model's anomaly score of each validation row
    pretrained: Any  # pretrain.Pretrained: the loss curve, epochs, rows
    state: dict[str, Any]  # the pre-trained weights (the base model, and the start of the fewer-labels runs)
    arch: dict[str, Any]


@dataclass
class FewerLabels:
    share: float
    rows: np.ndarray  # training row positions kept
    probs: np.ndarray  # the tuned model's validation probabilities


def _frozen_features(model: Any, inputs: Arrays) -> dict[str, np.ndarray]:
    """The encoder's representation, once: both readings the classification pieces ask for are the same vector."""
    feats = encode_rows(model, inputs)
    return {"first": feats, "mean": feats}


def _pretraining_rows(data: TaskData) -> list[dict[str, Any]]:
    rows = data.all_train.inputs
    return rows + data.unlabelled.inputs if data.unlabelled is not None else rows


def _weights(counts: np.ndarray, enabled: bool = True) -> np.ndarray:
    """Square-root inverse class frequency, the mean weight of a row 1."""
    counts = np.maximum(counts.astype(np.float64), 1)
    w = np.sqrt(counts.sum() / (len(counts) * counts)) if enabled else np.ones(len(counts))
    return (w / ((w * counts).sum() / counts.sum())).astype(np.float32)


def class_weights(cfg: Config, train_labels: list[str], labels: list[str]) -> np.ndarray:
    counts = np.array([train_labels.count(lab) for lab in labels])
    return _weights(counts, cfg.tabular.loss == "weighted")


def _at_least_two(idx: list[int], labels: list[str], seed: int) -> list[int]:
    """Add rows until every class has two (a 1% sample of a 3% class may hold none)."""
    rng = np.random.default_rng(seed)
    have = set(idx)
    for lab in sorted(set(labels)):
        pool = [i for i, y in enumerate(labels) if y == lab and i not in have]
        need = 2 - sum(1 for i in idx if labels[i] == lab)
        if need > 0 and pool:
            extra = rng.choice(pool, size=min(need, len(pool)), replace=False)
            have.update(int(i) for i in extra)
    return sorted(have)


def _collate(inputs: Arrays, weights: np.ndarray) -> Any:
    import torch

    num, cat = torch.from_numpy(inputs[0]), torch.from_numpy(inputs[1])
    w = torch.from_numpy(weights)

    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        idx = torch.tensor([it["i"] for it in items])
        return {
            "numeric": num[idx],
            "categorical": cat[idx],
            "labels": torch.tensor([it["labels"] for it in items]),
            "class_weight": w,
        }

    return collate
