"""Runs, resume and the store: every instant of a run's finish leaves a resumable or a complete run; a resume
continues the same training; the store registers only what it can vouch for, repairs what it can, and loads
nothing from outside a run or version."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

import tunesmith
from tests.conftest import make_rows, tiny_config, write_csv
from tunesmith.cli import main
from tunesmith.errors import ConfigError, InputError
from tunesmith.store import ModelStore


class Killed(BaseException):
    """Stands for SIGKILL at one instant: nothing after it runs."""


def _resumable_config(tiny_model, toy_data, out, **kw) -> dict:
    return tiny_config(tiny_model, *toy_data, out, train__epochs=6, train__eval_every=10, train__checkpoint_every=5,
                       train__early_stopping_patience=0, eval__probe=False, **kw)  # fmt: skip


def _interrupt_at(step: int):
    def on_eval(record):
        if record["step"] >= step:
            raise Killed()
        return False

    return on_eval


def test_a_kill_at_each_instant_of_the_finish_leaves_a_resumable_or_complete_run(
    tiny_model, toy_data, tmp_path, cache_dir, monkeypatch
):
    import tunesmith.pipeline.finetune as fin

    cfg = _resumable_config(tiny_model, toy_data, tmp_path / "runs")
    real_write, real_rmtree = fin.write_json, fin.shutil.rmtree

    def kill_on_manifest(path, data):
        if Path(path).name == "manifest.json":
            raise Killed()
        real_write(path, data)

    monkeypatch.setattr(fin, "write_json", kill_on_manifest)  # killed after the export, before the manifest
    with pytest.raises(Killed):
        tunesmith.finetune(cfg)
    (run,) = (tmp_path / "runs").iterdir()
    assert (run / "model").is_dir() and not (run / "manifest.json").exists()
    assert any((run / "checkpoints").iterdir()), "no manifest yet: the checkpoints must still be there"
    monkeypatch.setattr(fin, "write_json", real_write)

    def kill_while_cleaning(path, *a, **k):
        raise Killed()

    monkeypatch.setattr(fin.shutil, "rmtree", kill_while_cleaning)  # killed while the checkpoints go
    with pytest.raises(Killed):
        tunesmith.finetune(cfg, resume=run)
    monkeypatch.setattr(fin.shutil, "rmtree", real_rmtree)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and "ckpt-" in manifest["fit"]["resumed_from"]
    assert tunesmith.load(run).predict(["great superb film"])[0].label in ("pos", "neg")


def test_resume_continues_the_same_training_and_logs_each_step_once(tiny_model, toy_data, tmp_path, cache_dir):
    cfg = _resumable_config(tiny_model, toy_data, tmp_path / "runs")
    with pytest.raises(Killed):
        tunesmith.finetune(cfg, on_eval=_interrupt_at(20))
    (run,) = (tmp_path / "runs").iterdir()
    log = (run / "logs" / "train.jsonl").read_text().splitlines()
    assert max(json.loads(x).get("step", 0) for x in log) >= 20
    saved = (run / "config.yaml").read_text()
    changed = tiny_config(tiny_model, *toy_data, tmp_path / "runs", train__epochs=6, train__eval_every=10,
                          train__checkpoint_every=5, train__early_stopping_patience=0, eval__probe=False,
                          train__batch_size=8, train__learning_rate=1e-3)  # fmt: skip
    with pytest.raises(ConfigError) as exc:
        tunesmith.finetune(changed, resume=run)
    assert "train.batch_size: 16 -> 8" in str(exc.value) and "train.learning_rate" in str(exc.value)
    assert (run / "config.yaml").read_text() == saved, "a refused resume leaves the run as it was"
    finished = tunesmith.finetune(
        _resumable_config(tiny_model, toy_data, tmp_path / "runs", train__threads=2), resume=run
    )  # fmt: skip  (threads may change: how, not what, is trained)
    steps = [json.loads(x) for x in (run / "logs" / "train.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in steps if r["kind"] == "step" and r["phase"] == steps[-1]["phase"]]
    assert steps == sorted(set(steps)) and steps[-1] == finished.manifest["fit"]["steps"]


@pytest.fixture()
def store(tmp_path, monkeypatch) -> ModelStore:
    monkeypatch.setenv("TUNESMITH_STORE", str(tmp_path / "store"))
    return ModelStore(tmp_path / "store")


@pytest.fixture(scope="module")
def good_and_bad(tiny_model, tmp_path_factory):
    """Two finished runs on the same data: a trained one and a near-untrained one (the gate must stop it)."""
    out = tmp_path_factory.mktemp("gate-runs")
    rows = make_rows(320, seed=1)
    train, val = write_csv(out / "train.csv", rows[:240]), write_csv(out / "val.csv", rows[240:])
    common = {"cache_dir": str(out / "cache"), "eval__probe": False, "classifier__keep_better": False}
    good = tunesmith.finetune(tiny_config(tiny_model, train, val, out / "runs", **common))
    bad = tunesmith.finetune(tiny_config(tiny_model, train, val, out / "runs", train__epochs=1,
                                         train__learning_rate=1e-7, full__warm_start_head=False, **common))  # fmt: skip
    assert good.metrics["accuracy"] - bad.metrics["accuracy"] > 0.2
    return good, bad, train


def test_register_promote_goes_through_the_gate(good_and_bad, store, capsys):
    good, bad, _ = good_and_bad
    assert main(["models", "register", str(good.path), "--name", "m", "--promote", "prod"]) == 0
    assert main(["models", "register", str(bad.path), "--name", "m", "--promote", "prod"]) == 3
    assert "m@prod stays at v1" in capsys.readouterr().err
    assert store.version("m@prod")["version"] == 1 and store.version("m")["version"] == 2


def test_register_refuses_data_that_changed_since_training(good_and_bad, store, tmp_path):
    good, _, train = good_and_bad
    copy = tmp_path / "run"
    shutil.copytree(good.path, copy)
    original = train.read_bytes()
    try:
        train.write_bytes(original.replace(b"great", b"grand", 1))
        with pytest.raises(InputError, match="not what this run was trained on"):
            store.register(copy, "m")
        assert store.list() == []
    finally:
        train.write_bytes(original)
    assert store.register(copy, "m")["data"]["validation_set"]


def test_concurrent_promotions_are_serialized(good_and_bad, store, monkeypatch):
    import tunesmith.lifecycle.promote as promote

    good, _, _ = good_and_bad
    for _ in range(3):
        store.register(good.path, "m")
    store.promote("m@v1", "prod")
    inside, overlaps = [], []
    real = promote._compare

    def slow_compare(*a, **k):
        inside.append(1)
        if len(inside) > 1:
            overlaps.append(1)
        time.sleep(0.3)
        out = real(*a, **k)
        inside.pop()
        return out

    monkeypatch.setattr(promote, "_compare", slow_compare)
    threads = [threading.Thread(target=tunesmith.api.promote, args=(f"m@v{v}", "prod")) for v in (2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not overlaps, "two gates ran against the same current version at once"
    moves = [e for e in store.history("m") if e["action"] == "promote"]
    previous = [json.loads(e["detail"])["previous"] if isinstance(e["detail"], str) else e["detail"]["previous"]
                for e in moves[1:]]  # fmt: skip
    assert sorted(previous) in ([1, 2], [1, 3]), "the second move saw the first one's result"


def test_a_damaged_object_is_repaired_by_registering_again(good_and_bad, store):
    good, _, _ = good_and_bad
    store.register(good.path, "m")
    row = store.version("m@v1")
    meta = next(m for rel, m in row["files"].items() if rel.endswith(".safetensors"))
    obj = store.objects.path(meta["sha256"])
    os.chmod(obj, 0o644)
    obj.write_bytes(b"\0" * meta["size"])  # same size, other bytes
    again = store.register(good.path, "m")
    assert again["version"] == 2
    for ref in ("m@v1", "m@v2"):
        assert tunesmith.load(ref).predict(["great superb film"])[0].label == tunesmith.load(good.path).predict(
            ["great superb film"])[0].label  # fmt: skip


def test_partial_copies_of_killed_registrations_are_removed(good_and_bad, store):
    good, _, _ = good_and_bad
    root = store.objects.root
    root.mkdir(parents=True)
    dead = root / ".incoming.999999999.abcd"
    mine = root / f".incoming.{os.getpid()}.beef"  # a registration still running in this process
    dead.write_bytes(b"partial")
    mine.write_bytes(b"partial")
    store.register(good.path, "m")
    assert not dead.exists() and mine.exists()


@pytest.fixture(scope="module")
def lora_run(tiny_model, toy_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora-run")
    cfg = tiny_config(tiny_model, *toy_data, out / "runs", method="lora", train__epochs=1, eval__probe=False,
                      cache_dir=str(out / "cache"), classifier__keep_better=False)  # fmt: skip
    return tunesmith.finetune(cfg)


@pytest.mark.parametrize(
    "key, value, says",
    [
        (("export", "adapter"), "../../elsewhere", "points outside the run"),
        (("export", "adapter"), "/etc", "expected a path inside the run"),
        (("base_model", "path"), "/tmp", "is not the folder its spec names"),
        (("base_model", "fingerprint"), "0" * 16, "not the one this run was trained on"),
    ],
)
def test_manifest_paths_are_confined_and_the_base_model_verified(lora_run, tmp_path, key, value, says):
    run = tmp_path / "run"
    shutil.copytree(lora_run.path, run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest[key[0]][key[1]] = value
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=says):
        tunesmith.load(run)


def test_full_weights_and_onnx_paths_are_confined(good_and_bad, tmp_path):
    good, _, _ = good_and_bad
    for key, value in ((("export", "path"), "../../.."), (("onnx", "file"), "/etc/passwd")):
        run = tmp_path / f"run-{key[0]}"
        shutil.copytree(good.path, run)
        manifest = json.loads((run / "manifest.json").read_text())
        manifest.setdefault(key[0], {})[key[1]] = value
        manifest.setdefault("onnx", {}).setdefault("quantized", None)
        (run / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(InputError, match="run"):
            model = tunesmith.load(run)
            model.use_onnx()
