"""tune_report.html: the trials table and four inline-SVG plots (optimisation history, learning curves with
the pruned trials, parameter importances, parallel coordinates); tune_report.json holds the same figures."""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any

from tunesmith.eval.panels import page
from tunesmith.eval.svg import CHAR_W, chart_frame, hbar, label, line_chart
from tunesmith.files import write_json

MIN_TRIALS_FOR_IMPORTANCE = 10


def _importances(study: Any) -> tuple[dict[str, float], str]:
    """fANOVA importances, or why none are shown: a forest fitted to a handful of trials ranks noise."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    params = {k for t in complete for k in t.params}
    if not params:
        return {}, "no finished trial varied a parameter"
    if len(params) == 1:
        return {}, f"only one parameter ({next(iter(params))}) was searched: nothing to apportion"
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return {}, (
            f"parameter importances need at least {MIN_TRIALS_FOR_IMPORTANCE} finished trials to mean anything; "
            f"this search has {len(complete)}"
        )
    from optuna.importance import FanovaImportanceEvaluator

    try:  # fANOVA by name: Optuna's default evaluator changes between releases (and fails on list choices)
        found = optuna.importance.get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
        return {k: float(v) for k, v in found.items()}, ""
    except (RuntimeError, ValueError):  # e.g. every trial with the same value: nothing to apportion
        return {}, "every finished trial scored the same: nothing to apportion"


def _axis_position(value: Any, values: list[Any], log: bool) -> float:
    """0..1 along an axis: numbers by value (log scale where the dimension is), choices by order."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        lo, hi = min(values), max(values)
        if log and lo > 0:
            lo, hi, value = math.log(lo), math.log(hi), math.log(value)
        return 0.5 if hi == lo else (value - lo) / (hi - lo)
    order = sorted({repr(v) for v in values})
    return 0.5 if len(order) == 1 else order.index(repr(value)) / (len(order) - 1)


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else escape(str(v))[:10]


def _parallel(trials: list[dict[str, Any]], keys: list[str], logs: set[str], metric: str, w: int = 640) -> str:
    done = [t for t in trials if t["state"] == "complete" and t["value"] is not None]
    if not done or not keys:
        return ""
    axes = [*keys, metric]
    edge = max(40.0, min(max(len(a) for a in axes), 28) * CHAR_W / 2 + 8)  # axis names are centred on the axis
    h, top, bottom, left, right = 280, 35, 40, edge, edge
    gap = (w - left - right) / max(1, len(axes) - 1)
    values = {k: [t["params"][k] for t in done if k in t["params"]] for k in keys}
    values[metric] = [t["value"] for t in done]
    lo, hi = min(values[metric]), max(values[metric])
    body = [f'<text x="10" y="15" font-weight="bold">Parallel coordinates ({len(done)} finished trials)</text>']
    for i, a in enumerate(axes):
        x = left + i * gap
        body.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{h - bottom}" stroke="#999"/>')
        body.append(label(x, h - bottom + 16, a, 28))
        vals = values[a]
        if vals:
            ends = sorted(vals, key=lambda v, a=a, vals=vals: _axis_position(v, vals, a in logs))
            body.append(f'<text x="{x + 3:.1f}" y="{top - 4}">{_short(ends[-1])}</text>')
            body.append(f'<text x="{x + 3:.1f}" y="{h - bottom + 28}">{_short(ends[0])}</text>')
    for t in done:
        shade = 0.5 if hi == lo else (t["value"] - lo) / (hi - lo)
        color = f"rgb({int(60 + 180 * (1 - shade))},{int(90 + 120 * shade)},{int(200 - 120 * shade)})"
        pts = []
        for i, a in enumerate(axes):
            v = t["value"] if a == metric else t["params"].get(a)
            if v is None:
                continue
            y = top + (1 - _axis_position(v, values[a], a in logs)) * (h - top - bottom)
            pts.append(f"{left + i * gap:.1f},{y:.1f}")
        body.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="1.5" opacity="0.85" points="{" ".join(pts)}"/>'
        )
    return chart_frame(w, h, "".join(body), "Parallel coordinates")


