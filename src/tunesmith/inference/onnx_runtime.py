"""ONNX Runtime sessions for exported classifiers: what ``predict`` and ``serve`` use when a run has a checked
export (``tunesmith export RUN --onnx``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunesmith.runtime import available_cores
from tunesmith.train.batching import length_batches


class OnnxModel:
    """An ONNX Runtime session with the torch model's calling convention: ids in, probabilities out."""

    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or available_cores()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def probabilities(self, ids: list[np.ndarray], pad_id: int, max_batch: int = 64) -> np.ndarray:
        out: list[np.ndarray] = [None] * len(ids)  # type: ignore[list-item]
        for sel in length_batches([len(x) for x in ids], max_batch):
            longest = max(len(ids[i]) for i in sel)
            batch = np.full((len(sel), longest), pad_id, dtype=np.int64)
            mask = np.zeros((len(sel), longest), dtype=np.int64)
            for j, i in enumerate(sel):
                batch[j, : len(ids[i])] = ids[i]
                mask[j, : len(ids[i])] = 1
            feed = {"input_ids": batch, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.zeros_like(batch)
            logits = self.session.run(None, feed)[0].astype(np.float64)
            logits -= logits.max(axis=1, keepdims=True)
            probs = np.exp(logits)
            probs /= probs.sum(axis=1, keepdims=True)
            for j, i in enumerate(sel):
                out[i] = probs[j].astype(np.float32)
        return np.stack(out) if out else np.zeros((0, 0), np.float32)
