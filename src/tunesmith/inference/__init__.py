"""Use a finished run: one predictor per task (``tasks/<task>/predictor.py``), found by the run's task name."""

from __future__ import annotations

import importlib
from pathlib import Path

from tunesmith.errors import InputError
from tunesmith.inference.base import PREDICTORS, Predictor
from tunesmith.rundir import read_manifest
from tunesmith.tasks import get_task

BACKENDS = ("auto", "torch", "onnx")


def predictor_class(task: str) -> type[Predictor]:
    """The predictor registered for ``task``: the ``predictor`` module beside the task's own module."""
    package = get_task(task).__module__.rsplit(".", 1)[0]
    importlib.import_module(f"{package}.predictor")
    return PREDICTORS.get(task)


def load(run_dir: str | Path, backend: str = "auto") -> Predictor:
    """The predictor of a finished run directory. ``backend``: ``auto`` uses the run's checked ONNX export when
    it has one, ``torch`` never does, ``onnx`` requires it."""
    run = Path(run_dir)
    manifest = read_manifest(run)
    if manifest.get("status") != "complete":
        raise InputError(f"{run}: the run did not finish; resume it with `tunesmith train CONFIG --resume {run}`")
    if backend not in BACKENDS:
        raise InputError(f"backend {backend!r}: allowed are {', '.join(BACKENDS)}")
    if backend == "onnx" and not manifest.get("onnx"):
        raise InputError(f"{run}: no ONNX export; run `tunesmith export {run} --onnx` first")
    from tunesmith.runtime import quiet_libraries

    quiet_libraries()  # predict, eval and serve print their own lines, not the libraries' loading bars
    predictor = predictor_class(manifest["task"]).load(run, manifest)
    if backend != "torch" and manifest.get("onnx"):
        predictor.use_onnx()
    return predictor
