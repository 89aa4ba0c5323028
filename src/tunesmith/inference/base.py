"""The Predictor contract: a finished run, loaded and ready for use. One predictor class per task, in the task's
folder (``tasks/<task>/predictor.py``), registered under the task's name."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tunesmith.data.validate import Examples
from tunesmith.errors import InputError
from tunesmith.methods.base import ParityCheck
from tunesmith.registry import Registry


class Predictor:
    """What every loaded run offers; serving, the CLI and lifecycle use only this."""

    generates: ClassVar[bool] = False  # answers prompts (``generate``/``stream``) rather than classifying
    input_kind: ClassVar[str] = "text"  # what ``predict`` takes: "text", "image" or "row" (a column -> value mapping)
    supports_onnx: ClassVar[bool] = False  # ``tunesmith export --onnx`` can export it
    embeds: ClassVar[bool] = False  # ``predict`` gives vectors (an embedding run): served at /v1/embeddings too
    run_dir: Path
    manifest: dict[str, Any]
    model: Any
    labels: list[str] | None = None
    backend: str = "torch"

    @classmethod
    def load(cls, run: Path, manifest: dict[str, Any]) -> Predictor:
        raise NotImplementedError

    def use_onnx(self) -> None:
        raise InputError(f"{self.run_dir}: ONNX is not available for {self.manifest.get('task')} runs")

    def save_preprocessor(self, folder: Path) -> None:
        """Save what turns raw inputs into model inputs next to exported weights (a tokenizer)."""

    def predict(self, inputs: list[Any]) -> list[Any]:
        raise NotImplementedError

    def check_rows(self, rows: Any) -> list[dict[str, Any]]:
        """Rows (column -> value mappings) checked for what the model reads; InputError says what is wrong."""
        raise InputError(f"{self.run_dir}: this model takes {self.input_kind} inputs, not table rows")

    def predict_file(self, input_file: str | Path, output_file: str | Path, **options: Any) -> int:
        raise NotImplementedError

    def evaluate_file(self, path: str | Path) -> dict[str, Any]:
        raise NotImplementedError

    def parity_check(self) -> ParityCheck:
        raise NotImplementedError

    def example_scores(self, examples: Examples) -> np.ndarray:
        """One number per example whose mean is the task's gate metric (promotion gate, pairwise)."""
        raise NotImplementedError


PREDICTORS: Registry[type[Predictor]] = Registry("predictor")
