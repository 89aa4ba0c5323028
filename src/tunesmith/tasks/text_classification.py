"""Text classification: sentiment, intent, topic, ticket routing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.config import Config
from tunesmith.data.cache import ArrayCache, cache_key, cache_root, pack_ragged, unpack_ragged
from tunesmith.data.readers import Table, read_table
from tunesmith.data.split import add_replay, limit_and_split
from tunesmith.data.validate import (
    DataReport,
    Examples,
    check_labelled,
    length_stats,
    normalise_label,
    require_columns,
    settle_max_length,
)
from tunesmith.errors import DataError, InputError
from tunesmith.models.catalog import ModelSource
from tunesmith.tasks import TASKS, Prepared
from tunesmith.train import meter


def _examples_from_table(table: Table, cfg: Config, report: DataReport) -> Examples | None:
    d = cfg.data
    cols = [("data.text_column", d.text_column), ("data.label_column", d.label_column)]
    cols += [("eval.slice_columns", c) for c in cfg.eval.slice_columns]
    if not require_columns(table, cols, report):
        return None
    texts, labels, lines = [], [], []
    extras: dict[str, list[str]] = {c: [] for c in cfg.eval.slice_columns}
    for row, line in zip(table.rows, table.lines):
        text, label = row.get(d.text_column), normalise_label(row.get(d.label_column))
        bad = False
        if not isinstance(text, str):
            kind = "missing" if text is None else f"not text ({type(text).__name__})"
            report.add("error", "non_text", f"value is {kind}; expected a string", table.path, line, d.text_column)
            bad = True
        elif not text.strip():
            report.add("error", "empty_text", "text is empty", table.path, line, d.text_column)
            bad = True
        if label is None:
            report.add("error", "missing_label", "label is missing", table.path, line, d.label_column)
            bad = True
        if bad:
            continue
        texts.append(text)
        labels.append(label)
        lines.append(line)
        for c in extras:
            extras[c].append(str(row.get(c)))
    return Examples(table.path, texts, labels, lines, extras, keys=list(texts))


@TASKS.register("text-classification")
class TextClassification:
    """Inputs are strings, targets one label per text."""

    name = "text-classification"
    peft_task_type = "SEQ_CLS"

    def __init__(self, cfg: Config):
        self.cfg = cfg

    # --- data -------------------------------------------------------------------------------
    def read(self) -> tuple[Examples, Examples, DataReport, str]:
        """Read and check the data; raise DataError with every fatal problem, before anything is written."""
        d, report = self.cfg.data, DataReport()
        tables: dict[str, Table] = {}
        for key in ("train", "validation"):
            path = getattr(d, key)
            if path is None:
                continue
            try:
                tables[key] = read_table(path)
            except DataError as exc:
                report.problems.extend(exc.problems)
        train = _examples_from_table(tables["train"], self.cfg, report) if "train" in tables else None
        val = _examples_from_table(tables["validation"], self.cfg, report) if "validation" in tables else None
        fingerprint = "+".join(t.fingerprint[:16] for t in tables.values())
        if train is not None and len(train):
            train, val = limit_and_split(train, val, d, self.cfg.train.seed, report, "rows")
            train = add_replay(train, d, self.cfg.train.seed, report, self._replay_reader(report), "rows")
            self.labels = check_labelled(
                train, val, report, d.min_examples_per_class, d.warn_examples_per_class, d.imbalance_warn_ratio
            )
        elif train is not None:
            report.add("error", "empty_file", "no usable training rows", train.source)
        if report.errors:
            raise DataError(report.problems)
        assert train is not None and val is not None
        return train, val, report, fingerprint

    def _replay_reader(self, report: DataReport) -> Any:
        def read(path: str) -> Examples | None:
            try:
                return _examples_from_table(read_table(path), self.cfg, report)
            except DataError as exc:
                report.problems.extend(exc.problems)
                return None

        return read

    def load_tokenizer(self, source: ModelSource) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(source.path, trust_remote_code=self.cfg.trust_remote_code)

    def token_lengths(self, tokenizer: Any, texts: list[str]) -> list[int]:
        enc = tokenizer(texts, add_special_tokens=True, truncation=False, return_attention_mask=False)
        return [len(ids) for ids in enc["input_ids"]]

    def check_lengths(self, tokenizer: Any, train: Examples, val: Examples, report: DataReport) -> int:
        """Token-length statistics per split; picks max_length from the data when the config leaves it open."""
        limit = min(int(getattr(tokenizer, "model_max_length", 512) or 512), 512)
        train_len = self.token_lengths(tokenizer, train.inputs)
        max_length = settle_max_length(self.cfg.train.max_length, train_len, limit, report)
        report.stats["tokens"] = {
            "train": length_stats(train_len, max_length, report, train.source),
            "validation": length_stats(self.token_lengths(tokenizer, val.inputs), max_length, report, val.source),
        }
        return max_length

    def encode(self, tokenizer: Any, texts: list[str], max_length: int, data_key: str) -> list[np.ndarray]:
        """Token ids per text; cached by (data fingerprint, tokenizer, max_length)."""
        tok_id = getattr(tokenizer, "name_or_path", "") + str(len(tokenizer)) + type(tokenizer).__name__
        key = cache_key("tokens", data_key, tok_id, _tokenizer_digest(tokenizer), max_length, len(texts))
        cache = ArrayCache(cache_root(self.cfg.cache_dir), "tokens")
        hit = cache.get(key)
        if hit is not None:
            self.cache_hits = getattr(self, "cache_hits", 0) + 1
            return unpack_ragged(hit)
        enc = tokenizer(texts, truncation=True, max_length=max_length, return_attention_mask=False)
        cache.put(key, pack_ragged(enc["input_ids"]))
        return [np.asarray(ids, dtype=np.int32) for ids in enc["input_ids"]]

    # --- model ------------------------------------------------------------------------------
    def build_model(self, source: ModelSource) -> Any:
        from transformers import AutoModelForSequenceClassification

        labels = self.labels
        id2label = dict(enumerate(labels))
        return AutoModelForSequenceClassification.from_pretrained(
            source.path,
            num_labels=len(labels),
            id2label=id2label,
            label2id={v: k for k, v in id2label.items()},
            trust_remote_code=self.cfg.trust_remote_code,
            use_safetensors=None if self.cfg.trust_remote_code else _safetensors_pref(source),
        )

    def lora_targets(self, model: Any) -> list[str] | None:
        return None  # PEFT's default for the architecture (the attention projections)

    def lora_modules_to_save(self, model: Any) -> list[str]:
        from tunesmith.methods.lora import head_module_names

        return head_module_names(model)

    # --- the finetune() hooks -----------------------------------------------------------------------
    def prepare(self, tokenizer: Any, train: Examples, val: Examples, max_length: int) -> Prepared:
        """Token ids (cached by split content, tokenizer and max_length) and training items."""
        keys = (train.content_key(), val.content_key())
        train_ids = self.encode(tokenizer, train.inputs, max_length, keys[0])
        val_ids = self.encode(tokenizer, val.inputs, max_length, keys[1])
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        train_items = self.items(train_ids, train.labels, self.labels)
        val_items = self.items(val_ids, val.labels, self.labels)
        extra = {"train_ids": train_ids, "val_ids": val_ids, "keys": keys, "max_length": max_length, "val": val}
        return Prepared(train_items, val_items, [len(x) for x in train_ids], self.collate(pad_id), pad_id, extra)

    def before_training(self, model: Any, prep: Prepared, source: ModelSource, main: bool) -> Any:
        """Frozen pre-trained features (cached), read before any weight changes: the linear-probe baseline and
        the head method's inputs."""
        from tunesmith.api import release_memory

        x = prep.extra
        frozen = FrozenFeatures(
            self,
            model,
            source.fingerprint,
            x["keys"],
            x["max_length"],
            x["train_ids"],
            x["val_ids"],
            prep.pad_id,
            self.cfg.cache_dir,
        )
        if self.cfg.eval.probe and main:
            frozen.get()
            release_memory()
        return frozen

    @staticmethod
    def method_features(baseline: Any) -> Any:
        return baseline.for_method

    def evaluator(self, prep: Prepared) -> Any:
        from tunesmith.eval.metrics import classification_metrics

        val_y = np.array([it["labels"] for it in prep.val_items])
        batch_size = self.cfg.eval.batch_size
        val_tokens = sum(len(it["input_ids"]) for it in prep.val_items if "input_ids" in it)

        def evaluate(m: Any) -> dict[str, float]:
            with meter.measure("forward", "validation", len(val_y), val_tokens):
                probs = self.predict_proba(m, prep.extra["val_ids"], prep.pad_id, batch_size)
            res = classification_metrics(val_y, probs, self.labels)
            return {"loss": res["loss"], "accuracy": res["accuracy"], "macro_f1": res["macro_f1"]}

        return evaluate

    def finish(
        self, run: Path, cfg: Config, model: Any, prep: Prepared, baseline: Any, report: DataReport, fit: Any
    ) -> dict[str, Any]:
        """Tuned against the majority class and the linear probe: report.json, report.html, predictions."""
        from tunesmith.eval.report import build_report

        val: Examples = prep.extra["val"]
        val_y = np.array([it["labels"] for it in prep.val_items])
        train_y = np.array([it["labels"] for it in prep.train_items])
        with meter.measure("forward", "validation", len(val_y), sum(len(x) for x in prep.extra["val_ids"])):
            probs = predict_proba(model, prep.extra["val_ids"], prep.pad_id, cfg.eval.batch_size)
        return build_report(
            run,
            cfg=cfg,
            labels=self.labels,
            val_y=val_y,
            probs=probs,
            train_y=train_y,
            probe=baseline.probe(train_y, cfg.train.seed) if cfg.eval.probe else None,
            slices=val.extras,
            report=report,
            fit=fit,
            samples=[(x, ln) for x, ln in zip(val.inputs, val.lines)],
        )

    def parity_check(self, prep: Prepared) -> Any:
        from tunesmith.methods.lora import probability_parity

        golden = prep.extra["val_ids"][:256]
        return probability_parity(lambda m: self.predict_proba(m, golden, prep.pad_id, self.cfg.eval.batch_size))

    def manifest_extras(self, prep: Prepared) -> dict[str, Any]:
        return {
            "data": {"text_column": self.cfg.data.text_column, "label_column": self.cfg.data.label_column},
            "label_map": dict(enumerate(self.labels)),
        }

    @staticmethod
    def summary_lines(manifest: dict[str, Any], run_dir: Path) -> list[str]:
        m = manifest["metrics"]
        rows = [(name, b["accuracy"], b["macro_f1"]) for name, b in m["baselines"].items()]
        rows.append(("tuned", m["accuracy"], m["macro_f1"]))
        out = [f"\n{'model':<38}{'accuracy':>10}{'macro-F1':>10}"]
        out += [f"{name:<38}{acc * 100:>9.1f}%{f1 * 100:>9.1f}%" for name, acc, f1 in rows]
        for name, c in m["tuned_minus"].items():
            a = c["accuracy"]
            out.append(
                f"tuned - {name}: accuracy {a['difference'] * 100:+.1f} points "
                f"(95% CI {a['ci_low'] * 100:+.1f} .. {a['ci_high'] * 100:+.1f})"
            )
        out.append(f"n = {m['n']} validation examples; report: {Path(run_dir) / 'report.html'}")
        return out

    def items(self, ids: list[np.ndarray], labels: list[str], label_names: list[str]) -> list[dict[str, Any]]:
        index = {lab: i for i, lab in enumerate(label_names)}
        return [{"input_ids": x, "labels": index[y]} for x, y in zip(ids, labels)]

    def collate(self, pad_id: int) -> Any:
        return make_collate(pad_id)

    @staticmethod
    def loss(model: Any, batch: dict[str, Any]) -> Any:
        import torch.nn.functional as F

        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return F.cross_entropy(logits.float(), batch["labels"])

    @staticmethod
    def feature_head(model: Any) -> Any:
        return FeatureHead(model)

    @staticmethod
    def features(model: Any, ids: list[np.ndarray], pad_id: int) -> dict[str, np.ndarray]:
        return frozen_features(model, ids, pad_id)

    @staticmethod
    def predict_proba(model: Any, ids: list[np.ndarray], pad_id: int, batch_size: int = 64) -> np.ndarray:
        return predict_proba(model, ids, pad_id, batch_size)


