"""Text classification: sentiment, intent, topic, ticket routing."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.config import Config, Default
from tunesmith.data.cache import ArrayCache, cache_key, cache_root, pack_ragged, unpack_ragged
from tunesmith.data.readers import Table, read_table
from tunesmith.data.validate import (
    DataReport,
    Examples,
    length_stats,
    read_label,
    require_columns,
    settle_max_length,
)
from tunesmith.errors import DataError, InputError
from tunesmith.methods.lora import head_module_names
from tunesmith.models.catalog import ModelSource
from tunesmith.models.pooled import (
    PooledClassifier,
    declared_pooling,
    is_pooled,
    needs_pooled,
    resolve_pooling,
)
from tunesmith.tasks import classification as clf
from tunesmith.tasks.base import TASKS, Task, TaskData
from tunesmith.tasks.classification import ClassificationPrepared
from tunesmith.tasks.text_classification.encoding import (
    DEFAULT_LENGTH_CAP,
    body_of,
    frozen_features,
    make_collate,
    predict_proba,
)
from tunesmith.tasks.text_classification.pool import TextPool
from tunesmith.train.result import FitResult


def _examples_from_table(table: Table, cfg: Config, report: DataReport) -> Examples | None:
    d = cfg.data
    cols = [("data.text_column", d.text_column), ("data.label_column", d.label_column)]
    cols += [("eval.slice_columns", c) for c in cfg.eval.slice_columns]
    if d.group_column:
        cols.append(("data.group_column", d.group_column))
    if not require_columns(table, cols, report):
        return None
    texts, labels, lines, groups = [], [], [], []
    extras: dict[str, list[str]] = {c: [] for c in cfg.eval.slice_columns}
    for row, line in zip(table.rows, table.lines):
        text = row.get(d.text_column)
        label = read_label(row.get(d.label_column), report, table.path, line, d.label_column)
        bad = label is None
        if not isinstance(text, str):
            kind = "missing" if text is None else f"not text ({type(text).__name__})"
            report.add("error", "non_text", f"value is {kind}; expected a string", table.path, line, d.text_column)
            bad = True
        elif not text.strip():
            report.add("error", "empty_text", "text is empty", table.path, line, d.text_column)
            bad = True
        if bad:
            continue
        texts.append(text)
        labels.append(label)
        lines.append(line)
        for c in extras:
            extras[c].append(str(row.get(c)))
        if d.group_column:
            groups.append(str(row.get(d.group_column)))
    return Examples(table.path, texts, labels, lines, extras, keys=list(texts), groups=groups)


@TASKS.register("text-classification")
class TextClassification(Task):
    """Inputs are strings, targets one label per text."""

    name = "text-classification"
    peft_task_type = "SEQ_CLS"
    unit = "rows"
    pool = TextPool()
    learning_rates = {
        "full": [(60e6, 5e-5), (200e6, 3e-5), (1e9, 2e-5), (math.inf, 1e-5)],
        "lora": [(1e9, 5e-4), (math.inf, 2e-4)],
        "contrastive": [(math.inf, 2e-5)],  # SetFit's encoder rate for sentence-transformers of every size
    }
    lr_reference_batch = {"full": 8}  # the Trainer's default batch, at which 5e-5 is the usual BERT-size rate

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.cache_hits = 0  # token-cache entries reused (observable in tests)

    # --- data -------------------------------------------------------------------------------
    def read(self) -> TaskData:
        """Read and check the data; raise DataError with every fatal problem, before anything is written."""
        report = DataReport()
        return clf.read_labelled(self.cfg, report, lambda p: self._read_split(p, report), self.unit)

    def _read_split(self, path: str, report: DataReport) -> tuple[Examples | None, str]:
        try:
            table = read_table(path)
        except DataError as exc:
            report.problems.extend(exc.problems)
            return None, ""
        return _examples_from_table(table, self.cfg, report), table.fingerprint

    def load_preprocessor(self, source: ModelSource, data: TaskData) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(source.path, trust_remote_code=self.cfg.trust_remote_code)

    def check_inputs(self, preprocessor: Any, data: TaskData) -> int:
        """Token-length statistics per split; picks max_length from the data when the config leaves it open."""
        tokenizer, report = preprocessor, data.report
        limit = min(int(getattr(tokenizer, "model_max_length", 512) or 512), 512)
        train_len = token_lengths(tokenizer, data.all_train.inputs)
        max_length = settle_max_length(self.cfg.train.max_length, train_len, limit, report, DEFAULT_LENGTH_CAP)
        report.stats["tokens"] = {
            "train": length_stats(train_len, max_length, report, data.train.source),
            "validation": length_stats(token_lengths(tokenizer, data.val.inputs), max_length, report, data.val.source),
        }
        return max_length

    def training_lengths(self, preprocessor: Any, data: TaskData, input_size: int) -> dict[str, list[int]]:
        return {
            name: [min(n, input_size) for n in token_lengths(preprocessor, ex.inputs)]
            for name, ex in (("train", data.train), ("validation", data.val))
        }

    def encode(self, tokenizer: Any, texts: list[str], max_length: int, data_key: str) -> list[np.ndarray]:
        """Token ids per text; cached by (split content, tokenizer, max_length)."""
        tok_id = getattr(tokenizer, "name_or_path", "") + str(len(tokenizer)) + type(tokenizer).__name__
        key = cache_key("tokens", data_key, tok_id, _tokenizer_digest(tokenizer), max_length, len(texts))
        cache = ArrayCache(cache_root(self.cfg.cache_dir), "tokens")
        hit = cache.get(key)
        if hit is not None:
            self.cache_hits += 1
            return unpack_ragged(hit)
        enc = tokenizer(texts, truncation=True, max_length=max_length, return_attention_mask=False)
        cache.put(key, pack_ragged(enc["input_ids"]))
        return [np.asarray(ids, dtype=np.int32) for ids in enc["input_ids"]]

    # --- model ------------------------------------------------------------------------------
    def open_defaults(self, cfg: Config, source: ModelSource, data: TaskData) -> list[Default]:
        """``classifier.pooling: auto`` becomes the model's own sentence pooling, or cls."""
        if cfg.classifier.pooling != "auto":
            return []
        declared = declared_pooling(source.path) if source.local else None
        why = (
            f"the model declares {declared} pooling (sentence-transformers' Pooling module)"
            if declared
            else "the model declares no sentence pooling: transformers' own head on the first token"
        )
        return [Default("classifier.pooling", declared or "cls", why)]

    def build_model(self, source: ModelSource, data: TaskData) -> Any:
        c = self.cfg.classifier
        pooling = resolve_pooling(c.pooling, source.path)
        load = {
            "trust_remote_code": self.cfg.trust_remote_code,
            "use_safetensors": None if self.cfg.trust_remote_code else _safetensors_pref(source),
        }
        return build_classifier(source.path, data.labels, pooling, c.hidden, c.dropout, **load)

    def lora_modules_to_save(self, model: Any) -> list[str]:
        if isinstance(model, PooledClassifier):
            return ["classifier"]  # the encoder's own pooler is not read
        return head_module_names(model)

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        import torch.nn.functional as F

        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return F.cross_entropy(logits.float(), batch["labels"])

    def feature_head(self, model: Any) -> Any:
        return FeatureHead(model)

    def embed(self, model: Any, batch: dict[str, Any]) -> Any:
        """The sentence embedding the head reads: the model's pooling, or the first token for transformers' head."""
        if isinstance(model, PooledClassifier):
            return model.features(batch["input_ids"], batch["attention_mask"])
        hidden = body_of(model)(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        return hidden[:, 0]

    # --- the finetune() hooks -----------------------------------------------------------------------
    def prepare(self, preprocessor: Any, data: TaskData, input_size: int) -> ClassificationPrepared:
        """Token ids (cached by split content, tokenizer and max_length) and training items."""
        tokenizer = preprocessor
        keys = (data.train.content_key(), data.val.content_key())
        train_ids = self.encode(tokenizer, data.train.inputs, input_size, keys[0])
        val_ids = self.encode(tokenizer, data.val.inputs, input_size, keys[1])
        sel = data.select
        select_key = sel.content_key() if sel is not None else ""
        select_ids = None if sel is None else self.encode(tokenizer, sel.inputs, input_size, select_key)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        return ClassificationPrepared(
            train_items=clf.label_items(data.train.labels, data.labels, train_ids),
            val_items=clf.label_items(data.val.labels, data.labels, val_ids),
            select_items=None if sel is None else clf.label_items(sel.labels, data.labels, select_ids),
            select_inputs=select_ids,
            select_key=select_key,
            lengths=[len(x) for x in train_ids],
            collate=make_collate(pad_id),
            pad_id=pad_id,
            input_size=input_size,
            data=data,
            train_inputs=train_ids,
            val_inputs=val_ids,
            keys=keys,
            predict=lambda model, ids, batch_size: predict_proba(model, ids, pad_id, batch_size),
            features=lambda model, ids: frozen_features(model, ids, pad_id),
        )

    before_training = clf.before_training
    method_features = clf.method_features
    method_encoder = clf.method_encoder
    evaluator = clf.evaluator
    parity_check = clf.parity_check

    def finish(
        self, run: Path, cfg: Config, model: Any, prep: Any, baseline: Any, report: DataReport, fit: FitResult
    ) -> dict[str, Any]:
        probs = clf.validation_probabilities(model, prep, cfg.eval.batch_size)
        val = prep.data.val
        samples = [(x, ln) for x, ln in zip(val.inputs, val.lines)]
        return clf.write_report(run, cfg, prep, probs, baseline, report, fit, samples)

    def manifest_extras(self, prep: Any) -> dict[str, Any]:
        c = self.cfg.classifier
        return {
            "data": {"text_column": self.cfg.data.text_column, "label_column": self.cfg.data.label_column},
            "label_map": dict(enumerate(prep.labels)),
            "classifier": {"pooling": c.pooling, "hidden": list(c.hidden), "dropout": c.dropout},
        }

    summary_lines = staticmethod(clf.summary_lines)

    @classmethod
    def default_method(cls, n_train: int, classes: int = 2) -> tuple[str, str]:
        if n_train < clf.SMALL_DATA:
            return "contrastive", (
                f"{n_train} training examples (under {clf.SMALL_DATA}): contrastive groups train the sentence encoder "
                "where full fine-tuning overfits (intents at 8 and 16 a class: 79.5% and 84.6% against 71.0% and "
                "79.3% for full, 3 seeds; docs/defaults.md)"
            )
        if n_train < CONTRASTIVE_MANY_CLASSES and classes >= 3:
            return "contrastive", (
                f"{n_train} training examples in {classes} classes (under {CONTRASTIVE_MANY_CLASSES}, 3 or more "
                "classes): contrastive groups were ahead of full fine-tuning on such sets (intents, 371 in 18 "
                "classes: 90.3% against 87.0%; python-docs, 288 in 6: 58.3% against 50.0%; docs/defaults.md)"
            )
        if n_train < CONTRASTIVE_MANY_CLASSES:
            return "full", (
                f"{n_train} training examples in {classes} classes: full fine-tuning (two classes: Rotten Tomatoes, "
                "400: 74.2% against 71.5% for contrastive)"
            )
        return "full", f"{n_train:,} training examples: enough to fine-tune every weight"

    @classmethod
    def method_preference(cls, n_train: int, classes: int = 2) -> tuple[list[str], str]:
        order, why = clf.method_preference(n_train)
        method, reason = cls.default_method(n_train, classes)
        if method == "contrastive":
            return ["contrastive", *order], reason
        return [*order, "contrastive"], why


# With 3 or more classes, the contrastive method is the default under this many training examples (after the
# selection split); with 2 it is under classification.SMALL_DATA. Measured on the suite (docs/defaults.md).
CONTRASTIVE_MANY_CLASSES = 500


def build_classifier(path: str, labels: list[str], pooling: str, hidden: list[int], dropout: float, **load: Any) -> Any:
    """transformers' own sequence classifier for cls pooling with a linear head, else a PooledClassifier. A saved
    PooledClassifier (an earlier version, when updating) keeps its trained head where the labels and the head's
    shape are the same."""
    if needs_pooled(pooling, hidden):
        if is_pooled(path):
            saved = PooledClassifier.from_pretrained(path, trust_remote_code=load.get("trust_remote_code", False))
            same = saved.spec["labels"] == list(labels) and saved.spec["hidden"] == list(hidden)
            if same and saved.spec["pooling"] == pooling:
                return saved.train()
        return PooledClassifier.from_encoder(path, pooling, hidden, dropout, labels, **load)
    from transformers import AutoModelForSequenceClassification

    id2label = dict(enumerate(labels))
    return AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(labels), id2label=id2label, label2id={v: k for k, v in id2label.items()}, **load
    )


