"""The same config trained with several seeds: mean and standard deviation of every metric, so that a
difference between two configs can be told apart from the noise of one seed."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from tunesmith import config as cfgmod
from tunesmith.files import write_json

SKIP = {"n", "ci_low", "ci_high"}


def flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Every numeric metric of a run's summary, nested keys joined with '/'."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if key in SKIP:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_metrics(value, f"{name}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def summarize(per_seed: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    keys = [k for k in per_seed[0] if all(k in m for m in per_seed)]
    out = {}
    for k in keys:
        values = [m[k] for m in per_seed]
        out[k] = {
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values),
            "max": max(values),
        }
    return out


def run_seeds(
    config: cfgmod.Config | dict[str, Any], seeds: int, folder: Path | None = None, progress: Any = None
) -> dict[str, Any]:
    """Train ``config`` with seeds seed, seed+1, ...; each run is a normal run directory under ``folder``
    (default OUTPUT_DIR/<stamp>-seeds), next to ``seeds.json`` with every run's metrics and the summary."""
    from tunesmith.config import coerce
    from tunesmith.pipeline.finetune import finetune

    cfg = coerce(config)
    folder = Path(folder or Path(cfg.output_dir) / f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.task}-{cfg.method}-seeds")
    folder.mkdir(parents=True, exist_ok=True)
    runs, per_seed = [], []
    for i in range(seeds):
        seed = cfg.train.seed + i
        if progress:
            progress(f"seed {seed} ({i + 1} of {seeds})")
        run = finetune(cfgmod.from_dict(cfgmod.to_dict(cfg), [f"train.seed={seed}"]), run_dir=folder / f"seed-{seed}")
        metrics = flatten_metrics(run.metrics)
        runs.append({"seed": seed, "run": str(run.path), "metrics": metrics})
        per_seed.append(metrics)
    result = {"seeds": [r["seed"] for r in runs], "runs": runs, "summary": summarize(per_seed), "folder": str(folder)}
    write_json(folder / "seeds.json", result)
    return result


def seeds_table(result: dict[str, Any], keys: list[str] | None = None) -> str:
    summary = result["summary"]
    keys = keys or [k for k in summary if "/" not in k] or list(summary)
    width = max(len(k) for k in keys)
    lines = [f"{'metric':<{width}}  {'mean':>9}  {'std':>9}  {'min':>9}  {'max':>9}   ({len(result['seeds'])} seeds)"]
    for k in keys:
        s = summary[k]
        lines.append(f"{k:<{width}}  {s['mean']:>9.4f}  {s['std']:>9.4f}  {s['min']:>9.4f}  {s['max']:>9.4f}")
    return "\n".join(lines)
