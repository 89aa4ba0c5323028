"""ONNX export of a text classifier, optionally int8 (ONNX Runtime dynamic quantization), kept only after a
parity check on the run's held-out examples; ``OnnxModel`` runs it for ``predict`` and ``serve``."""

from __future__ import annotations

import logging
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.errors import InputError, TunesmithError
from tunesmith.files import read_jsonl, write_json
from tunesmith.inference import load
from tunesmith.inference.onnx_runtime import OnnxModel
from tunesmith.rundir import read_manifest

MIN_AGREEMENT = 0.995  # share of held-out examples whose predicted label must not change
MAX_ACCURACY_DROP = 0.005  # 0.5 accuracy points
OPSET = 17


class ParityFailed(TunesmithError):
    exit_code = 1


def export_onnx(run_dir: str | Path, quantize: bool = True, limit: int = 2000) -> dict[str, Any]:
    """Write RUN/onnx/model[.int8].onnx and record the parity figures in the manifest; refuse (nothing kept) when
    the exported model changes more than 0.5% of held-out predictions or loses more than 0.5 accuracy points."""
    import torch
    from peft import PeftModel

    run = Path(run_dir)
    if not run.is_dir():
        raise InputError(f"{run_dir}: export writes into a run directory; registered versions are read-only")
    manifest = read_manifest(run)
    pred = load(run, backend="torch")
    if not pred.supports_onnx:
        raise InputError(f"{run}: ONNX export covers text classifiers; this run is {manifest.get('task')}")
    model = pred.model
    if isinstance(model, PeftModel):  # LoRA: export the merged weights (this copy only)
        model = model.merge_and_unload()
    model.eval().float()

    rows = read_jsonl(run / "validation_predictions.jsonl")[:limit]
    texts, truth = [r["text"] for r in rows], [r["label"] for r in rows]
    ids = pred.encode(texts)

    folder = run / "onnx"
    tmp = run / ".onnx.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    t0 = time.perf_counter()
    try:
        fp32 = tmp / "model.onnx"
        sample = torch.tensor(np.stack([ids[0][:8]] * 2) if len(ids[0]) >= 8 else [[pred.pad_id] * 8] * 2)
        names = ["input_ids", "attention_mask"]
        args: tuple = (sample, torch.ones_like(sample))
        if "token_type_ids" in pred.tokenizer.model_input_names:
            names.append("token_type_ids")
            args = (*args, torch.zeros_like(sample))
        axes = {n: {0: "batch", 1: "sequence"} for n in names}
        axes["logits"] = {0: "batch"}
        # The tracer warns that shape checks in the attention code become constants: with the attention mask always
        # given they are, and the parity check below runs batches of many lengths through the exported graph.
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _LogitsOnly(model, names),
                args,
                str(fp32),
                input_names=names,
                output_names=["logits"],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
        seconds = time.perf_counter() - t0
        torch_probs = pred.predict_proba(texts)
        y = np.array([pred.labels.index(t) for t in truth])
        tried = []
        for recipe in RECIPES if quantize else ("fp32",):
            final = _quantized(fp32, recipe)
            onnx_probs = OnnxModel(final).probabilities(ids, pred.pad_id)
            figures = _parity(torch_probs, onnx_probs, y)
            tried.append({"recipe": recipe, **figures})
            if figures["agreement"] >= MIN_AGREEMENT and -figures["accuracy_change_points"] <= MAX_ACCURACY_DROP * 100:
                break
            if final != fp32:
                final.unlink()
        else:
            rule = f"agreement >= {MIN_AGREEMENT}, accuracy drop <= {MAX_ACCURACY_DROP * 100:g} points"
            said = "; ".join(
                f"{t['recipe']}: agreement {t['agreement']:.2%}, accuracy change {t['accuracy_change_points']:+.2f}"
                for t in tried
            )
            raise ParityFailed(
                f"{run}: no ONNX export passes the parity check on {len(texts)} held-out examples ({said}; needed "
                f"{rule}); nothing kept"
            )
        for other in tmp.glob("*.onnx"):
            if other != final:
                other.unlink()
        figures = {
            "file": f"onnx/{final.name}",
            "quantized": None if recipe == "fp32" else recipe,
            "opset": OPSET,
            "examples": len(texts),
            **figures,
            "size_mb": round(final.stat().st_size / 1e6, 2),
            "export_seconds": round(seconds, 2),
            "rule": f"agreement >= {MIN_AGREEMENT}, accuracy drop <= {MAX_ACCURACY_DROP * 100:g} points",
            "tried": tried,
        }
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    manifest["onnx"] = figures
    write_json(run / "manifest.json", manifest)
    return figures


# Tried in order, the fastest first; the first that passes the parity check is kept. Dynamic int8 weights on every
# matrix product (per output channel) is the fastest; when that moves too many held-out predictions (low-margin
# models), int8 on the attention projections only; then fp32 ONNX (still faster than eager torch on CPU).
RECIPES = ("int8", "int8-attention", "fp32")


def _quantized(fp32: Path, recipe: str) -> Path:
    if recipe == "fp32":
        return fp32
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    products = [n.name for n in onnx.load(str(fp32), load_external_data=False).graph.node if n.op_type in MATMULS]
    exclude = [] if recipe == "int8" else [n for n in products if "attention" not in n and "attn" not in n]
    out = fp32.with_name(f"model.{recipe}.onnx")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer's advice to pre-process, logged on every call
    try:
        quantize_dynamic(
            str(fp32),
            str(out),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=list(MATMULS),
            nodes_to_exclude=exclude,
        )
    finally:
        root.setLevel(level)
    return out


MATMULS = ("MatMul", "Gemm")


def _parity(reference: np.ndarray, candidate: np.ndarray, y: np.ndarray) -> dict[str, float]:
    acc_ref = float(np.mean(reference.argmax(1) == y))
    acc_new = float(np.mean(candidate.argmax(1) == y))
    return {
        "agreement": round(float(np.mean(reference.argmax(1) == candidate.argmax(1))), 5),
        "accuracy_torch": round(acc_ref, 5),
        "accuracy_onnx": round(acc_new, 5),
        "accuracy_change_points": round((acc_new - acc_ref) * 100, 3),
        "max_probability_difference": round(float(np.abs(reference - candidate).max()), 5),
    }


class _LogitsOnly:
    """Positional inputs in a fixed order -> logits, for the exporter."""

    def __new__(cls, model: Any, names: list[str]) -> Any:
        import torch

        class Wrapper(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *tensors: Any) -> Any:
                return self.model(**dict(zip(names, tensors))).logits

        return Wrapper()