def token_lengths(tokenizer: Any, texts: list[str]) -> list[int]:
    enc = tokenizer(texts, add_special_tokens=True, truncation=False, return_attention_mask=False)
    return [len(ids) for ids in enc["input_ids"]]


def _tokenizer_digest(tokenizer: Any) -> str:
    import hashlib

    vocab = tokenizer.get_vocab()
    h = hashlib.sha256(str(sorted(vocab.items())[:2000]).encode())
    h.update(str(len(vocab)).encode())
    h.update(str(getattr(tokenizer, "do_lower_case", "")).encode())
    return h.hexdigest()[:16]


def _safetensors_pref(source: ModelSource) -> bool | None:
    """Local folders must ship safetensors; for hub ids, transformers prefers them by itself."""
    if source.local:
        folder = Path(source.path)
        if not any(folder.glob("*.safetensors")):
            raise InputError(
                f"model: {source.path} has no .safetensors weights; pickled weights are refused "
                "(convert them with safetensors first, or set trust_remote_code for code you trust)"
            )
        return True
    return None


# --- the feature head (used by the head method and the probe) ---------------------------------------------
class FeatureHead:
    """Runs the model's own head on cached features: a PooledClassifier's head reads its pooled features as
    they are; transformers' head (pooler if any, dropout, classifier) reads the first token."""

    def __new__(cls, model: Any) -> Any:
        import torch

        if isinstance(model, PooledClassifier):
            return model.classifier
        body = body_of(model)
        pooler = getattr(body, "pooler", None)
        classifier = getattr(model, "classifier", None)
        if classifier is None:
            from tunesmith.errors import ConfigError

            raise ConfigError(
                f"method: head needs a model whose head is named 'classifier'; {type(model).__name__} is not "
                "supported, use method: lora or full"
            )
        dropout = getattr(model, "dropout", None) or torch.nn.Identity()

        class _Head(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.pooler, self.dropout, self.classifier = pooler, dropout, classifier

            def forward(self, features: torch.Tensor) -> torch.Tensor:
                x = features.unsqueeze(1)  # (batch, 1, hidden): heads read position 0
                if self.pooler is not None:
                    return self.classifier(self.dropout(self.pooler(x)))
                return self.classifier(x)

        return _Head()
