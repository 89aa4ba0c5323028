"""CLI round trips: train -> eval -> predict, exit codes, output contracts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import make_rows, tiny_config, write_csv


def _cli(*args: str, env_cache: Path) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "TUNESMITH_CACHE": str(env_cache), "TUNESMITH_NO_PROGRESS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tunesmith.cli", *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_train_eval_predict_round_trip(tiny_model, toy_data, tmp_path):
    train, val = toy_data
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_config(tiny_model, train, val, tmp_path / "runs")))
    res = _cli("train", str(cfg_path), "--set", "train.epochs=3", "--set", "train.seed=3", env_cache=tmp_path / "c")
    assert res.returncode == 0, res.stderr
    run = Path(res.stdout.strip().splitlines()[-1])
    assert run.is_dir() and run.parent == tmp_path / "runs", "train prints the run directory last"
    assert "linear probe" in res.stdout and "tuned" in res.stdout
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"] == 3

    ev = _cli("eval", str(run), "--data", str(val), "--json", env_cache=tmp_path / "c")
    assert ev.returncode == 0, ev.stderr
    metrics = json.loads(ev.stdout)
    assert metrics["n"] == 80 and {"accuracy", "macro_f1", "per_class", "ece"} <= set(metrics)
    report = json.loads((run / "report.json").read_text())
    assert abs(metrics["accuracy"] - report["summary"]["accuracy"]) < 1e-9, "eval agrees with the run's report"
    lo, hi = metrics["intervals"]["accuracy"]
    assert lo <= metrics["accuracy"] <= hi
    text = _cli("eval", str(run), "--data", str(val), env_cache=tmp_path / "c").stdout
    assert f"(95% CI {100 * lo:.1f} to {100 * hi:.1f})" in text and "note: only 80 examples" in text

    import csv

    with open(val, encoding="utf-8") as fh:
        val_rows = list(csv.DictReader(fh))[:12]
    new = write_csv(tmp_path / "new.csv", [{"text": r["text"], "id": f"x{i}"} for i, r in enumerate(val_rows)])
    for out in (tmp_path / "pred.jsonl", tmp_path / "pred.csv"):
        pr = _cli("predict", str(run), "--input", str(new), "--output", str(out), env_cache=tmp_path / "c")
        assert pr.returncode == 0, pr.stderr
    rows = [json.loads(x) for x in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"x{i}" for i in range(12)]
    own = [json.loads(x) for x in (run / "validation_predictions.jsonl").read_text().splitlines()]
    seen = {r["text"]: r for r in own}
    for r in rows:
        assert r["label"] == seen[r["text"]]["predicted"], "predict agrees with the run's own evaluation"
        assert abs(r["score"] - seen[r["text"]]["score"]) < 1e-4
        assert abs(r["p_pos"] + r["p_neg"] - 1) < 1e-4
    assert (tmp_path / "pred.csv").read_text().splitlines()[0].startswith("text,id,label,score")


def test_exit_codes_and_messages(tiny_model, toy_data, tmp_path):
    train, val = toy_data
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**tiny_config(tiny_model, train, val, tmp_path / "runs"), "methd": "lora"}))
    res = _cli("train", str(bad), env_cache=tmp_path / "c")
    assert res.returncode == 2 and "methd: unknown key (did you mean 'method'?)" in res.stderr
    assert str(bad) in res.stderr and "Traceback" not in res.stderr, "a key from the file names the file"
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(tiny_config(tiny_model, train, val, tmp_path / "runs")))
    res = _cli("train", str(good), "--set", "train.batch_size=-1", env_cache=tmp_path / "c")
    assert res.returncode == 2 and "train.batch_size: got -1; allowed: a number >= 1" in res.stderr
    res = _cli("train", str(good), "--set", "train.epochz=1", env_cache=tmp_path / "c")
    assert res.returncode == 2 and "--set train.epochz: 'epochz' is not a key of train (did you mean 'epochs'?)" in (
        res.stderr
    )
    res = _cli("trian", str(good), env_cache=tmp_path / "c")
    assert res.returncode == 2 and "did you mean 'train'?" in res.stderr
    res = _cli("eval", str(tmp_path), "--data", str(val), env_cache=tmp_path / "c")
    assert res.returncode == 2 and "not a tunesmith run directory" in res.stderr
    res = _cli("validate", str(good), env_cache=tmp_path / "c")
    assert res.returncode == 0 and "no fatal problems" in res.stdout
    assert "\n  train examples" in res.stdout and "{'" not in res.stdout, "figures read as text, not Python reprs"
    assert not (tmp_path / "runs").exists()


def test_eval_refuses_labels_the_model_does_not_know(tiny_model, toy_data, tmp_path):
    import tunesmith

    train, val = toy_data
    run = tunesmith.finetune(tiny_config(tiny_model, train, val, tmp_path / "runs", train__epochs=1))
    rows = make_rows(6, 2)
    rows[1]["label"] = "other"
    data = write_csv(tmp_path / "eval.csv", rows)
    res = _cli("eval", str(run.path), "--data", str(data), "--json", env_cache=tmp_path / "c")
    assert res.returncode == 2 and f"{data}:line 3 [label]" in res.stderr and "'other'" in res.stderr


def test_models_lists_the_catalog(tmp_path):
    res = _cli("models", env_cache=tmp_path / "c")
    assert res.returncode == 0 and "minilm-l6" in res.stdout and "text-classification" in res.stdout


def test_validate_says_truncation_once_in_its_own_words(tiny_model, tmp_path):
    rows = make_rows(60, seed=3)
    for r in rows:
        r["text"] = " ".join([r["text"]] * 20)  # 200-300 tokens: past the tokenizer's 128
    train = write_csv(tmp_path / "train.csv", rows[:40])
    val = write_csv(tmp_path / "validation.csv", rows[40:])
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tiny_model, train, val, tmp_path / "runs")))
    res = _cli("validate", str(cfg), env_cache=tmp_path / "c")
    assert res.returncode == 0, res.stderr
    assert "Token indices sequence length" not in res.stdout + res.stderr, "the tokenizer's notice stays quiet"
    assert "longer than max_length" in res.stdout + res.stderr
