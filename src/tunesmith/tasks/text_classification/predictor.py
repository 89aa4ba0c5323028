"""A finished text-classification run: labels and probabilities for new texts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.data.readers import read_table
from tunesmith.data.validate import DataReport, Examples, normalise_label, require_columns
from tunesmith.errors import DataError, InputError, Problem
from tunesmith.eval.compare import scored
from tunesmith.files import read_jsonl
from tunesmith.inference.base import PREDICTORS, Predictor
from tunesmith.inference.outputs import Prediction, check_output, prediction_record, predictions, write_records
from tunesmith.inference.weights import inside_run, load_trained
from tunesmith.methods.base import ParityCheck
from tunesmith.tasks.classification import correct, label_list, probability_parity
from tunesmith.tasks.text_classification.encoding import predict_proba


@PREDICTORS.register("text-classification")
class TextPredictor(Predictor):
    supports_onnx = True

    def __init__(self, run_dir: Path, manifest: dict[str, Any], model: Any, tokenizer: Any):
        self.run_dir, self.manifest, self.model, self.tokenizer = run_dir, manifest, model, tokenizer
        self.labels = label_list(manifest["label_map"])
        self.max_length = int(manifest["max_length"])
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.onnx: Any = None
        self.backend = "torch"

    @classmethod
    def load(cls, run: Path, manifest: dict[str, Any]) -> TextPredictor:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from tunesmith.models.pooled import PooledClassifier, is_pooled
        from tunesmith.tasks.text_classification.task import build_classifier

        head = manifest.get("classifier") or {"pooling": "cls", "hidden": [], "dropout": 0.0}

        def base(path: str) -> Any:  # the pre-trained model an adapter was trained on, with the run's head
            labels = label_list(manifest["label_map"])
            return build_classifier(
                path, labels, head["pooling"], head["hidden"], head["dropout"], use_safetensors=True
            )

        def full(folder: Path) -> Any:
            if is_pooled(folder):
                return PooledClassifier.from_pretrained(folder)
            return AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True)

        model, folder = load_trained(run, manifest, full, base)
        return cls(run, manifest, model, AutoTokenizer.from_pretrained(folder))

    def use_onnx(self) -> None:
        """Predict through the run's checked ONNX export (see tunesmith.pipeline.onnx_export)."""
        from tunesmith.inference.onnx_runtime import OnnxModel

        info = self.manifest["onnx"]
        self.onnx = OnnxModel(inside_run(self.run_dir, info.get("file"), "onnx.file"))
        self.backend = "onnx-" + (info["quantized"] or "fp32")

    def save_preprocessor(self, folder: Path) -> None:
        self.tokenizer.save_pretrained(folder)

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        """Token ids as in training: the run's tokenizer and max_length."""
        if isinstance(texts, str):
            raise TypeError("predict takes a list of texts")
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, return_attention_mask=False)
        return [np.asarray(x, dtype=np.int64) for x in enc["input_ids"]]

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if self.onnx is not None:
            return self.onnx.probabilities(self.encode(texts), self.pad_id, batch_size)
        return predict_proba(self.model, self.encode(texts), self.pad_id, batch_size)

    def parity_check(self) -> ParityCheck:
        """Probabilities on up to 256 of the run's validation texts (what a merge must reproduce)."""
        golden = self.encode([r["text"] for r in read_jsonl(self.run_dir / "validation_predictions.jsonl")[:256]])
        return probability_parity(lambda m: predict_proba(m, golden, self.pad_id))

    def predict(self, texts: list[str]) -> list[Prediction]:
        return predictions(self.predict_proba(texts), self.labels)

    def _column(self, key: str) -> str:
        return self.manifest["data"][key]

    def read_texts(self, path: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
        table = read_table(path)
        col = self._column("text_column")
        _require(table, ["data.text_column"], [col])
        problems = [
            Problem("error", "non_text", "expected non-empty text", table.path, ln, col)
            for row, ln in zip(table.rows, table.lines)
            if not isinstance(row.get(col), str) or not row[col].strip()
        ]
        if problems:
            raise DataError(problems)
        return [row[col] for row in table.rows], table.rows

    def read_labelled(self, path: str | Path) -> tuple[list[str], list[str], list[int]]:
        table = read_table(path)
        tcol, lcol = self._column("text_column"), self._column("label_column")
        _require(table, ["data.text_column", "data.label_column"], [tcol, lcol])
        texts, labels, lines, problems = [], [], [], []
        for row, ln in zip(table.rows, table.lines):
            text, label = row.get(tcol), normalise_label(row.get(lcol))
            if not isinstance(text, str) or not text.strip():
                problems.append(Problem("error", "non_text", "expected non-empty text", table.path, ln, tcol))
            elif label is None:
                problems.append(Problem("error", "missing_label", "label is missing", table.path, ln, lcol))
            elif label not in self.labels:
                problems.append(
                    Problem(
                        "error",
                        "unseen_label",
                        f"label {label!r} is not one the model knows ({', '.join(self.labels)})",
                        table.path,
                        ln,
                        lcol,
                    )
                )
            else:
                texts.append(text)
                labels.append(label)
                lines.append(ln)
        if problems:
            raise DataError(problems)
        return texts, labels, lines

    def evaluate_file(self, path: str | Path) -> dict[str, Any]:
        texts, labels, _ = self.read_labelled(path)
        index = {lab: i for i, lab in enumerate(self.labels)}
        return scored(np.array([index[lab] for lab in labels]), self.predict_proba(texts), self.labels)

    def example_scores(self, examples: Examples) -> np.ndarray:
        return correct(self.predict_proba(list(examples.inputs)), self.labels, examples.labels)

    def predict_file(self, input_file: str | Path, output_file: str | Path, **options: Any) -> int:
        if options:
            raise InputError(f"{', '.join(options)}: generation options; this run is a classifier")
        out = check_output(output_file)
        texts, rows = self.read_texts(input_file)
        col = self._column("text_column")
        records = [
            {**{k: v for k, v in row.items() if k == col or k == "id"}, **prediction_record(p)}
            for row, p in zip(rows, self.predict(texts))
        ]
        write_records(out, records)
        return len(records)


def _require(table: Any, keys: list[str], columns: list[str]) -> None:
    """The columns the run was trained on (by the config keys that named them), or DataError."""
    report = DataReport()
    if not require_columns(table, list(zip(keys, columns)), report):
        raise DataError(report.problems)
