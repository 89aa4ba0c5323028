"""The import rule holds for the package, and the check catches a planted upward import and a cycle."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.architecture.layers import check, layer_of

SRC = Path(__file__).resolve().parents[2] / "src"


def test_no_upward_import_and_no_cycle():
    problems = check(SRC)
    assert problems == [], "\n".join(map(str, problems))


def test_every_module_has_a_layer():
    assert layer_of("tunesmith.tasks.causal_lm.predictor") > layer_of("tunesmith.tasks.causal_lm.task")
    assert layer_of("tunesmith.config") < layer_of("tunesmith.train.loop") < layer_of("tunesmith.methods.lora")
    assert layer_of("tunesmith.api") < layer_of("tunesmith.cli")


def copy_state(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(SRC / "tunesmith", src / "tunesmith", ignore=shutil.ignore_patterns("__pycache__"))
    return src


def test_a_planted_upward_import_fails(tmp_path):
    src = copy_state(tmp_path)
    target = src / "tunesmith" / "train" / "optim.py"
    target.write_text(target.read_text() + "\n\ndef _planted():\n    from tunesmith.api import load  # noqa\n")
    problems = check(src)
    upward = [p for p in problems if "upward" in p.why]
    assert [(p.module, p.imported) for p in upward] == [("tunesmith.train.optim", "tunesmith.api")]
    assert "upward import (components -> api)" in str(upward[0])
    # api reaches train.optim through the pipeline, so the planted import also closes a cycle
    assert all("import cycle" in p.why for p in problems if p not in upward)


def test_a_planted_cycle_fails(tmp_path):
    src = copy_state(tmp_path)
    a, b = src / "tunesmith" / "eval" / "svg.py", src / "tunesmith" / "eval" / "metrics.py"
    a.write_text(a.read_text() + "\nfrom tunesmith.eval import metrics  # noqa\n")
    b.write_text(b.read_text() + "\nfrom tunesmith.eval import svg  # noqa\n")
    problems = check(src)
    assert any("import cycle" in str(p) and "tunesmith.eval.svg" in str(p) for p in problems)


def test_the_command_line_goes_through_the_facade(tmp_path):
    src = copy_state(tmp_path)
    target = src / "tunesmith" / "cli" / "models.py"
    target.write_text(target.read_text() + "\n\ndef _planted():\n    from tunesmith.store import ModelStore  # noqa\n")
    problems = check(src)
    assert [str(p) for p in problems] == [
        f"tunesmith.cli.models:{len(target.read_text().splitlines())} imports tunesmith.store: a front end uses the "
        "api facade, not tunesmith.store"
    ]
