"""The plan, tune and train --seeds commands (kept apart from cli.py, which maps the other commands)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tunesmith.errors import ConfigError


def _say(message: str) -> None:
    """Progress goes to stderr, so that stdout holds the result (a table, or JSON)."""
    print(message, file=sys.stderr, flush=True)


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "plan",
        help="probe every model x method, predict time, peak memory and cost, write the recommended config",
    )
    p.add_argument("config", nargs="?", help="a config file (or give --task and --data)")
    p.add_argument("--task", help="text-classification, image-classification or causal-lm (without a config)")
    p.add_argument("--data", help="training file (without a config)")
    p.add_argument("--validation", help="validation file (without a config)")
    p.add_argument("--model", help="plan for this model only (default: every catalog model for the task)")
    p.add_argument("--methods", help="comma-separated methods to consider (default: all the task allows)")
    p.add_argument("--budget", help="time budget, e.g. 90s, 10m, 1.5h")
    p.add_argument("--price-per-hour", type=float, default=1.0, help="machine price per hour for the cost column")
    p.add_argument("--out", help="where to write the recommended config (default CONFIG.plan.yaml / plan.yaml)")
    p.add_argument("--json", action="store_true", help="print the whole plan as JSON")
    p.add_argument("--probe-timeout", type=float, default=600, help="seconds one probe may take")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")

    t = sub.add_parser("tune", help="search hyperparameters (Optuna) over the search space written in the config")
    t.add_argument("config", help="a config whose values may be distributions: loguniform(1e-5, 1e-3), choice(4, 8)")
    t.add_argument("--trials", type=int, default=20, help="trials the study should have (finished or pruned)")
    t.add_argument("--study", help="study name (default: the config file's name)")
    t.add_argument("--storage", help="any database URL Optuna accepts (default: SQLite next to the runs)")
    t.add_argument("--pruner", default="median", help="median (default), halving or none")
    t.add_argument("--prune-after", type=int, default=3, help="median pruner: finished trials before it prunes")
    t.add_argument("--sampler", default="tpe", help="tpe (default) or random")
    t.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    t.add_argument("--seeds", type=int, default=1, help="then train the best config with N seeds (mean, std)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")


def _raw_config(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    from tunesmith import config as cfgmod

    if args.config:
        path = Path(args.config)
        cfgmod.load(path, args.set)  # every error with file and key, before any probe
        raw = cfgmod.read_config_yaml(path) or {}
        for item in args.set:
            cfgmod.apply_override(raw, item)
        out = path.with_name(path.stem + ".plan.yaml")
    else:
        if not args.task or not args.data:
            raise ConfigError("plan: give a config file, or --task and --data")
        raw = {"task": args.task, "data": {"train": args.data}}
        if args.validation:
            raw["data"]["validation"] = args.validation
        for item in args.set:
            cfgmod.apply_override(raw, item)
        cfgmod.from_dict(raw)
        out = Path("plan.yaml")
    if args.model:
        raw["model"] = args.model
    return raw, Path(args.out) if args.out else out


def plan_command(args: argparse.Namespace) -> int:
    from tunesmith import api

    raw, out = _raw_config(args)
    budget = api.parse_duration(args.budget) if args.budget else None
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    plan = api.plan(raw, methods=methods, budget_s=budget, price_per_hour=args.price_per_hour,
                     timeout=args.probe_timeout, progress=None if args.json else _say)  # fmt: skip
    if plan.recommended is not None:
        api.write_plan(plan, out)
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2, default=str))
        return 0 if plan.recommended else 1
    d = plan.data
    print(f"hardware: {plan.hardware.describe()}")
    line = f"data: {d['train_examples']:,} training, {d['validation_examples']:,} validation examples"
    if "classes" in d:
        line += f"; {d['classes']} classes, largest/smallest {d['imbalance']}"
    if "tokens" in d:
        line += f"; tokens mean {d['tokens'].get('mean')}, p95 {d['tokens'].get('p95')}, max_length {d['max_length']}"
    print(line)
    for w in d.get("warnings", [])[:5]:
        print(f"  warning: {w}")
    print()
    print(plan.table())
    print()
    if plan.recommended is None:
        print("no recommendation: " + "; ".join(plan.reasons))
        return 1
    p = plan.recommended.prediction
    assert p is not None
    seconds = plan.seconds if plan.seconds is not None else p.seconds
    print(f"recommended: {plan.recommended.name} (about {api.format_duration(seconds)}, "
          f"peak {p.peak_bytes / 2**30:.2f} GiB)")  # fmt: skip
    for r in plan.reasons:
        print(f"  - {r}")
    for dflt in plan.kept_defaults():
        print(f"  - {dflt['key']} = {dflt['value']}: {dflt['why']}")
    print(f"config: {out}   (train it: tunesmith train {out})")
    return 0


def tune_command(args: argparse.Namespace) -> int:
    from tunesmith import api

    result = api.tune(
        args.config,
        args.set,
        trials=args.trials,
        study_name=args.study,
        storage=args.storage,
        pruner=args.pruner,
        pruner_startup=args.prune_after,
        sampler=args.sampler,
        timeout=args.timeout,
        seeds=args.seeds,
        progress=_say,
    )
    print(api.trials_table(result))
    if result.best is None:
        print("no trial finished")
        return 1
    print(f"\nbest: trial {result.best['number']}, selection-split {result.metric} {result.best['value']:.4f}")
    print(f"best config: {result.best_config}   (train it: tunesmith train {result.best_config})")
    print(f"best run: {result.best['run']}")
    if result.seeds:
        print()
        print(api.seeds_table(result.seeds))
    print(f"report: {result.report}")
    return 0


def train_seeds(args: argparse.Namespace) -> int:
    from tunesmith import api

    if args.resume or args.nproc > 1 or args.run_dir:
        raise ConfigError("--seeds: runs each seed from the start in this process; leave out --resume and --nproc")
    result = api.train_seeds(args.config, args.seeds, args.set, progress=_say)
    print(api.seeds_table(result))
    print(result["folder"])
    return 0
