"""The workspace behind the dashboard, without a browser: what a run says of itself (finished, running, failed,
interrupted), live progress and the time left from the log, comparisons paired on the same held-out examples,
background jobs that stop with a checkpoint and resume, and path confinement."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.conftest import tiny_config
from tunesmith import api
from tunesmith.errors import InputError
from tunesmith.rundir import run_status, write_status
from tunesmith.workspace.compare import compare_runs
from tunesmith.workspace.progress import progress
from tunesmith.workspace.runs import headline


def fake_run(folder: Path, steps: int, total: int, seconds: float = 0.5) -> Path:
    (folder / "logs").mkdir(parents=True)
    (folder / "config.yaml").write_text(
        "task: text-classification\nmodel: m\nmethod: full\ntrain:\n  metric: accuracy\n"
    )
    lines = [{"time": 1.0, "phase": "train", "kind": "start", "step": 0, "total_steps": total, "epochs": 2}]
    lines += [{"time": 2.0 + i, "phase": "train", "kind": "step", "step": i, "epoch": i / 10, "loss": 1.0 / i,
               "lr": 1e-3, "samples_per_s": 32.0, "seconds": seconds} for i in range(1, steps + 1)]  # fmt: skip
    lines += [{"time": 9.0, "phase": "train", "kind": "eval", "step": 10, "epoch": 1.0, "loss": 0.3, "accuracy": 0.8}]
    text = "".join(json.dumps(x) + "\n" for x in lines) + '{"time": 9.5, "phase": "tr'  # a line cut short
    (folder / "logs" / "train.jsonl").write_text(text)
    return folder


def test_a_running_run_shows_its_step_the_time_left_and_the_report_charts(tmp_path):
    run = fake_run(tmp_path / "r", steps=12, total=40, seconds=0.5)
    write_status(run, "running")
    p = progress(run)
    assert p["status"] == "running" and (p["step"], p["total"]) == (12, 40)
    assert p["eta_s"] == pytest.approx(28 * 0.5)  # 28 steps left at the last 12 steps' mean of 0.5 s
    assert p["loss"] == pytest.approx(1 / 12) and p["samples_per_s"] == 32.0
    assert 0 <= p["elapsed_s"] < 60  # since its config was written, counting while it runs
    assert p["evaluations"] == [{"step": 10, "epoch": 1.0, "loss": 0.3, "accuracy": 0.8}]
    titles = " ".join(p["charts"])
    assert "Loss" in titles and "Selection-split accuracy per evaluation" in titles and "Learning rate" in titles


def test_a_run_whose_process_is_gone_reads_as_interrupted_and_a_failure_keeps_its_error(tmp_path):
    run = fake_run(tmp_path / "r", steps=3, total=10)
    write_status(run, "running")
    record = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**record, "pid": 2**22 + 12345}))  # no such process
    state = run_status(run)
    assert state["status"] == "interrupted" and "process is gone" in state["error"]
    assert progress(run)["eta_s"] is None  # no time left is promised for a run that is not running
    write_status(run, "failed", error="ValueError: bad things")
    (run / "checkpoints").mkdir()
    assert run_status(run) == {**json.loads((run / "status.json").read_text()), "resumable": True}


def test_the_headline_is_the_verdicts_comparison_with_its_interval():
    metrics = {
        "accuracy": 0.87,
        "verdict": {"status": "better", "text": "Better…", "against": "probe"},
        "tuned_minus": {"probe": {"accuracy": {"difference": 0.027, "ci_low": 0.007, "ci_high": 0.05}}},
    }
    h = headline(metrics)
    assert h == {"status": "better", "text": "Better…", "metric": "accuracy", "value": 0.87, "against": "probe",
                 "difference": 0.027, "ci_low": 0.007, "ci_high": 0.05}  # fmt: skip
    lm = {"tuned": {"token_f1": 0.139}, "verdict": {"status": "better", "text": "t", "against": "base"},
          "tuned_minus_base": {"token_f1": {"difference": 0.042, "ci_low": 0.007, "ci_high": 0.084}}}  # fmt: skip
    assert headline(lm)["value"] == 0.139 and headline(lm)["metric"] == "token_f1"
    assert headline({}) is None


def _finished(folder: Path, correct: list[bool], fingerprint: str, epochs: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"task: text-classification\ntrain:\n  epochs: {epochs}\n  seed: 1\n")
    manifest = {"status": "complete", "data": {"fingerprint": fingerprint},
                "metrics": {"accuracy": sum(correct) / len(correct)}}  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps(manifest))
    rows = [{"line": i + 2, "label": "a", "predicted": "a" if ok else "b"} for i, ok in enumerate(correct)]
    (folder / "validation_predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_compare_pairs_runs_on_the_same_examples_and_refuses_an_interval_across_data(tmp_path):
    a = _finished(tmp_path / "a", [True] * 60 + [False] * 40, "fp1", 1)
    b = _finished(tmp_path / "b", [True] * 90 + [False] * 10, "fp1", 3)
    c = _finished(tmp_path / "c", [True] * 90 + [False] * 10, "fp2", 3)
    out = compare_runs([a, b, c])
    assert out["config"] == [["train.epochs", 1, 3, 3]] and out["config_partial"] == []
    assert out["metrics"] == [["accuracy", 0.6, 0.9, 0.9]]
    paired, unpaired = out["differences"]
    assert paired["difference"] == pytest.approx(0.3) and paired["n"] == 100
    assert 0.18 < paired["ci_low"] < 0.3 < paired["ci_high"] < 0.42 and paired["significant"]
    assert "difference" not in unpaired and "different held-out data" in unpaired["why"]


def test_paths_are_confined_to_the_workspace_folders(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "outside.csv").write_text("x")
    (tmp_path / "home" / "link.csv").symlink_to(tmp_path / "outside.csv")
    ws = api.workspace([tmp_path / "home", tmp_path / "other"])
    assert ws.folders.confine(str(tmp_path / "other"), "p") == (tmp_path / "other").resolve()
    for bad in ("../outside.csv", str(tmp_path / "outside.csv"), "link.csv", "/etc/passwd", "", "a\x00b"):
        with pytest.raises(InputError):
            ws.folders.confine(bad, "path")
    with pytest.raises(InputError, match="not allowed"):
        ws.upload("../../x.csv/..", b"a")
    with pytest.raises(InputError, match="allowed kinds"):
        ws.upload("x.exe", b"a")


def wait(job_id: str, ws, seconds: float = 180):
    deadline = time.time() + seconds
    while time.time() < deadline:
        job = ws.jobs.get(job_id)
        if job.status != "running":
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still running after {seconds} s: {ws.jobs.log(job_id)[-2000:]}")


def test_a_background_training_stops_with_a_checkpoint_resumes_and_finishes(tiny_model, toy_data, tmp_path,
                                                                            monkeypatch):  # fmt: skip
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    train, val = toy_data
    ws = api.workspace([tmp_path])
    raw = tiny_config(tiny_model, train, val, tmp_path / "runs", train__epochs=60, train__checkpoint_every=5)
    config = ws.write_config(raw, "long")
    job = ws.train(str(config))
    run = Path(job.run)
    deadline = time.time() + 120
    while time.time() < deadline and not (run.is_dir() and progress(run)["step"] >= 12):
        time.sleep(0.2)
    assert ws.run(str(run)).status == "running" and os.getpid() != job.pid
    ws.jobs.stop(job.id)
    assert wait(job.id, ws).status == "stopped"
    deadline = time.time() + 60
    while time.time() < deadline and run_status(run)["status"] == "running":
        time.sleep(0.2)
    state = ws.run(str(run))
    assert state.status == "interrupted" and state.resumable and "SIGTERM" in (state.error or "")
    resumed = ws.resume(str(run))
    done = wait(resumed.id, ws, 240)
    assert done.status == "done", ws.jobs.log(resumed.id)[-3000:]
    assert ws.run(str(run)).status == "finished"
    log = [json.loads(x) for x in (run / "logs" / "train.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in log].count("resume") == 1
    assert done.argv[0] == "train" and done.argv[-2:] == ["--resume", str(run)]
    assert "-text-classification-full-" in run.name  # the method the config names


def test_a_background_training_of_a_config_without_a_method_names_its_folder_auto(tiny_model, toy_data, tmp_path,
                                                                                   monkeypatch):  # fmt: skip
    """The method is chosen from the data in the child process, after the folder is named."""
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    train, val = toy_data
    ws = api.workspace([tmp_path])
    raw = tiny_config(tiny_model, train, val, tmp_path / "runs", train__epochs=1)
    del raw["method"]
    job = ws.train(str(ws.write_config(raw, "open")))
    assert "-text-classification-auto-" in Path(job.run).name
    assert wait(job.id, ws).status == "done", ws.jobs.log(job.id)[-3000:]
    assert ws.run(job.run).status == "finished"
