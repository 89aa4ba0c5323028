"""Embeddings tuned to the domain: a sentence encoder fine-tuned on (query, passage) pairs so that a query lands
nearest the passage that answers it.

The loss is the in-batch contrastive one (each query against every passage of its batch, cosine x
``embedding.scale``; sentence-transformers calls it MultipleNegativesRankingLoss), plus ``embedding.hard_negatives``
passages per query mined with the pre-trained encoder: the most similar passages that are not its own. A passage
another query of the batch shares is never counted as a negative. Evaluation searches every distinct passage of the
data (and a knowledge base's chunks, ``data.knowledge_base``) with the held-out queries: recall@1/5/10, MRR@10 and
nDCG@10 of the pre-trained and the tuned encoder, paired, with bootstrap intervals."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.config import Config
from tunesmith.data.split import add_replay, carve_selection, limit_and_split
from tunesmith.data.validate import (
    DataReport,
    check_duplicates,
    check_leakage,
    length_stats,
    settle_max_length,
)
from tunesmith.errors import DataError
from tunesmith.eval import retrieval
from tunesmith.files import write_json
from tunesmith.knowledge.encoder import declared_max_length, embed_batch, encode_ids, pad_ids
from tunesmith.methods.base import ParityCheck
from tunesmith.models.catalog import ModelSource
from tunesmith.models.pooled import declared_pooling
from tunesmith.tasks.base import TASKS, Prepared, Task, TaskData
from tunesmith.tasks.embedding.pairs import corpus_of, describe, knowledge_texts, passage_key, read_pairs, relevant_sets
from tunesmith.tasks.embedding.report import summary_lines, write_report
from tunesmith.train.result import FitResult

DEFAULT_LENGTH_CAP = 256  # all-MiniLM-L6-v2 was trained on inputs of at most 256 tokens


@dataclass(kw_only=True)
class PairsPrepared(Prepared):
    tokenizer: Any
    pooling: str
    corpus: list[str]
    corpus_ids: list[np.ndarray]
    val_queries: list[np.ndarray]
    val_relevant: list[set[int]]
    select_queries: list[np.ndarray] | None
    select_relevant: list[set[int]] | None
    scale: float


@TASKS.register("embedding")
class Embedding(Task):
    """Inputs are (query, passage) pairs; the model is the encoder itself (its pooled, normalised output)."""

    name = "embedding"
    unit = "pairs"
    epoch_rule = (60, 1, 3)  # contrastive tuning of a sentence encoder peaks early (docs/knowledge.md)
    batch_sizes = (16, 32)  # more in-batch negatives help; 32 is what a 2-core CPU steps through in about a second
    learning_rates = {"full": [(math.inf, 2e-5)]}  # sentence-transformers' rate for fine-tuning sentence encoders
    gate_metric = "mrr_at_10"

    # --- data ---------------------------------------------------------------------------------------------
    def read(self) -> TaskData:
        d, report = self.cfg.data, DataReport()
        train, fp_train = read_pairs(d.train, self.cfg, report)
        val, fp_val = (None, "") if d.validation is None else read_pairs(d.validation, self.cfg, report)
        select = None
        if train is not None and len(train) >= d.min_examples:
            train, val = limit_and_split(train, val, d, self.cfg.train.seed, report, "pairs")
            train, select = carve_selection(train, d, self.cfg.train.seed, report, "pairs")
            train = add_replay(train, d, self.cfg.train.seed, report, lambda p: read_pairs(p, self.cfg, report)[0],
                               "pairs")  # fmt: skip
        elif train is not None:
            report.add("error", "too_few", f"{len(train)} usable pairs; at least {d.min_examples} are needed "
                       "(data.min_examples)", train.source)  # fmt: skip
        if train is not None and val is not None and not report.errors:
            whole = train if select is None else train.concat(select)
            check_duplicates(whole, report)
            check_duplicates(val, report)
            check_leakage(whole, val, report)
            report.stats["pairs"] = {"train": describe(whole), "validation": describe(val)}
        if report.errors:
            raise DataError(report.problems)
        assert train is not None and val is not None
        fingerprint = "+".join(f[:16] for f in (fp_train, fp_val) if f)
        return TaskData(train, val, report, fingerprint, select=select)

    def load_preprocessor(self, source: ModelSource, data: TaskData) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(source.path, trust_remote_code=self.cfg.trust_remote_code)

    def check_inputs(self, preprocessor: Any, data: TaskData) -> int:
        limit = min(int(getattr(preprocessor, "model_max_length", 512) or 512), 512)
        cap = min(declared_max_length(self._folder()) or DEFAULT_LENGTH_CAP, limit)
        passages = _lengths(preprocessor, [p for _, p in data.all_train.inputs])
        max_length = settle_max_length(self.cfg.train.max_length, passages, limit, data.report, cap)
        data.report.stats["tokens"] = {
            "train passages": length_stats(passages, max_length, data.report, data.train.source),
            "train queries": length_stats(
                _lengths(preprocessor, [q for q, _ in data.all_train.inputs]), max_length, data.report,
                data.train.source,
            ),
        }  # fmt: skip
        return max_length

    def _folder(self) -> str:
        from tunesmith.models.catalog import resolve

        return resolve(self.cfg.model or self.default_model, self.cfg.cache_dir).path

    @functools.cache  # noqa: B019 (one task object per run: nothing to leak)
    def pooling(self) -> str:
        """How the encoder was trained to be read: its declared sentence pooling, else the mean."""
        return declared_pooling(self._folder()) or "mean"

    # --- training -------------------------------------------------------------------------------------------
    def prepare(self, preprocessor: Any, data: TaskData, input_size: int) -> PairsPrepared:
        tok = preprocessor

        def ids(texts: list[str]) -> list[np.ndarray]:
            enc = tok(texts, truncation=True, max_length=input_size, return_attention_mask=False)["input_ids"]
            return [np.asarray(x, dtype=np.int64) for x in enc]

        splits = [s for s in (data.train, data.select, data.val) if s is not None]
        corpus, index = corpus_of(splits, knowledge_texts(self.cfg.data.knowledge_base))
        corpus_ids = ids(corpus)
        items = [
            {"q": q, "p": corpus_ids[index[passage_key(p)]], "key": index[passage_key(p)], "neg": []}
            for q, (_, p) in zip(ids([q for q, _ in data.train.inputs]), data.train.inputs)
        ]
        sel = data.select
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        pooling = self.pooling()
        return PairsPrepared(
            train_items=items,
            val_items=[{"q": q} for q in ids([q for q, _ in data.val.inputs])],
            select_items=None if sel is None else [{"q": q} for q in ids([q for q, _ in sel.inputs])],
            lengths=[len(it["q"]) + len(it["p"]) for it in items],
            collate=make_collate(pad),
            pad_id=pad,
            input_size=input_size,
            data=data,
            tokenizer=tok,
            pooling=pooling,
            corpus=corpus,
            corpus_ids=corpus_ids,
            val_queries=ids([q for q, _ in data.val.inputs]),
            val_relevant=relevant_sets(data.val, splits, index),
            select_queries=None if sel is None else ids([q for q, _ in sel.inputs]),
            select_relevant=None if sel is None else relevant_sets(sel, splits, index),
            scale=self.cfg.embedding.scale,
        )

    def build_model(self, source: ModelSource, data: TaskData) -> Any:
        from transformers import AutoModel

        return AutoModel.from_pretrained(
            source.path, use_safetensors=True, trust_remote_code=self.cfg.trust_remote_code
        ).train()

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        import torch

        how = self.pooling()
        q = embed_batch(model, batch["input_ids"], batch["attention_mask"], how)
        p = embed_batch(model, batch["passage_ids"], batch["passage_mask"], how)
        scores = (q @ p.T * self.cfg.embedding.scale).masked_fill(batch["shared"], float("-inf"))
        return torch.nn.functional.cross_entropy(scores, torch.arange(len(q)))

    def before_training(self, model: Any, prep: Any, source: ModelSource, main: bool) -> Any:
        """The pre-trained encoder's figures on the held-out queries, and the hard negatives it finds."""
        corpus = encode_ids(model, prep.corpus_ids, prep.pad_id, prep.pooling)
        queries = encode_ids(model, prep.val_queries, prep.pad_id, prep.pooling)
        ranked = retrieval.rankings(queries, corpus)
        mine_negatives(model, prep, corpus, self.cfg.embedding.hard_negatives)
        choice = choice_metrics(model, prep, corpus) if prep.select_queries is not None else None
        return {"per_query": retrieval.per_query(ranked, prep.val_relevant), "ranked": ranked, "choice": choice}

    def untouched_choice(self, baseline: Any) -> dict[str, float] | None:
        return baseline["choice"]

    def evaluator(self, prep: Any) -> Any:
        return lambda model: choice_metrics(model, prep)

    # --- after training -------------------------------------------------------------------------------------
    def finish(
        self, run: Path, cfg: Config, model: Any, prep: Any, baseline: Any, report: DataReport, fit: FitResult
    ) -> dict[str, Any]:
        corpus = encode_ids(model, prep.corpus_ids, prep.pad_id, prep.pooling)
        ranked = retrieval.rankings(encode_ids(model, prep.val_queries, prep.pad_id, prep.pooling), corpus)
        tuned = retrieval.per_query(ranked, prep.val_relevant)
        return write_report(run, cfg, prep, baseline, tuned, ranked, report, fit)

    def parity_check(self, prep: Any) -> ParityCheck:
        return embedding_parity(prep.val_queries[:64], prep.pad_id, prep.pooling)

    def save_preprocessor(self, preprocessor: Any, folder: Path) -> None:
        """The tokenizer, and the files that make the folder a sentence-transformers model (pooling, then
        normalisation), so ``SentenceTransformer(folder)`` reads it as tunesmith does."""
        preprocessor.save_pretrained(folder)
        width = json.loads((folder / "config.json").read_text(encoding="utf-8"))["hidden_size"]
        how = self.pooling()
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ]
        write_json(folder / "modules.json", modules)
        (folder / "1_Pooling").mkdir(exist_ok=True)
        write_json(folder / "1_Pooling" / "config.json", {
            "word_embedding_dimension": width, "pooling_mode_cls_token": how == "cls",
            "pooling_mode_mean_tokens": how == "mean", "pooling_mode_max_tokens": how == "max",
        })  # fmt: skip
        (folder / "2_Normalize").mkdir(exist_ok=True)
        length = self.cfg.train.max_length or declared_max_length(self._folder()) or DEFAULT_LENGTH_CAP
        write_json(folder / "sentence_bert_config.json", {"max_seq_length": length, "do_lower_case": False})

    def manifest_extras(self, prep: Any) -> dict[str, Any]:
        d = self.cfg.data
        return {
            "data": {"query_column": d.query_column, "passage_column": d.passage_column},
            "embedding": {"pooling": prep.pooling, "normalized": True, "corpus": len(prep.corpus)},
        }

    summary_lines = staticmethod(summary_lines)


