"""The runs under the workspace's folders: what each is (task, base model, method), how it stands (finished,
running, failed, interrupted), its headline figure against the general model with the interval, its time and size."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.config import read_config_yaml
from tunesmith.rundir import FINISHED, MANIFEST, read_manifest, run_status

SKIP = {"model", "adapter", "checkpoints", "logs", "base_model", "onnx", "gguf", "node_modules", "__pycache__"}
MAX_DEPTH = 4


@dataclass
class RunSummary:
    path: Path
    shown: str  # as a person reads it (relative to the workspace)
    task: str
    model: str
    method: str
    status: str
    started: float
    seconds: float | None
    size_bytes: int
    headline: dict[str, Any] | None = None
    error: str | None = None
    resumable: bool = False


def is_run(folder: Path) -> bool:
    return (folder / "config.yaml").is_file() and ((folder / MANIFEST).is_file() or (folder / "logs").is_dir()
                                                   or (folder / "status.json").is_file())  # fmt: skip


def find_runs(roots: list[Path]) -> list[Path]:
    """Run directories under ``roots`` (at most four levels down; hidden folders and a run's own parts skipped)."""
    found: list[Path] = []
    seen: set[Path] = set()

    def walk(folder: Path, depth: int) -> None:
        if folder in seen:
            return
        seen.add(folder)
        if is_run(folder):
            found.append(folder)
            return
        if depth >= MAX_DEPTH:
            return
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())
        except OSError:
            return
        for child in children:
            if not child.name.startswith(".") and child.name not in SKIP:
                walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    return found


def folder_size(folder: Path) -> int:
    total = 0
    for base, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                continue
    return total


def headline(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """The run's figure against the general model: the verdict's status and sentence, the first metric of the
    comparison with its difference and interval (None when the run measured no comparison)."""
    verdict = metrics.get("verdict") or {}
    against = verdict.get("against")
    comparisons = (
        metrics.get("tuned_minus_base")
        if against == "base"
        else (metrics.get("tuned_minus") or {}).get(against or "", {})
    )
    if not comparisons:
        return {"status": verdict.get("status"), "text": verdict.get("text")} if verdict else None
    metric, c = next((k, v) for k, v in comparisons.items() if isinstance(v, dict) and "difference" in v)
    tuned = metrics.get(metric)
    if tuned is None and isinstance(metrics.get("tuned"), dict):
        tuned = metrics["tuned"].get(metric)
    return {
        "status": verdict.get("status"),
        "text": verdict.get("text"),
        "metric": metric,
        "value": tuned,
        "against": against,
        "difference": c["difference"],
        "ci_low": c["ci_low"],
        "ci_high": c["ci_high"],
    }


def elapsed_seconds(run: Path, state: dict[str, Any]) -> float | None:
    """Seconds since the run started (its config was written): up to now while it runs, else up to when it said
    what became of it (``state`` from rundir.run_status); None when neither is known."""
    try:
        started = (run / "config.yaml").stat().st_mtime
    except OSError:
        return None
    end = time.time() if state["status"] == "running" else state.get("time")
    return max(0.0, float(end) - started) if end else None


def summarise(run: Path, shown: str, size: bool = True) -> RunSummary:
    """One run, read from its files (a broken or half-written run is summarised as far as it can be)."""
    state = run_status(run)
    cfg: dict[str, Any] = {}
    try:
        cfg = read_config_yaml(run / "config.yaml") or {}
    except Exception:  # noqa: BLE001 - a run cut off while writing its config is still listed
        cfg = {}
    manifest = read_manifest(run) if (run / MANIFEST).is_file() else {}
    try:
        started = (run / "config.yaml").stat().st_mtime
    except OSError:
        started = 0.0
    seconds = (manifest.get("timings_s") or {}).get("total")
    if seconds is None and state["status"] != FINISHED:
        seconds = elapsed_seconds(run, state)
    return RunSummary(
        path=run,
        shown=shown,
        task=str(manifest.get("task") or cfg.get("task", "?")),
        model=str((manifest.get("base_model") or {}).get("spec") or cfg.get("model", "?")),
        method=str(manifest.get("method") or cfg.get("method", "?")),
        status=state["status"],
        started=started,
        seconds=seconds,
        size_bytes=folder_size(run) if size else 0,
        headline=headline(manifest.get("metrics") or {}) if manifest else None,
        error=state.get("error"),
        resumable=bool(state.get("resumable")),
    )
