"""``tunesmith models ...`` and ``tunesmith update``: the registry commands, printed for people or as JSON."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from tunesmith import api
from tunesmith.cli.table import table


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else ""


def _num(x: Any) -> str:
    return "" if x is None else (f"{x:.4f}" if isinstance(x, float) else str(x))


def _print_promotion(moved: dict[str, Any]) -> None:
    for c in moved["comparisons"]:
        print(f"  {c['eval_set']:<28} {c['metric']} {c['old']:.4f} -> {c['new']:.4f}")
    forced = " (gate overridden with --force: " + "; ".join(moved["gate"]["reasons"]) + ")"
    print(
        f"{moved['name']}@{moved['alias']} -> v{moved['version']}"
        + (f" (was v{moved['previous']})" if moved["previous"] else "")
        + (forced if moved["gate"]["forced"] else "")
    )


def run_models(args: argparse.Namespace) -> int:
    store = api.registry()
    cmd = args.models_command
    if cmd == "register":
        row = store.register(args.run, args.name)
        print(f"registered {row['name']}@v{row['version']} ({len(row['files'])} files)")
        for missing in row["data"].get("missing", []):
            print(f"warning: data {missing} not found here; it was not stored (no replay or gate on it later)")
        if args.promote:  # through the same gate as `models promote`
            _print_promotion(api.promote(f"{row['name']}@v{row['version']}", args.promote))
        return 0
    if cmd == "promote":
        _print_promotion(api.promote(args.ref, args.to, args.max_regression, args.force))
        return 0
    if cmd == "list":
        rows = store.list(args.name, deleted=args.all)
        if args.json:
            print(json.dumps(rows, default=str))
            return 0
        lines = [
            [
                f"{r['name']}@v{r['version']}" + (" (removed)" if r["deleted_at"] else ""),
                r["task"],
                r["method"],
                _when(r["created_at"]),
                r["parent"] or "",
                " ".join(f"@{a}" for a in r["aliases"]),
            ]
            for r in rows
        ]
        print(table(["version", "task", "method", "created", "parent", "aliases"], lines))
        return 0
    if cmd == "show":
        row = store.version(args.ref)
        info = {
            "version": f"{row['name']}@v{row['version']}",
            "aliases": row["aliases"],
            "task": row["task"],
            "method": row["method"],
            "created": _when(row["created_at"]),
            "source_run": row["source"],
            "lineage": store.lineage(args.ref),
            "base_model": row["manifest"].get("base_model"),
            "knowledge_base": row["manifest"].get("knowledge_base"),  # what it was trained with, or what it is
            "data": {**row["manifest"].get("data", {}), "stored": {k: v for k, v in row["data"].items()}},
            "metrics": store.evaluations(args.ref),
            "config": _config_of(store, args.ref),
            "files": len(row["files"]),
            "history": [
                {"action": e["action"], **e["detail"], "at": _when(e["at"])}
                for e in store.history(row["name"])
                if e["detail"].get("version") == row["version"]
            ],
        }
        print(json.dumps(info, indent=None if args.json else 2, default=str))
        return 0
    if cmd == "diff":
        rows = store.diff(args.a, args.b)
        if args.json:
            print(json.dumps(rows))
            return 0
        lines = [[r["eval_set"], r["metric"], _num(r["a"]), _num(r["b"]), _num(r["b_minus_a"])] for r in rows]
        print(table(["evaluation set", "metric", args.a, args.b, "b - a"], lines, right=[2, 3, 4], wrap_last=False))
        return 0
    if cmd == "rm":
        row = store.remove(args.ref)
        print(f"removed {row['name']}@v{row['version']} (`tunesmith models restore {row['name']}@v{row['version']}`)")
        return 0
    if cmd == "restore":
        row = store.restore(args.ref)
        print(f"restored {row['name']}@v{row['version']}")
        return 0
    raise AssertionError(cmd)


def _config_of(store: Any, ref: str) -> dict[str, Any]:
    import yaml

    path = store.run_dir(ref) / "config.yaml"  # a registered knowledge base has none
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}


def run_update(args: argparse.Namespace) -> int:
    res = api.update(
        args.ref,
        args.data,
        args.validation,
        replay_ratio=args.replay,
        max_regression=args.max_regression,
        alias=args.alias,
        force=args.force,
        overrides=args.set,
    )
    limit = res.max_regression
    print(f"\n{'evaluation set':<28}{'n':>6}{'old':>10}{'new':>10}   new - old (95% CI)")
    for c in res.comparisons:
        k = 1 if c.metric == "loss" else 100
        flag = "" if not c.gated else ("  ok" if c.regression <= limit else "  REGRESSED")
        print(
            f"{c.eval_set:<28}{c.n:>6}{c.old * k:>10.2f}{c.new * k:>10.2f}   {c.difference * k:+.2f} "
            f"({c.ci_low * k:+.2f} .. {c.ci_high * k:+.2f}){flag}"
        )
    print(f"replay: {res.replay}")
    print(f"registered {res.version} (parent {res.parent}); report: {res.run / 'update_report.html'}")
    if res.passed:
        print(f"gate passed ({res.metric}, at most {limit:g} {api.regression_units(res.metric)} worse on earlier sets)")
    else:
        print("gate refused: " + "; ".join(res.reasons))
    if res.alias:
        if res.promoted:
            print(f"@{res.alias} -> {res.version}" + (" (FORCED past the gate)" if res.forced else ""))
        else:
            print(f"@{res.alias} not moved (use --force to override the gate)")
    return 0 if res.passed or res.forced else 3