def _lengths(tokenizer: Any, texts: list[str]) -> list[int]:
    return [len(x) for x in tokenizer(texts, return_attention_mask=False)["input_ids"]]


def make_collate(pad_id: int) -> Any:
    """Queries and their passages (each query's own first, then the mined negatives); ``shared`` marks a passage
    that is another query's in the batch but also this query's (the same passage twice): not a negative."""
    import torch

    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        passages, keys = [it["p"] for it in items], [it["key"] for it in items]
        for it in items:
            for key, ids in it["neg"]:
                passages.append(ids)
                keys.append(key)
        q_ids, q_mask = pad_ids([it["q"] for it in items], pad_id)
        p_ids, p_mask = pad_ids(passages, pad_id)
        own = torch.tensor([it["key"] for it in items]).unsqueeze(1)
        shared = own == torch.tensor(keys).unsqueeze(0)
        shared[torch.arange(len(items)), torch.arange(len(items))] = False
        return {
            "input_ids": q_ids, "attention_mask": q_mask, "passage_ids": p_ids, "passage_mask": p_mask,
            "shared": shared, "real_tokens": q_mask.sum() + p_mask.sum(),
            "positions": torch.tensor(q_mask.numel() + p_mask.numel()),
        }  # fmt: skip

    return collate


def choice_metrics(model: Any, prep: Any, corpus: np.ndarray | None = None) -> dict[str, float]:
    """What the run's choices are made on: the selection queries (else the validation ones) searching the corpus;
    the loss is the cross entropy of each query's first relevant passage against the whole corpus."""
    queries = prep.select_queries if prep.select_queries is not None else prep.val_queries
    relevant = prep.select_relevant if prep.select_relevant is not None else prep.val_relevant
    if corpus is None:
        corpus = encode_ids(model, prep.corpus_ids, prep.pad_id, prep.pooling)
    q = encode_ids(model, queries, prep.pad_id, prep.pooling)
    scores = retrieval.per_query(retrieval.rankings(q, corpus), relevant)
    logits = prep.scale * (q @ corpus.T)
    logits -= logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    loss = float(np.mean([-logp[i, min(rel)] for i, rel in enumerate(relevant)]))
    return {"loss": loss, **{k: float(np.mean(v)) for k, v in scores.items()}}


