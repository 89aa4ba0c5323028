"""Few-shot text classification: at n labels per class, the contrastive method against full fine-tuning, the head
on frozen features, and the run's own linear probe, over several seeds (mean and spread), in one run.

Each seed draws n training examples per class from a suite set (classes with fewer keep what they have) and
trains each method with tunesmith's defaults on them (a fresh process each); all are scored on the set's whole
validation split. Accuracy in %.

    python bench/bench_fewshot.py                                        # intents and python-docs, 8 and 16
    python bench/bench_fewshot.py --sets intents --shots 8,16,32,64 --seeds 3
    python bench/bench_fewshot.py --seeds 3 --methods full                # one column again (others print -)
    python bench/bench_fewshot.py --methods contrastive --set train.epochs=40   # an experiment on every run
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from children import run_child  # noqa: E402

METHODS = ("contrastive", "full", "head")


def sample(rows: list[dict[str, str]], shots: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    by: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by.setdefault(r["label"], []).append(r)
    out = []
    for label in sorted(by):
        group = by[label][:]
        rng.shuffle(group)
        out += group[:shots]
    rng.shuffle(out)
    return out


def child(args: list[str]) -> None:
    from tunesmith import api

    train, val, method, out, *overrides = args
    cfg = {
        "task": "text-classification",
        "model": "minilm-l6",
        "method": method,
        "output_dir": out,
        "data": {"train": train, "validation": val},
        "train": {"threads": 2},
    }
    t0 = time.time()
    run = api.finetune(cfg, overrides=overrides)
    m = run.metrics
    probe = m["baselines"].get("linear probe (frozen pre-trained)", {}).get("accuracy")
    kept = run.manifest.get("kept", {}).get("model", "fine-tuned")
    print(json.dumps({"accuracy": m["accuracy"], "probe": probe, "seconds": time.time() - t0, "kept": kept}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="data/suite")
    ap.add_argument("--sets", default="intents,python-docs")
    ap.add_argument("--shots", default="8,16")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--methods", default=",".join(METHODS), help="which of contrastive,full,head to run")
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE override for every run (experiments)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args, rest = ap.parse_known_args()
    if args.child:
        child(rest)
        return
    chosen = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(chosen) - set(METHODS))
    if unknown:
        ap.error(f"--methods: unknown {', '.join(unknown)}; allowed: {', '.join(METHODS)}")
    lines = []
    with tempfile.TemporaryDirectory(prefix="fewshot-") as tmp:
        cache = str(Path(tmp) / "cache")
        for name in args.sets.split(","):
            with (Path(args.suite) / name / "train.csv").open(encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
            val = str(Path(args.suite) / name / "validation.csv")
            for shots in map(int, args.shots.split(",")):
                scores: dict[str, list[float]] = {m: [] for m in (*METHODS, "probe")}
                secs: dict[str, list[float]] = {m: [] for m in METHODS}
                tuned_kept = 0
                for seed in range(args.seeds):
                    train = Path(tmp) / f"{name}-{shots}-{seed}.csv"
                    picked = sample(rows, shots, seed)
                    with train.open("w", newline="", encoding="utf-8") as fh:
                        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                        w.writeheader()
                        w.writerows(picked)
                    for method in chosen:
                        res = run_child(
                            __file__, method, [str(train), val, method, str(Path(tmp) / "runs"), *args.set], cache
                        )
                        scores[method].append(100 * res["accuracy"])
                        secs[method].append(res["seconds"])
                        if method == "head":  # the probe the head and contrastive runs are held against
                            scores["probe"].append(100 * res["probe"])
                        if method == "contrastive":
                            tuned_kept += res["kept"] == "fine-tuned"
                        print(
                            f"{name} {shots}/class seed {seed} {method}: {100 * res['accuracy']:.1f}% "
                            f"(kept {res['kept']})",
                            flush=True,
                        )
                cells = [f"{np.mean(v):.1f} ± {np.std(v):.1f}" if v else "-" for v in scores.values()]
                both = scores["contrastive"] and scores["full"]
                gap = f"{np.mean(scores['contrastive']) - np.mean(scores['full']):+.1f}" if both else "-"
                t = " / ".join(f"{np.mean(secs[m]):.0f}" if secs[m] else "-" for m in METHODS)
                lines.append(
                    f"| {name} | {shots} | {len(picked)} | "
                    + " | ".join(cells)
                    + f" | {gap} | {f'{tuned_kept} of {args.seeds}' if scores['contrastive'] else '-'} | {t} |"
                )
                print(lines[-1], flush=True)
    print()
    print(
        "| dataset | per class | examples | contrastive | full | head | probe | contrastive - full "
        "| contrastive kept its tuned encoder | s c/f/h |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
