"""A run while it trains, from its own files: the step against the planned total, loss, throughput, the time
left, and the training charts the report will draw (eval/panels.training_charts)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tunesmith.config import read_config_yaml
from tunesmith.eval.panels import training_charts
from tunesmith.eval.report import read_log
from tunesmith.rundir import run_status
from tunesmith.workspace.runs import elapsed_seconds

RECENT = 20  # steps the throughput and the time left are measured over


def progress(run: Path) -> dict[str, Any]:
    """Where a run stands: ``status``, ``phase`` (the training phase of the log), ``step`` of ``total``,
    ``epoch``, the last ``loss``, ``samples_per_s`` and ``eta_s`` over the last steps, ``evaluations``, and
    ``charts`` (SVG)."""
    log = read_log(run)
    state = run_status(run)
    starts = [r for r in log if r.get("kind") == "start"]
    phase = starts[-1].get("phase") if starts else (log[-1].get("phase") if log else None)
    steps = [r for r in log if r.get("kind") == "step" and r.get("phase") == phase]
    total = int(starts[-1]["total_steps"]) if starts and starts[-1].get("total_steps") else None
    last = steps[-1] if steps else {}
    recent = steps[-RECENT:]
    seconds = sum(float(r.get("seconds", 0.0)) for r in recent)
    step_s = seconds / len(recent) if recent and seconds > 0 else None
    eta = (total - int(last["step"])) * step_s if total and last and step_s and state["status"] == "running" else None
    metric = _metric(run)
    evals = [r for r in log if r.get("kind") == "eval"]
    return {
        "status": state["status"],
        "error": state.get("error"),
        "resumable": bool(state.get("resumable")),
        "phase": phase,
        "step": int(last["step"]) if last else 0,
        "total": total,
        "epoch": last.get("epoch"),
        "loss": last.get("loss"),
        "samples_per_s": last.get("samples_per_s"),
        "eta_s": eta,
        "updated": log[-1]["time"] if log and "time" in log[-1] else None,
        "elapsed_s": elapsed_seconds(run, state),
        "now": time.time(),
        "evaluations": [{k: v for k, v in r.items() if k not in ("kind", "phase", "time")} for r in evals[-10:]],
        "metric": metric,
        "charts": training_charts(log, metric),
    }


def _metric(run: Path) -> str:
    """The metric the run selects on (its config's train.metric); loss while the config cannot be read yet."""
    try:
        return str(((read_config_yaml(run / "config.yaml") or {}).get("train") or {}).get("metric") or "loss")
    except Exception:  # noqa: BLE001 - a config being written is read at the next poll
        return "loss"
