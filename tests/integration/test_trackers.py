"""Experiment trackers through Accelerate: a real MLflow file store and Weights & Biases in offline mode receive
the run's hyperparameters, loss curve and evaluations; a tracker that is not installed is refused up front."""

from __future__ import annotations

import json

import pytest
import yaml

import tunesmith
from tests.conftest import tiny_config
from tunesmith.cli import main


def test_mlflow_and_wandb_receive_the_curves(tiny_model, toy_data, tmp_path, cache_dir, monkeypatch):
    from mlflow.tracking import MlflowClient

    store = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks file stores to be chosen explicitly
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = tiny_config(tiny_model, *toy_data, tmp_path / "runs", train__epochs=2, eval__probe=False,
                      train__report_to=["tensorboard", "mlflow", "wandb"])  # fmt: skip
    run = tunesmith.finetune(cfg)
    steps = [json.loads(x) for x in (run.path / "logs" / "train.jsonl").read_text().splitlines()]
    phase = [r for r in steps if r["kind"] == "step"][-1]["phase"]  # the fine-tuning phase
    fine = [r for r in steps if r["kind"] == "step" and r["phase"] == phase]
    client = MlflowClient(tracking_uri=store)
    (experiment,) = [e for e in client.search_experiments() if e.name == "tunesmith"]
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    mine = runs[f"{run.path.name}/{phase}"]
    history = client.get_metric_history(mine.info.run_id, f"{phase}/loss")
    assert [m.step for m in history] == [r["step"] for r in fine]
    assert [m.value for m in history] == pytest.approx([r["loss"] for r in fine])
    assert float(mine.data.params["learning_rate"]) == pytest.approx(0.003) and mine.data.params["batch_size"] == "16"
    assert any(k.startswith(f"{phase}/eval_") for k in mine.data.metrics)
    # W&B's offline run file (protobuf records): every logged step's loss, under its key, as JSON
    (offline,) = (run.path / "logs" / "wandb").glob("offline-run-*/run-*.wandb")
    record = offline.read_bytes()
    assert record.count(f"{phase}/loss".encode()) >= len(fine)  # each step in the history (and the summary)
    assert all(json.dumps(r["loss"]).encode() in record for r in fine)
    assert b"learning_rate" in record and f"{run.path.name}/{phase}".encode() in record
    assert list((run.path / "logs" / "tensorboard").glob("events.out.tfevents.*"))


def test_a_tracker_that_is_unknown_or_missing_is_refused_up_front(
    tiny_model, toy_data, tmp_path, cache_dir, capsys, monkeypatch
):
    import tunesmith.train.trackers as trackers

    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tiny_model, *toy_data, tmp_path / "runs", train__report_to=["comet"])))
    assert main(["train", str(path)]) == 2
    assert "train.report_to[0]: got 'comet'; allowed: tensorboard, mlflow, wandb" in capsys.readouterr().err
    monkeypatch.setitem(trackers.PACKAGES, "wandb", "a_package_that_is_not_installed")
    path.write_text(yaml.safe_dump(tiny_config(tiny_model, *toy_data, tmp_path / "runs", train__report_to=["wandb"])))
    assert main(["train", str(path)]) == 2
    assert "wandb not installed; pip install wandb" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not cache_dir.exists()


def test_mlflow_without_a_tracking_uri_writes_beside_the_runs(tiny_model, toy_data, tmp_path, cache_dir, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    cfg = tiny_config(tiny_model, *toy_data, tmp_path / "runs", train__epochs=1, eval__probe=False,
                      train__report_to=["mlflow"])  # fmt: skip
    run = tunesmith.finetune(cfg)
    assert not (tmp_path / "mlflow.db").exists(), "nothing tracked into the working folder"
    client = MlflowClient(tracking_uri=(tmp_path / "runs" / "mlruns").as_uri())
    names = [r.info.run_name for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert any(n.startswith(run.path.name) for n in names)