def write_report(study: Any, result: Any) -> Path:
    trials = result.trials
    keys = sorted({k for t in trials for k in t["params"]})
    logs = set()
    import json

    for d in json.loads(study.user_attrs.get("search_space", "[]")):
        if d[1] in ("loguniform", "logint"):
            logs.add(d[0])
    done = [t for t in trials if t["state"] == "complete" and t["value"] is not None]
    history: dict[str, list[tuple[float, float]]] = {}
    if done:
        pick = min if result.direction == "minimize" else max
        best_so_far, running = [], None
        for t in done:
            running = t["value"] if running is None else pick(running, t["value"])
            best_so_far.append((float(t["number"]), running))
        history = {"trial value": [(float(t["number"]), t["value"]) for t in done], "best so far": best_so_far}
        base = [t["baseline"] for t in done if t.get("baseline") is not None]
        if base:  # the frozen encoder with a trained head, scored on the same selection split
            level = sum(base) / len(base)
            ends = (float(done[0]["number"]), float(done[-1]["number"]))
            history["general model (frozen encoder + head)"] = [(ends[0], level), (ends[1], level)]
    curves = {
        f"trial {t['number']}" + (" (pruned)" if t["state"] == "pruned" else ""): sorted(
            (float(s), v) for s, v in t["intermediate"].items()
        )
        for t in trials
        if t["intermediate"]
    }
    importances, no_importances = _importances(study)
    plots = [
        line_chart(
            history,
            f"Optimisation history: selection-split {result.metric} of each trial's kept model",
            "trial",
            result.metric,
            dashed={"general model (frozen encoder + head)"},
        )
        if history
        else "",
        line_chart(curves, f"Selection-split {result.metric} at each evaluation", "step", result.metric)
        if curves
        else "",
        hbar(importances, "Parameter importances (fANOVA)")
        or f"<p class=note>Parameter importances are not shown: {escape(no_importances)}.</p>",
        _parallel(trials, keys, logs, result.metric),
    ]
    head = "".join(f"<th>{escape(h)}</th>" for h in ["trial", "state", result.metric, *keys, "seconds", "run"])
    rows = []
    for t in trials:
        best = result.best is not None and t["number"] == result.best["number"]
        cells = [
            str(t["number"]),
            t["state"] + (" (best)" if best else ""),
            "-" if t["value"] is None else f"{t['value']:.4f}",
        ]
        cells += [
            f"{t['params'][k]:.3g}" if isinstance(t["params"].get(k), float) else str(t["params"].get(k, "-"))
            for k in keys
        ]
        cells += [str(t["seconds"] or "-"), t["run"] or "-"]
        style = " style='background:#eef6ee'" if best else ""
        rows.append(f"<tr{style}>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    best_text = (
        f"<p>Best: trial {result.best['number']}, selection-split {escape(result.metric)} {result.best['value']:.4f}. "
        f"Config: <code>{escape(str(result.best_config))}</code>; "
        f"run: <code>{escape(str(result.best['run']))}</code>.</p>"
        if result.best
        else "<p>No trial finished yet.</p>"
    )
    seeds = ""
    if result.seeds:
        from tunesmith.tuning.seeds import seeds_table

        seeds = (
            f"<h2>Best config, {len(result.seeds['seeds'])} seeds</h2><pre>{escape(seeds_table(result.seeds))}</pre>"
        )
    pruned = sum(t["state"] == "pruned" for t in trials)
    body = (
        f"<h1>Search: {escape(result.study_name)}</h1><p>{len(trials)} trial(s); {pruned} pruned; objective: the "
        f"kept model's selection-split {escape(result.metric)} ({result.direction}); storage "
        f"<code>{escape(result.storage)}</code>.</p>{best_text}"
        + "".join(p for p in plots if p)
        + f"<h2>Trials</h2><div class=scroll><table class=num><tr>{head}</tr>{''.join(rows)}</table></div>{seeds}"
    )
    html = page(f"tunesmith tune: {result.study_name}", body)
    path = result.folder / "tune_report.html"
    path.write_text(html, encoding="utf-8")
    write_json(
        result.folder / "tune_report.json",
        {
            "study": result.study_name,
            "metric": result.metric,
            "direction": result.direction,
            "best": result.best,
            "importances": importances,
            "trials": trials,
            "seeds": result.seeds,
        },
    )
    return path
