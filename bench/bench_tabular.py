"""Tabular classification against the reference tools for tables, in one run per dataset: tunesmith's defaults
(pre-training on every row, fine-tuning with the labels) beside scikit-learn's HistGradientBoosting and
IsolationForest, with all training labels, 10% and 1% of them. The reference models are trained inside the same
run on the same rows (tasks/tabular_classification/report.py), so the figures are paired; this script runs the
datasets, reads each run's report.json and prints the table for docs/benchmarks.md.

    python bench/bench_tabular.py                        # credit-default and caravan (ISLP), written if missing
    python bench/bench_tabular.py --only caravan
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {  # name -> (label column, training rows, validation rows)
    "credit-default": ("default", 7000, 3000),
    "caravan": ("Purchase", 4000, 1822),
}


def ensure(name: str) -> Path:
    folder = ROOT / "data" / name
    if not (folder / "train.csv").is_file():
        _, n_train, n_val = DATASETS[name]
        subprocess.run([sys.executable, "-m", "tunesmith.examples", name, "--out", str(folder), "--train",
                        str(n_train), "--validation", str(n_val)], check=True)  # fmt: skip
    return folder


def run(name: str, out: Path) -> dict:
    import tunesmith

    folder = ensure(name)
    cfg = {
        "task": "tabular-classification",
        "output_dir": str(out / name),
        "cache_dir": str(out / "cache"),  # a cold cache: pre-training is timed, not read back
        "data": {"train": str(folder / "train.csv"), "validation": str(folder / "validation.csv"),
                 "label_column": DATASETS[name][0]},
    }  # fmt: skip
    start = time.perf_counter()
    result = tunesmith.finetune(cfg)
    wall = time.perf_counter() - start
    report = json.loads((result.path / "report.json").read_text())
    return {"name": name, "wall": wall, "report": report, "manifest": result.manifest}


def table(r: dict) -> list[str]:
    s, models, rep = r["report"]["summary"], r["report"]["models"], r["report"]
    fpr = f"{100 * s['false_positive_rate']:g}%"
    trees, forest = models["gradient-boosted trees"], models["isolation forest"]
    tuned = models["tuned"]
    c = rep["comparisons"]["gradient-boosted trees"]["average_precision"]
    pre = rep["pretraining"]["seconds"]
    fine = r["manifest"]["timings_s"]["train"]
    lines = [
        f"### {r['name']}: {s['n']:,} validation rows, {s['positives']} positive ({s['target']})",
        "",
        f"| model | labels | PR-AUC (95% CI) | recall at {fpr} FPR | training time |",
        "|---|---|---|---|---|",
        f"| tunesmith (pre-train + fine-tune) | all | {tuned['average_precision']:.3f} "
        f"({tuned['average_precision_ci'][0]:.3f}-{tuned['average_precision_ci'][1]:.3f}) | "
        f"{100 * tuned['recall_at_fpr']:.1f}% | {pre + fine:.1f} s ({pre:.1f} s pre-training) |",
        f"| HistGradientBoosting | all | {trees['average_precision']:.3f} "
        f"({trees['average_precision_ci'][0]:.3f}-{trees['average_precision_ci'][1]:.3f}) | "
        f"{100 * trees['recall_at_fpr']:.1f}% | {trees['seconds']:.2f} s |",
        f"| IsolationForest | none | {forest['average_precision']:.3f} | {100 * forest['recall_at_fpr']:.1f}% | "
        f"{forest['seconds']:.2f} s |",
    ]
    for f in s["fewer_labels"]:
        t, tr = f["models"]["tuned"], f["models"]["gradient-boosted trees"]
        d = f["tuned_minus"]["gradient-boosted trees"]
        lines.append(f"| tunesmith | {f['share']:.0%} ({f['labelled_rows']} rows, {f['positives']} positive) | "
                     f"{t['average_precision']:.3f} | {100 * t['recall_at_fpr']:.1f}% | |")  # fmt: skip
        lines.append(f"| HistGradientBoosting | {f['share']:.0%} | {tr['average_precision']:.3f} | "
                     f"{100 * tr['recall_at_fpr']:.1f}% | |")  # fmt: skip
        lines.append(f"| tunesmith − trees, {f['share']:.0%} | | {d['difference']:+.3f} "
                     f"({d['ci_low']:+.3f} to {d['ci_high']:+.3f}) | | |")  # fmt: skip
    lines += [
        "",
        f"tunesmith − trees, all labels: PR-AUC {c['difference']:+.3f} (95% CI {c['ci_low']:+.3f} to "
        f"{c['ci_high']:+.3f}); training time ratio tunesmith / trees "
        f"{(pre + fine) / max(trees['seconds'], 1e-9):.0f}x; "
        f"whole run {r['wall']:.0f} s (reading, pre-training, fine-tuning, every baseline and the report).",
        f"Verdict: {s['verdict']['text']}",
        "",
    ]
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="", help="comma-separated dataset names")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-tabular"))
    a = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(a.out)
    import shutil

    shutil.rmtree(out / "cache", ignore_errors=True)
    names = [n for n in a.only.split(",") if n] or list(DATASETS)
    lines = []
    for name in names:
        lines += table(run(name, out))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines.append(f"Peak RSS of the whole bench process: {peak:.0f} MiB.")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
