"""Load a finished run and use it: predict labels and probabilities for new texts."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.data.cache import atomic_write_bytes
from tunesmith.data.readers import read_table
from tunesmith.data.validate import normalise_label
from tunesmith.errors import DataError, InputError, Problem
from tunesmith.run import read_manifest


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float
    probabilities: dict[str, float]


class Predictor:
    def __init__(self, run_dir: Path, manifest: dict[str, Any], model: Any, tokenizer: Any):
        self.run_dir, self.manifest, self.model, self.tokenizer = run_dir, manifest, model, tokenizer
        self.labels = [manifest["label_map"][str(i)] for i in range(len(manifest["label_map"]))]
        self.max_length = int(manifest["max_length"])
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.onnx: Any = None
        self.backend = "torch"

    def use_onnx(self) -> None:
        """Predict through the run's checked ONNX export (see tunesmith.onnx_export)."""
        from tunesmith.onnx_export import OnnxModel

        info = self.manifest["onnx"]
        self.onnx = OnnxModel(self.run_dir / info["file"])
        self.backend = "onnx-" + (info["quantized"] or "fp32")

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        """Token ids as in training: the run's tokenizer and max_length."""
        if isinstance(texts, str):
            raise TypeError("predict takes a list of texts")
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, return_attention_mask=False)
        return [np.asarray(x, dtype=np.int64) for x in enc["input_ids"]]

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        from tunesmith.tasks.text_classification import predict_proba

        if self.onnx is not None:
            return self.onnx.probabilities(self.encode(texts), self.pad_id, batch_size)
        return predict_proba(self.model, self.encode(texts), self.pad_id, batch_size)

    def parity_check(self) -> Any:
        """Probabilities on up to 256 of the run's validation texts (what a merge must reproduce)."""
        from tunesmith.methods.lora import probability_parity
        from tunesmith.tasks.text_classification import predict_proba

        lines = (self.run_dir / "validation_predictions.jsonl").read_text(encoding="utf-8").splitlines()
        golden = self.encode([json.loads(line)["text"] for line in lines[:256]])
        return probability_parity(lambda m: predict_proba(m, golden, self.pad_id))

    def predict(self, texts: list[str]) -> list[Prediction]:
        probs = self.predict_proba(texts)
        out = []
        for row in probs:
            i = int(row.argmax())
            out.append(Prediction(self.labels[i], float(row[i]), {lab: float(p) for lab, p in zip(self.labels, row)}))
        return out

    def _column(self, key: str) -> str:
        return self.manifest["data"][key]

    def read_texts(self, path: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
        table = read_table(path)
        col = self._column("text_column")
        if col not in table.columns:
            raise DataError(
                [
                    Problem(
                        "error",
                        "missing_column",
                        f"column {col!r} not found; columns: {', '.join(table.columns)}",
                        table.path,
                        1,
                    )
                ]
            )
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
        problems = [
            Problem(
                "error", "missing_column", f"column {c!r} not found; columns: {', '.join(table.columns)}", table.path, 1
            )
            for c in (tcol, lcol)
            if c not in table.columns
        ]
        if problems:
            raise DataError(problems)
        texts, labels, lines = [], [], []
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

    def predict_file(self, input_file: str | Path, output_file: str | Path, **options: Any) -> int:
        if options:
            raise InputError(f"{', '.join(options)}: generation options; this run is a classifier")
        out = check_output(output_file)
        texts, rows = self.read_texts(input_file)
        preds = self.predict(texts)
        col = self._column("text_column")
        records = [
            {
                **{k: v for k, v in row.items() if k == col or k == "id"},
                "label": p.label,
                "score": round(p.score, 6),
                **{f"p_{k}": round(v, 6) for k, v in p.probabilities.items()},
            }
            for row, p in zip(rows, preds)
        ]
        write_records(out, records)
        return len(records)


def check_output(path: str | Path) -> Path:
    """Where predictions go: .jsonl or .csv, checked before any work is done."""
    out = Path(path)
    if out.suffix.lower() not in (".jsonl", ".csv"):
        raise InputError(f"--output {out}: allowed endings are .jsonl and .csv")
    return out


def write_records(out: Path, records: list[dict[str, Any]]) -> None:
    """Prediction rows as JSON lines or CSV (by the file's ending), written atomically."""
    if out.suffix.lower() == ".jsonl":
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
        data = buf.getvalue()
    atomic_write_bytes(out, data.encode("utf-8"))


BACKENDS = ("auto", "torch", "onnx")


def load(run_dir: str | Path, backend: str = "auto") -> Any:
    """A Predictor (classification) or a Generator (causal-lm) for a finished run. ``backend``: ``auto`` uses the
    run's checked ONNX export when it has one, ``torch`` never does, ``onnx`` requires it."""
    run = Path(run_dir)
    manifest = read_manifest(run)
    if manifest.get("status") != "complete":
        raise InputError(f"{run}: the run did not finish; resume it with `tunesmith train CONFIG --resume {run}`")
    if backend not in BACKENDS:
        raise InputError(f"backend {backend!r}: allowed are {', '.join(BACKENDS)}")
    if backend == "onnx" and not manifest.get("onnx"):
        raise InputError(f"{run}: no ONNX export; run `tunesmith export {run} --onnx` first")
    model = _load(run, manifest)
    if backend != "torch" and manifest.get("onnx"):
        model.use_onnx()
    return model


def _load(run: Path, manifest: dict[str, Any]) -> Any:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if manifest.get("task") == "causal-lm":
        from tunesmith.generation import load_generator

        return load_generator(run, manifest)
    if manifest.get("task") == "image-classification":
        from tunesmith.vision import load_image_predictor

        return load_image_predictor(run, manifest)
    export = manifest["export"]
    if export.get("path"):
        folder = run / export["path"]
        model = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True)
    else:
        from peft import PeftModel

        folder = run / export["adapter"]
        id2label = {int(k): v for k, v in manifest["label_map"].items()}
        base = AutoModelForSequenceClassification.from_pretrained(
            manifest["base_model"]["path"],
            num_labels=len(id2label),
            id2label=id2label,
            label2id={v: k for k, v in id2label.items()},
            use_safetensors=True,
        )
        model = PeftModel.from_pretrained(base, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model.eval()
    return Predictor(run, manifest, model, tokenizer)