def make_collate(pad_id: int) -> Any:
    """Dynamic padding: each batch is padded to its own longest example, not to max_length."""
    import torch

    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        longest = max(len(it["input_ids"]) for it in items)
        ids = torch.full((len(items), longest), pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), longest), dtype=torch.long)
        for i, it in enumerate(items):
            n = len(it["input_ids"])
            ids[i, :n] = torch.as_tensor(it["input_ids"], dtype=torch.long)
            mask[i, :n] = 1
        batch = {"input_ids": ids, "attention_mask": mask}
        if "labels" in items[0]:
            batch["labels"] = torch.tensor([it["labels"] for it in items], dtype=torch.long)
        return batch

    return collate


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


# --- inference, frozen features and the feature head (used by the head method and the probe) --------------
def length_batches(lengths: list[int], max_batch: int = 64, token_budget: int = 8192) -> list[np.ndarray]:
    """Indices in batches of similar length, longest first: as many inputs per batch as fit ``token_budget``
    padded tokens (short inputs go in big batches, long ones in small), at most ``max_batch``."""
    order = np.argsort([-n for n in lengths], kind="stable")
    batches, s = [], 0
    while s < len(order):
        size = max(1, min(max_batch, token_budget // max(1, lengths[order[s]])))
        batches.append(order[s : s + size])
        s += size
    return batches


def predict_proba(model: Any, ids: list[np.ndarray], pad_id: int, batch_size: int = 64) -> np.ndarray:
    """Class probabilities in length-sorted, token-budgeted batches, so little compute goes to padding."""
    import torch

    collate = make_collate(pad_id)
    out: list[np.ndarray] = [None] * len(ids)  # type: ignore[list-item]
    model.eval()
    device = next(model.parameters()).device
    with torch.inference_mode():
        for sel in length_batches([len(x) for x in ids], batch_size):
            batch = {k: v.to(device) for k, v in collate([{"input_ids": ids[i]} for i in sel]).items()}
            probs = torch.softmax(model(**batch).logits.float(), dim=-1).cpu().numpy()
            for j, i in enumerate(sel):
                out[i] = probs[j]
    return np.stack(out) if out else np.zeros((0, 0))


def _body(model: Any) -> Any:
    return getattr(model, getattr(model, "base_model_prefix", ""), None) or model.base_model


def frozen_features(model: Any, ids: list[np.ndarray], pad_id: int, batch_size: int = 64) -> dict[str, np.ndarray]:
    """The frozen body's last hidden state read two ways: the first token (what the head sees) and the
    attention-masked mean (the strongest frozen reading of sentence encoders, used by the linear probe)."""
    import torch

    body = _body(model)
    collate = make_collate(pad_id)
    order = np.argsort([-len(x) for x in ids], kind="stable")
    first = mean = None
    body.eval()
    with torch.inference_mode():
        for s in range(0, len(ids), batch_size):
            sel = order[s : s + batch_size]
            batch = collate([{"input_ids": ids[i]} for i in sel])
            hidden = body(**batch).last_hidden_state.float()
            mask = batch["attention_mask"].unsqueeze(-1).float()
            if first is None:
                first = np.zeros((len(ids), hidden.shape[-1]), dtype=np.float32)
                mean = np.zeros_like(first)
            first[sel] = hidden[:, 0].numpy()
            mean[sel] = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    return {"first": first, "mean": mean}


class FeatureHead:
    """Runs the model's own head (pooler if any, dropout, classifier) on cached first-token features."""

    def __new__(cls, model: Any) -> Any:
        import torch

        body = _body(model)
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


class FrozenFeatures:
    """Features of the frozen pre-trained body, computed once per (data, model, max_length) and cached."""

    def __init__(
        self,
        task: Any,
        model: Any,
        model_fp: str,
        split_keys: tuple[str, str],
        max_length: int,
        train_ids: list,
        val_ids: list,
        pad_id: int,
        cache_dir: str | None,
    ):
        self.task, self.model, self.pad_id = task, model, pad_id
        self.ids = {"train": train_ids, "val": val_ids}
        self.key = (model_fp, *split_keys, max_length)
        self.cache_dir = cache_dir
        self._feats: dict[str, dict[str, np.ndarray]] | None = None

    def get(self) -> dict[str, dict[str, np.ndarray]]:
        if self._feats is None:
            cache = ArrayCache(cache_root(self.cache_dir), "features")
            self._feats = {}
            for split, ids in self.ids.items():
                key = cache_key("frozen", split, *self.key)
                hit = cache.get(key)
                if hit is None:
                    tokens = sum(len(x) for x in ids) if isinstance(ids, list) else 0  # images: no tokens
                    with meter.measure("forward", "train" if split == "train" else "validation", len(ids), tokens):
                        hit = self.task.features(self.model, ids, self.pad_id)
                    cache.put(key, hit)
                self._feats[split] = hit
        return self._feats

    def for_method(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        feats = self.get()
        return feats["train"]["first"], feats["val"]["first"]

    def probe(self, train_y: np.ndarray, seed: int) -> dict[str, Any]:
        from tunesmith.eval.compare import linear_probe

        feats = self.get()
        probs, c = linear_probe(feats["train"]["mean"], train_y, feats["val"]["mean"], seed)
        return {"probs": probs, "C": c, "features": "mean-pooled last hidden state of the frozen pre-trained model"}
