"""The public facade: finetune, validate, evaluate, predict, load, merge_adapter. Each call resolves its
arguments and hands over to the pipeline or a predictor; nothing is implemented here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunesmith import config as cfgmod
from tunesmith.config import Config
from tunesmith.data.validate import DataReport, Examples
from tunesmith.inference.base import Predictor
from tunesmith.rundir import Run

ConfigLike = Config | str | Path | dict


def validate(config: ConfigLike, overrides: list[str] | tuple[str, ...] = ()) -> DataReport:
    """Run every data check; raises DataError on fatal problems, returns the report (warnings, stats)."""
    from tunesmith.pipeline.finetune import validate as check

    return check(cfgmod.coerce(config, overrides))


def finetune(
    config: ConfigLike,
    overrides: list[str] | tuple[str, ...] = (),
    resume: bool | str | Path = False,
    run_dir: str | Path | None = None,
    on_eval: Callable[[dict[str, Any]], bool] | None = None,
    select: Callable[[Examples, Examples], tuple[Examples, Examples]] | None = None,
) -> Run:
    """Check the data, train with the configured method, evaluate against baselines, write the run.

    ``resume=True`` continues the newest unfinished run under ``output_dir``; a path names the run.
    ``on_eval(record)`` sees every validation evaluation during training (True stops training);
    ``select(train, val)`` may narrow the data after reading (the planner's probe)."""
    from tunesmith.pipeline.finetune import finetune as run

    return run(cfgmod.coerce(config, overrides), resume=resume, run_dir=run_dir, on_eval=on_eval, select=select)


def load(run: str | Path, backend: str = "auto") -> Predictor:
    """A finished run, ready for use: a classifier's ``.predict(inputs)`` gives labels and probabilities; a
    generator's ``.generate(prompt)`` answers (``.stream(prompt)`` yields the answer as it is written).

    ``run`` is a run directory or a registered model (``name``, ``name@v2``, ``name@prod``), whose files are
    checked against their registered checksums before use. ``backend``: ``auto`` (a classifier's checked ONNX
    export when present), ``torch`` or ``onnx``."""
    from tunesmith.inference import load as load_run
    from tunesmith.store import resolve_run

    return load_run(resolve_run(run), backend)


def evaluate(run: str | Path, data: str | Path) -> dict[str, Any]:
    """Metrics of a finished run's model on a file like its validation data."""
    return load(run).evaluate_file(data)


def predict(run: str | Path, input_file: str | Path, output_file: str | Path, **options: Any) -> int:
    """Predict (classify, or answer) every row of input_file; returns the row count. Generation takes
    ``max_new_tokens``, ``temperature``, ``top_p`` and ``seed``."""
    return load(run).predict_file(input_file, output_file, **options)


def merge_adapter(run_dir: str | Path) -> Path:
    """Merge a LoRA run's adapter into full weights at ``RUN/model``, kept only if it reproduces base + adapter
    on the run's golden held-out examples."""
    from tunesmith.pipeline.export import merge_adapter as merge

    return merge(run_dir)


def export_onnx(run_dir: str | Path, quantize: bool = True, limit: int = 2000) -> dict[str, Any]:
    """ONNX export of a text classifier (int8 where it passes the held-out parity check)."""
    from tunesmith.pipeline.onnx_export import export_onnx as export

    return export(run_dir, quantize=quantize, limit=limit)
