"""A finished embedding run: unit vectors of texts, and retrieval figures on new (query, passage) pairs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.data.readers import read_table
from tunesmith.data.validate import DataReport, Examples
from tunesmith.errors import DataError, InputError, Problem
from tunesmith.eval import retrieval
from tunesmith.files import atomic_write_bytes
from tunesmith.inference.base import PREDICTORS, Predictor
from tunesmith.inference.weights import inside_run
from tunesmith.methods.base import ParityCheck
from tunesmith.tasks.embedding.pairs import corpus_of, read_pairs, relevant_sets


@dataclass
class Embedding:
    embedding: list[float]


@PREDICTORS.register("embedding")
class EmbeddingPredictor(Predictor):
    embeds = True

    def __init__(self, run_dir: Path, manifest: dict[str, Any], model: Any, tokenizer: Any):
        self.run_dir, self.manifest, self.model, self.tokenizer = run_dir, manifest, model, tokenizer
        self.max_length = int(manifest["max_length"])
        self.pooling = manifest["embedding"]["pooling"]
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @classmethod
    def load(cls, run: Path, manifest: dict[str, Any]) -> EmbeddingPredictor:
        from transformers import AutoModel, AutoTokenizer

        folder = inside_run(run, manifest["export"].get("path") or "model", "export.path")
        model = AutoModel.from_pretrained(folder, use_safetensors=True).eval()
        return cls(run, manifest, model, AutoTokenizer.from_pretrained(folder))

    def save_preprocessor(self, folder: Path) -> None:
        self.tokenizer.save_pretrained(folder)

    def ids(self, texts: list[str]) -> list[np.ndarray]:
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts")
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, return_attention_mask=False)
        return [np.asarray(x, dtype=np.int64) for x in enc["input_ids"]]

    def encode(self, texts: list[str]) -> np.ndarray:
        from tunesmith.knowledge.encoder import encode_ids

        return encode_ids(self.model, self.ids(texts), self.pad_id, self.pooling)

    def predict(self, texts: list[str]) -> list[Embedding]:
        return [Embedding([round(float(x), 6) for x in v]) for v in self.encode(texts)]

    def predict_file(self, input_file: str | Path, output_file: str | Path, **options: Any) -> int:
        table = read_table(input_file)
        col = options.get("text_column") or next(
            (c for c in ("text", self.manifest["data"]["query_column"], self.manifest["data"]["passage_column"])
             if c in table.columns), None)  # fmt: skip
        if col is None:
            names = f"text, {self.manifest['data']['query_column']} or {self.manifest['data']['passage_column']}"
            raise InputError(f"{table.path}: no text column ({names}); columns: {', '.join(table.columns)}")
        bad = [
            Problem("error", "non_text", "expected non-empty text", table.path, ln, col)
            for row, ln in zip(table.rows, table.lines)
            if not isinstance(row.get(col), str) or not row[col].strip()
        ]
        if bad:
            raise DataError(bad)
        vectors = self.encode([row[col] for row in table.rows])
        out = "".join(json.dumps({**row, "embedding": [round(float(x), 6) for x in v]}, ensure_ascii=False) + "\n"
                      for row, v in zip(table.rows, vectors))  # fmt: skip
        atomic_write_bytes(Path(output_file), out.encode("utf-8"))
        return len(table.rows)

    def _pairs(self, path: str | Path) -> Examples:
        from tunesmith.config import from_dict

        cols = {k: self.manifest["data"][k] for k in ("query_column", "passage_column")}
        cfg = from_dict({"task": "embedding", "data": {"train": str(path), **cols}})
        report = DataReport()
        ex, _ = read_pairs(str(path), cfg, report)
        if report.errors or ex is None:
            raise DataError(report.problems)
        return ex

    def _reciprocal_ranks(self, ex: Examples) -> tuple[dict[str, np.ndarray], int]:
        corpus, index = corpus_of([ex], [])
        ranked = retrieval.rankings(self.encode([q for q, _ in ex.inputs]), self.encode(corpus))
        return retrieval.per_query(ranked, relevant_sets(ex, [ex], index)), len(corpus)

    def evaluate_file(self, path: str | Path) -> dict[str, Any]:
        scores, corpus = self._reciprocal_ranks(self._pairs(path))
        return {"corpus": corpus, **retrieval.summarise(scores, 1000, 0.95, 0)}

    def example_scores(self, examples: Examples) -> np.ndarray:
        return self._reciprocal_ranks(examples)[0]["mrr_at_10"]

    def parity_check(self) -> ParityCheck:
        from tunesmith.tasks.embedding.task import embedding_parity

        rows = [json.loads(x) for x in (self.run_dir / "validation_rankings.jsonl").read_text().splitlines()[:64]]
        return embedding_parity(self.ids([r["query"] for r in rows]), self.pad_id, self.pooling)
