"""Experiment trackers through Accelerate's tracker classes: TensorBoard (the default where installed), MLflow and
Weights & Biases. Each training phase of a run (the head warm start, the fine-tuning) is one tracker run named
after the run directory and the phase; its hyperparameters are the resolved training config.

  tensorboard   RUN/logs/tensorboard
  mlflow        $MLFLOW_TRACKING_URI, else a file store beside the runs (OUTPUT_DIR/mlruns, with
                MLFLOW_ALLOW_FILE_STORE set for it); experiment "tunesmith" (or $MLFLOW_EXPERIMENT_NAME)
  wandb         project $WANDB_PROJECT or "tunesmith"; WANDB_MODE=offline writes RUN/logs/wandb without a network
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from tunesmith.errors import ConfigError

TRACKERS = ("tensorboard", "mlflow", "wandb")
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
INSTALL = {"tensorboard": "tensorboard", "mlflow": "mlflow-skinny (or mlflow)", "wandb": "wandb"}


def chosen(report_to: list[str] | None) -> list[str]:
    """The trackers a config asks for; None: TensorBoard when it is installed. ConfigError for one that is not
    installed (checked before anything is written)."""
    if report_to is None:
        return ["tensorboard"] if importlib.util.find_spec("tensorboard") is not None else []
    missing = [t for t in report_to if importlib.util.find_spec(PACKAGES[t]) is None]
    if missing:
        raise ConfigError(
            f"train.report_to: {', '.join(missing)} not installed; pip install " + " ".join(INSTALL[t] for t in missing)
        )
    return list(dict.fromkeys(report_to))


def open_trackers(names: list[str], folder: Path, phase: str, params: dict[str, Any]) -> list[Any]:
    """Started Accelerate trackers for one phase, with the hyperparameters stored."""
    from accelerate.tracking import MLflowTracker, TensorBoardTracker, WandBTracker

    run_name = f"{folder.parent.name}/{phase}"
    out = []
    for name in names:
        if name == "tensorboard":
            tracker = TensorBoardTracker(run_name="", logging_dir=folder / "tensorboard")
        elif name == "mlflow":
            import mlflow

            uri = os.environ.get("MLFLOW_TRACKING_URI")
            if not uri:  # a local file store beside the runs; MLflow 3 wants this choice said explicitly
                uri = (folder.parent.parent / "mlruns").resolve().as_uri()
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            # Accelerate's tracker takes logging_dir as the artifact location only: without this, MLflow would
            # track into its own default (an mlflow.db in whatever folder the process runs in).
            mlflow.set_tracking_uri(uri)
            tracker = MLflowTracker(experiment_name="tunesmith", logging_dir=uri, run_name=run_name)
        else:
            (folder / "wandb").mkdir(parents=True, exist_ok=True)
            project = os.environ.get("WANDB_PROJECT", "tunesmith")  # Accelerate passes its run_name as the project
            tracker = WandBTracker(run_name=project, name=run_name, dir=str(folder))
        if hasattr(tracker, "start"):
            tracker.start()
        tracker.store_init_configuration(params)
        out.append(tracker)
    return out
