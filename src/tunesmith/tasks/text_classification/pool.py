"""A pool of texts for label-next and learn: a CSV, JSONL or Parquet table with a text column and (optionally) a
label column; two texts that differ only in case and spacing are one example."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.data.readers import read_table
from tunesmith.data.validate import DataReport, require_columns
from tunesmith.errors import DataError, InputError
from tunesmith.files import not_found, write_csv
from tunesmith.models.catalog import ModelSource
from tunesmith.tasks.pool import Embed, Pool, PoolKind, cached_embeddings, read_labels
from tunesmith.tasks.text_classification.encoding import DEFAULT_LENGTH_CAP, frozen_features


def same_text(text: str) -> str:
    """The form two texts are compared in: case and runs of white space do not make a new example."""
    return " ".join(text.split()).casefold()


class TextPool(PoolKind):
    unit = "rows"
    input_option = "--text-column"
    default_input = "text"
    shown_as = "text"

    def input_column(self, data: Any) -> str:
        return data.text_column

    def read(self, path: str | Path, input_column: str, label_column: str, label_names: list[str] | None) -> Pool:
        if not Path(path).is_file():
            raise InputError(f"--pool {path}: {not_found(path)}")
        table = read_table(str(path))
        report = DataReport()
        if not require_columns(table, [("--text-column / data.text_column", input_column)], report):
            raise DataError(report.problems)
        for row, line in zip(table.rows, table.lines):
            text = row.get(input_column)
            if not isinstance(text, str) or not text.strip():
                kind = "missing" if text is None else ("empty" if isinstance(text, str) else f"not text ({text!r})")
                report.add(
                    "error", "non_text", f"text is {kind}; every pool row needs one", table.path, line, input_column
                )
        if report.problems:
            raise DataError(report.problems)
        if not table.rows:
            raise InputError(f"{table.path}: the pool holds no rows")
        texts = [row[input_column] for row in table.rows]
        cells = [row.get(label_column) for row in table.rows]
        return Pool(
            path=table.path,
            columns=list(table.columns),
            rows=table.rows,
            lines=list(table.lines),
            inputs=texts,
            keys=[same_text(t) for t in texts],
            labels=read_labels(cells, list(table.lines), table.path, label_column, label_names),
            input_column=input_column,
            label_column=label_column,
            unit=self.unit,
        )

    def encoder(self, spec: str, cache_dir: str | None, trust_remote_code: bool, max_length: int | None) -> Embed:
        from tunesmith.models.catalog import resolve

        length = max_length or DEFAULT_LENGTH_CAP
        source = resolve(spec, cache_dir)
        loaded: list[Any] = []

        def embed(texts: list[str]) -> np.ndarray:
            def compute() -> np.ndarray:
                if not loaded:
                    loaded.extend(load_encoder(source, trust_remote_code))
                return embed_texts(loaded[0], loaded[1], texts, length)

            return cached_embeddings(cache_dir, "text", source.fingerprint, length, texts, compute)

        return embed

    def write_training(
        self, folder: Path, inputs: list[Any], labels: list[str], input_column: str, label_column: str
    ) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / "train.csv"
        write_csv(out, [input_column, label_column], zip(inputs, labels))
        return out


def load_encoder(source: ModelSource, trust_remote_code: bool = False) -> tuple[Any, Any]:
    """The pre-trained encoder and tokenizer of a resolved model (safetensors only)."""
    from transformers import AutoModel, AutoTokenizer

    from tunesmith.runtime import quiet_libraries

    quiet_libraries()
    tokenizer = AutoTokenizer.from_pretrained(source.path, trust_remote_code=trust_remote_code)
    model = AutoModel.from_pretrained(source.path, use_safetensors=True, trust_remote_code=trust_remote_code)
    return model.eval(), tokenizer


def embed_texts(model: Any, tokenizer: Any, texts: list[str], max_length: int) -> np.ndarray:
    """Mean-pooled frozen features of texts (the reading the linear probe uses)."""
    ids = tokenizer(texts, truncation=True, max_length=max_length, return_attention_mask=False)["input_ids"]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return frozen_features(model, [np.asarray(x) for x in ids], pad)["mean"]
