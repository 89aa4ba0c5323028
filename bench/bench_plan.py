"""Are the planner's predictions right? Plan, then run the recommended config, and compare.

For each case: ``tunesmith plan CONFIG --json`` (probes every model x method), then ``tunesmith train`` on the
config it wrote, in a fresh child process whose wall time (interpreter start to exit) and peak resident
memory are measured. Prints predicted against actual and the ratios; the target is within 30%.

    python bench/bench_plan.py                 # text classification (Rotten Tomatoes, MiniLM)
    python bench/bench_plan.py --case chat     # causal-lm (chatterbot, SmolLM2-135M)
    python bench/bench_plan.py --case images   # image classification (Fashion-MNIST, EfficientNet-Lite0)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "text": {
        "task": "text-classification",
        "data": {
            "train": "data/rotten_tomatoes/train.csv",
            "validation": "data/rotten_tomatoes/validation.csv",
            "max_train_examples": 2000,
            "max_validation_examples": 500,
        },
        "train": {"max_length": 64},
    },
    "chat": {
        "task": "causal-lm",
        "data": {
            "train": "data/chatterbot/train.jsonl",
            "validation": "data/chatterbot/validation.jsonl",
            "max_train_examples": 300,
            "max_validation_examples": 100,
        },
        "eval": {"generate_examples": 16, "max_new_tokens": 48},
    },
    "images": {
        "task": "image-classification",
        "data": {
            "train": "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
            "validation": "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
            "max_train_examples": 1000,
            "max_validation_examples": 300,
        },
        "augment": {"crop_scale": 0.8, "color_jitter": 0.0},
    },
}


def child_train(config: str) -> None:
    """In the child: train, then print this process's peak memory as the last line."""
    from tunesmith.cli import main

    code = main(["train", config])
    print(json.dumps({"code": code, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", choices=sorted(CASES), default="text")
    ap.add_argument("--methods", help="restrict the plan, e.g. lora")
    ap.add_argument("--child-train", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_train:
        child_train(args.child_train)
        return
    out_dir = ROOT / "bench" / "out" / f"plan-{args.case}"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tunesmith-bench-plan-") as tmp:
        # A cache of its own: nothing (tokens, frozen features) carried over from earlier runs on this machine.
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TUNESMITH_NO_PROGRESS": "1", "TOKENIZERS_PARALLELISM": "false",
               "TUNESMITH_CACHE": str(Path(tmp) / "cache")}  # fmt: skip
        cfg_path = Path(tmp) / f"{args.case}.yaml"
        raw = {**CASES[args.case], "output_dir": str(out_dir / "runs")}
        cfg_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
        plan_out = Path(tmp) / "plan.yaml"
        cmd = [sys.executable, "-m", "tunesmith.cli", "plan", str(cfg_path), "--json", "--out", str(plan_out)]
        if args.methods:
            cmd += ["--methods", args.methods]
        t = time.perf_counter()
        planned = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
        plan_seconds = time.perf_counter() - t
        if planned.returncode != 0:
            raise SystemExit(f"plan failed:\n{planned.stderr[-3000:]}")
        plan = json.loads(planned.stdout)
        option = next(o for o in plan["options"] if f"{o['model']} / {o['method']}" == plan["recommended"])
        t = time.perf_counter()
        trained = subprocess.run(
            [sys.executable, __file__, "--child-train", str(plan_out)], capture_output=True, text=True, env=env,
            cwd=ROOT, check=False,
        )  # fmt: skip
        wall = time.perf_counter() - t
        if trained.returncode != 0:
            raise SystemExit(f"train failed:\n{trained.stderr[-3000:]}")
        actual = json.loads(trained.stdout.strip().splitlines()[-1])
        run_dir = Path(trained.stdout.strip().splitlines()[-2])
        manifest = json.loads((run_dir / "manifest.json").read_text())
    result = {
        "case": args.case,
        "recommended": plan["recommended"],
        "plan_seconds": round(plan_seconds, 1),
        "predicted_seconds": option["predicted_seconds"],
        "actual_seconds": round(wall, 1),
        "time_ratio": round(option["predicted_seconds"] / wall, 3),
        "predicted_peak_gib": round(option["predicted_peak_bytes"] / 2**30, 3),
        "actual_peak_gib": round(actual["peak_rss"] / 2**30, 3),
        "memory_ratio": round(option["predicted_peak_bytes"] / actual["peak_rss"], 3),
        "predicted_phases_s": option["phases_s"],
        "actual_phases_s": manifest["timings_s"],
        "epochs_run": manifest["fit"]["epochs"],
        "stopped": manifest["fit"]["stopped"],
        "options": [
            {k: o[k] for k in ("model", "method", "status", "predicted_seconds", "predicted_peak_bytes")}
            for o in plan["options"]
        ],
    }
    (out_dir / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(
        f"\n{args.case}: {plan['recommended']}: time predicted {result['predicted_seconds']:.0f} s, actual "
        f"{result['actual_seconds']:.0f} s (ratio {result['time_ratio']:.2f}); peak memory predicted "
        f"{result['predicted_peak_gib']:.2f} GiB, actual {result['actual_peak_gib']:.2f} GiB "
        f"(ratio {result['memory_ratio']:.2f}); planning took {result['plan_seconds']:.0f} s"
    )


if __name__ == "__main__":
    main()
