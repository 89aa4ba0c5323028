"""Updating a registered model on new data: replay, the promotion gate, lineage, the report."""

from __future__ import annotations

import json
import os
import re

import pytest

import tunesmith
from tests.conftest import make_rows, tiny_config, write_csv
from tunesmith.cli import main
from tunesmith.errors import InputError
from tunesmith.lifecycle.promote import GateRefused, promote_checked
from tunesmith.lifecycle.update import update
from tunesmith.store import ModelStore


@pytest.fixture(scope="module")
def registered(tiny_model, toy_data, tmp_path_factory):
    """v1 trained on balanced data and promoted to @prod; new data whose labels are 97% 'neg'."""
    root = tmp_path_factory.mktemp("update")
    os.environ["TUNESMITH_CACHE"] = str(root / "cache")
    run = tunesmith.finetune(tiny_config(tiny_model, *toy_data, root / "runs"))
    store = ModelStore(root / "store")
    store.register(run.path, "sent")
    store.promote("sent@v1", "prod")
    new = make_rows(600, seed=5)
    neg, pos = [r for r in new if r["label"] == "neg"], [r for r in new if r["label"] == "pos"]
    train = write_csv(root / "new_train.csv", neg[:200] + pos[:6])
    val = write_csv(root / "new_val.csv", neg[200:260] + pos[200:202])
    return store, train, val, root


def test_forgetting_is_caught_without_replay_and_passes_with_it(registered):
    store, train, val, _ = registered
    refused = update("sent@prod", train, val, replay_ratio=0.0, max_regression=5.0, store=store,
                     overrides=["train.epochs=6"])  # fmt: skip
    old_set = next(c for c in refused.comparisons if c.eval_set == "sent@v1")
    assert not refused.passed and not refused.promoted
    assert old_set.regression > 5.0 and old_set.ci_high < 0  # worse, and the interval says so
    assert refused.reasons and "sent@v1" in refused.reasons[0]
    assert store.version("sent@prod")["version"] == 1  # @prod did not move
    assert refused.replay == "no replay"

    passed = update("sent@prod", train, val, replay_ratio=1.0, max_regression=5.0, store=store,
                    overrides=["train.epochs=6"])  # fmt: skip
    old_set = next(c for c in passed.comparisons if c.eval_set == "sent@v1")
    assert passed.passed and passed.promoted and old_set.regression <= 5.0
    replayed, new = map(int, re.search(r"(\d+) rows replayed .*ratio 1 to (\d+) new", passed.replay).groups())
    assert abs(replayed - new) <= 1 and new == 206 - 31  # one earlier row per new one; 31 rows are the selection
    assert store.version("sent@prod")["version"] == int(passed.version.split("@v")[1])
    assert store.lineage(passed.version) == [passed.version, "sent@v1"]
    # the refused version's own set is an earlier set for the next update, and both sides are recorded
    assert {c.eval_set for c in passed.comparisons} == {"sent@v1", refused.version, "new data"}
    report = json.loads((passed.run / "update_report.json").read_text())
    assert report["passed"] and len(report["comparisons"]) == 3
    assert "REGRESSED" in (refused.run / "update_report.html").read_text()
    diff = store.diff("sent@v1", passed.version)
    assert any(r["eval_set"] == passed.version and r["a"] is not None and r["b"] is not None for r in diff)


def test_replay_leaves_out_examples_of_earlier_evaluation_sets(registered, tmp_path):
    store, train, val, root = registered
    # v1's validation rows appear in the new training file: they must not be replayed nor break the gate
    res = update("sent@v1", train, val, replay_ratio=0.5, store=store, max_regression=100.0,
                 overrides=["train.epochs=1"])  # fmt: skip
    report = json.loads((res.run / "data_report.json").read_text())
    assert "replayed" in report["stats"]["replay"]
    assert res.alias is None and not res.promoted  # no alias named: nothing moves


def test_force_overrides_the_gate_and_says_so(registered, capsys):
    store, train, val, _ = registered
    os.environ["TUNESMITH_STORE"] = str(store.root)
    try:
        code = main(["update", "sent@v1", "--data", str(train), "--validation", str(val), "--replay", "0",
                     "--max-regression", "0", "--alias", "staging", "--set", "train.epochs=6"])  # fmt: skip
        out = capsys.readouterr().out
        assert code == 3 and "gate refused" in out and "@staging not moved" in out
        code = main(["update", "sent@v1", "--data", str(train), "--validation", str(val), "--replay", "0",
                     "--max-regression", "0", "--alias", "staging", "--force", "--set", "train.epochs=6"])  # fmt: skip
        out = capsys.readouterr().out
        assert code == 0 and "FORCED past the gate" in out
        assert store.version("sent@staging")["parent"] == "sent@v1"
    finally:
        del os.environ["TUNESMITH_STORE"]


def test_promote_runs_the_gate_on_recorded_figures(registered):
    store, *_ = registered
    store.add_evaluation("sent@v1", "sent@v1", {"n": 80, "accuracy": 0.90})
    worse = store.register(store.run_dir("sent@v1"), "sent")
    store.add_evaluation(f"sent@v{worse['version']}", "sent@v1", {"n": 80, "accuracy": 0.80})
    store.promote("sent@v1", "canary")
    with pytest.raises(GateRefused, match="10.00 accuracy points"):
        promote_checked(store, f"sent@v{worse['version']}", "canary", max_regression=1.0)
    assert store.version("sent@canary")["version"] == 1
    moved = promote_checked(store, f"sent@v{worse['version']}", "canary", max_regression=1.0, force=True)
    assert moved["gate"]["forced"] and store.version("sent@canary")["version"] == worse["version"]


def test_an_update_that_changes_the_classes_is_refused_before_training(registered, tmp_path):
    store, *_ = registered
    rows = make_rows(90, 9)
    for r in rows[::3]:
        r["label"] = "mixed"
    extra = write_csv(tmp_path / "extra.csv", rows)
    runs_before = len(list((registered[3] / "runs").iterdir()))
    with pytest.raises(InputError, match="new mixed"):
        update("sent@v1", extra, replay_ratio=0.0, store=store)
    assert len(list((registered[3] / "runs").iterdir())) == runs_before
