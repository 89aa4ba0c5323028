"""Kill -9 mid-run and resume: the same final weights as an uninterrupted run. SIGTERM saves and exits."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from safetensors.torch import load_file

from tests.conftest import tiny_config
from tunesmith.train.checkpoint import complete_checkpoints


def _weights_hash(run: Path) -> str:
    tensors = load_file(str(run / "model" / "model.safetensors"))
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].numpy().tobytes())
    return h.hexdigest()


def _config(tiny_model: Path, toy_data, out: Path, path: Path) -> Path:
    train, val = toy_data
    cfg = tiny_config(
        tiny_model,
        train,
        val,
        out,
        train__epochs=12,
        train__eval_every=10,
        train__checkpoint_every=5,
        train__early_stopping_patience=0,
        train__keep_checkpoints=3,
    )
    path.write_text(yaml.safe_dump(cfg))
    return path


def _start(cfg: Path, cache: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "TUNESMITH_CACHE": str(cache), "TUNESMITH_NO_PROGRESS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "tunesmith.cli", "train", str(cfg), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_checkpoint(out: Path, proc: subprocess.Popen, min_step: int) -> Path:
    deadline = time.time() + 300
    while time.time() < deadline:
        for run in out.glob("*/checkpoints"):
            done = complete_checkpoints(run)
            if done and int(done[-1].name.split("-")[1]) >= min_step:
                return run.parent
        assert proc.poll() is None, f"training ended before a checkpoint: {proc.communicate()}"
        time.sleep(0.005)
    raise AssertionError("no checkpoint appeared")


def _reference(tiny_model, toy_data, tmp_path) -> str:
    out = tmp_path / "ref"
    proc = _start(_config(tiny_model, toy_data, out, tmp_path / "ref.yaml"), tmp_path / "cache")
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    return _weights_hash(Path(stdout.strip().splitlines()[-1]))


def test_resume_after_sigkill_gives_identical_weights(tiny_model, toy_data, tmp_path):
    expected = _reference(tiny_model, toy_data, tmp_path)
    out = tmp_path / "killed"
    cfg = _config(tiny_model, toy_data, out, tmp_path / "k.yaml")
    proc = _start(cfg, tmp_path / "cache")
    run = _wait_for_checkpoint(out, proc, min_step=20)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "manifest.json").exists(), "the run was really cut short"
    resumed = _start(cfg, tmp_path / "cache", "--resume")
    stdout, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr
    assert Path(stdout.strip().splitlines()[-1]) == run
    import json

    manifest = json.loads((run / "manifest.json").read_text())
    assert "ckpt-" in manifest["fit"]["resumed_from"]
    assert _weights_hash(run) == expected


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tiny_model, toy_data, tmp_path):
    out = tmp_path / "term"
    proc = _start(_config(tiny_model, toy_data, out, tmp_path / "t.yaml"), tmp_path / "cache")
    run = _wait_for_checkpoint(out, proc, min_step=5)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "stopped by SIGTERM" in stderr and "Continue with --resume" in stderr and "Traceback" not in stderr
    last = complete_checkpoints(run / "checkpoints")[-1]
    assert str(last) in stderr, "the message names the checkpoint it saved"
