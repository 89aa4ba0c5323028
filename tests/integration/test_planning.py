"""The planner on a tiny model: its prediction checked against the real run of the config it writes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import tiny_config
from tunesmith import config
from tunesmith.errors import ConfigError
from tunesmith.hardware import GIB, Hardware
from tunesmith.planning.plan import make_plan, write_config

# The tiny run takes seconds, of which start-up is a large, noisy share on a shared machine: the test holds the
# planner to 40% on time (the benchmark's target on real runs is 30%) and 30% on peak memory.
TIME_TOLERANCE = 0.4
MEMORY_TOLERANCE = 0.3

CHILD = (
    "import json, resource, sys\n"
    "from tunesmith.cli import main\n"
    "code = main(['train', sys.argv[1]])\n"
    "print(json.dumps({'code': code, 'peak': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))\n"
)


def open_config(tiny_model: Path, toy_data: tuple[Path, Path], out: Path) -> dict:
    raw = tiny_config(tiny_model, *toy_data, out, train__early_stopping_patience=0)
    for key in ("epochs", "learning_rate"):  # left open: the planner's defaults fill them
        del raw["train"][key]
    return raw


def test_plan_predicts_the_run_it_recommends(tiny_model, toy_data, tmp_path, cache_dir):
    raw = open_config(tiny_model, toy_data, tmp_path / "runs")
    plan = make_plan(raw, methods=["full"])
    option = plan.recommended
    assert option is not None and option.status == "ok" and option.prediction is not None
    defaults = {d["key"]: d["value"] for d in option.defaults}
    # 204 training rows (36 are the selection split) at batch 16: 13 steps an epoch, so the 5-epoch cap of the
    # 100-step rule; the rate is the small-model 5e-5 at batch 8, x sqrt(16 / 8)
    assert defaults["train.epochs"] == 5 and defaults["train.learning_rate"] == 7.1e-5
    path = write_config(plan, tmp_path / "plan.yaml")
    cfg = config.load(path)  # train accepts it as it is
    assert cfg.train.epochs == 5 and cfg.method == "full" and cfg.model == str(tiny_model)

    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr[-2000:]
    actual = json.loads(proc.stdout.strip().splitlines()[-1])
    predicted = option.prediction
    assert abs(predicted.seconds / wall - 1) <= TIME_TOLERANCE, (predicted.seconds, wall, predicted.phases)
    assert abs(predicted.peak_bytes / actual["peak"] - 1) <= MEMORY_TOLERANCE, (predicted.peak_bytes, actual["peak"])
    manifest = json.loads((Path(proc.stdout.strip().splitlines()[-2]) / "manifest.json").read_text())
    assert manifest["fit"]["steps"] == predicted.steps


def test_options_that_cannot_fit_are_marked_and_never_started(tiny_model, toy_data, tmp_path, cache_dir):
    raw = open_config(tiny_model, toy_data, tmp_path / "runs")
    small = Hardware(cores=2, memory_total=256 << 20, memory_available=200 << 20)
    plan = make_plan(raw, hardware=small)
    assert {o.method for o in plan.options} == {"full", "head", "lora", "contrastive"}
    for o in plan.options:
        assert o.status == "too_big" and o.probe is None and o.prediction is None
        assert "not started" in o.note and o.estimate_bytes > small.memory_available
    assert plan.recommended is None
    with pytest.raises(ConfigError, match="nothing written"):
        write_config(plan, tmp_path / "plan.yaml")
    assert not (tmp_path / "plan.yaml").exists()
    assert f"{small.memory_available / GIB:.1f} GiB" in plan.options[0].note


def test_a_budget_too_short_for_every_option_is_said(tiny_model, toy_data, tmp_path, cache_dir):
    raw = open_config(tiny_model, toy_data, tmp_path / "runs")
    plan = make_plan(raw, methods=["full"], budget_s=0.5)
    assert plan.recommended is not None
    assert any("no option fits in 0s" in r for r in plan.reasons)