def embedding_parity(golden: list[np.ndarray], pad_id: int, pooling: str) -> ParityCheck:
    """What an export must reproduce: the embeddings of golden held-out queries, within 1e-4."""

    def run(model: Any) -> np.ndarray:
        return encode_ids(model, golden, pad_id, pooling)

    def compare(before: np.ndarray, after: np.ndarray) -> tuple[bool, dict[str, Any]]:
        gap = float(np.abs(after - before).max()) if len(before) else 0.0
        return gap <= 1e-4, {"examples": len(before), "max_embedding_difference": gap}

    return ParityCheck(run, compare, "embeddings of held-out queries (tolerance 1e-4)")


def mine_negatives(model: Any, prep: Any, corpus: np.ndarray, per_query: int) -> None:
    """Each training item gets the ``per_query`` passages the pre-trained encoder ranks highest for its query that
    are not one of its own (a query paired with several passages has them all excluded)."""
    if per_query <= 0:
        return
    own: dict[bytes, set[int]] = {}
    for it in prep.train_items:
        own.setdefault(it["q"].tobytes(), set()).add(it["key"])
    queries = encode_ids(model, [it["q"] for it in prep.train_items], prep.pad_id, prep.pooling)
    ranked = retrieval.rankings(queries, corpus, depth=per_query + 8)
    for it, row in zip(prep.train_items, ranked):
        picks = [int(j) for j in row if int(j) not in own[it["q"].tobytes()]][:per_query]
        it["neg"] = [(j, prep.corpus_ids[j]) for j in picks]
