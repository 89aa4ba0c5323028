"""Two or more runs side by side: the config keys whose values differ, and each metric with its difference from
the first run. Runs scored on the same held-out examples get a paired bootstrap interval on the difference; runs
on different data get none, and say so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.config import flat_keys, read_config_yaml
from tunesmith.eval.compare import paired_bootstrap_mean
from tunesmith.rundir import MANIFEST, read_manifest

RESAMPLES = 2000
CONFIDENCE = 0.95
# Per-example scores a run writes, by file: (file, score name, how one row scores)
PER_EXAMPLE = (
    ("validation_predictions.jsonl", "accuracy", lambda r: float(r.get("label") == r.get("predicted"))),
    ("validation_generations.jsonl", "token_f1", lambda r: r.get("token_f1_tuned")),
)


def scalar_metrics(manifest: dict[str, Any]) -> dict[str, float]:
    m = manifest.get("metrics") or {}
    out = {k: float(v) for k, v in m.items() if isinstance(v, int | float) and not isinstance(v, bool) and k != "n"}
    tuned = m.get("tuned")
    if isinstance(tuned, dict):  # causal-lm: the tuned model's own figures
        out |= {k: float(v) for k, v in tuned.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return out


def per_example(run: Path) -> tuple[str, dict[int, float]] | None:
    """(score name, line -> score) from the run's held-out predictions, when it wrote them."""
    for name, metric, score in PER_EXAMPLE:
        path = run / name
        if not path.is_file():
            continue
        out: dict[int, float] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            value = score(row)
            if isinstance(row, dict) and isinstance(row.get("line"), int) and value is not None:
                out[row["line"]] = float(value)
        return metric, out
    return None


def compare_runs(runs: list[Path]) -> dict[str, Any]:
    """``config``: [key, value per run] for every key all the runs' configs have and whose values differ
    (``config_partial``: the keys only some have: runs of different tunesmith versions); ``metrics``: [metric,
    value per run];
    ``differences``: per later run, its difference from the first with the interval where one can be measured."""
    configs, manifests = [], []
    for run in runs:
        try:
            configs.append(flat_keys(read_config_yaml(run / "config.yaml") or {}))
        except Exception:  # noqa: BLE001 - a run without a readable config compares as empty
            configs.append({})
        manifests.append(read_manifest(run) if (run / MANIFEST).is_file() else {})
    keys = sorted(set().union(*configs))
    differing = [[k, *[c.get(k) for c in configs]] for k in keys if len({json.dumps(c.get(k)) for c in configs}) > 1]
    everywhere = [row for row in differing if all(row[0] in c for c in configs)]
    partial = [row for row in differing if not all(row[0] in c for c in configs)]
    scalars = [scalar_metrics(m) for m in manifests]
    names = sorted(set().union(*scalars))
    rows = [[name, *[s.get(name) for s in scalars]] for name in names]
    first_data = (manifests[0].get("data") or {}).get("fingerprint")
    first_scores = per_example(runs[0])
    differences = []
    for run, manifest in zip(runs[1:], manifests[1:]):
        same = bool(first_data) and (manifest.get("data") or {}).get("fingerprint") == first_data
        entry: dict[str, Any] = {"run": str(run), "same_data": same}
        scores = per_example(run)
        if same and first_scores and scores and scores[0] == first_scores[0]:
            common = sorted(set(first_scores[1]) & set(scores[1]))
            a = np.array([scores[1][i] for i in common])
            b = np.array([first_scores[1][i] for i in common])
            entry |= {"metric": scores[0], **paired_bootstrap_mean(a, b, RESAMPLES, CONFIDENCE)}
        else:
            entry["why"] = (
                "scored on different held-out data: the figures are not paired, so no interval on the difference"
                if not same
                else "no per-example scores to pair"
            )
        differences.append(entry)
    return {"config": everywhere, "config_partial": partial, "metrics": rows, "differences": differences}
