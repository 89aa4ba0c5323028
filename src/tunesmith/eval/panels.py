"""The parts every report page shares: the page frame, the verdict box with its diagnoses, the run summary panel,
the data checks as tables, and the training charts. One place, so text, image, chat and tune reports (and the
dashboard) read alike."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.config import TASK_DEFAULTS
from tunesmith.eval import svg
from tunesmith.files import write_json

STYLE = (
    "*{box-sizing:border-box}html{background:#fff}"
    "body{font:14px/1.45 sans-serif;max-width:1040px;margin:1.5em auto;padding:0 12px;color:#222}"
    "h1{font-size:1.45em;margin:.2em 0 .6em;overflow-wrap:anywhere}"
    "h2{font-size:1.15em;margin:1.4em 0 .4em;border-bottom:1px solid #eee;padding-bottom:2px}"
    "table{border-collapse:collapse;margin:.3em 0}"
    "td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top;overflow-wrap:break-word}"
    "th{background:#f6f6f6}table.num td+td{text-align:right;font-variant-numeric:tabular-nums}"
    "table.num td.desc{text-align:left}"
    ".big{font-size:1.15em}.verdict{padding:10px 12px;border-radius:4px;margin:.4em 0}"
    ".better{background:#e6f4ea}.worse{background:#fce8e6}.unclear{background:#fef7e0}"
    ".row{display:flex;flex-wrap:wrap;gap:8px 24px;align-items:flex-start}.row>*{min-width:0;max-width:100%}"
    ".scroll{overflow-x:auto;max-width:100%}.note{color:#555;font-size:.92em}"
    ".panel td:first-child{color:#555;white-space:nowrap}"
    "pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:0;font-size:.88em}svg.chart{display:block;margin:6px 0}"
    "small{color:#666}td.text{max-width:460px}@media (max-width:600px){body{font-size:13px}td,th{padding:2px 4px}}"
)


def page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset='utf-8'>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )


def verdict_box(verdict: dict[str, Any] | None, diagnoses: list[str]) -> str:
    if not verdict:
        return ""
    kind = {"better": "better", "worse": "worse"}.get(verdict["status"], "unclear")
    notes = "".join(f"<li>{escape(d)}</li>" for d in diagnoses)
    extra = f"<ul class=note>{notes}</ul>" if notes else ""
    return f"<div class='verdict {kind}'><p class=big><b>{escape(verdict['text'])}</b></p>{extra}</div>"


def diagnoses(fit: dict[str, Any], data: dict[str, Any], n_eval: int, log: list[dict[str, Any]]) -> list[str]:
    """Short readings of what may have held the run back, each only where it applies."""
    out = []
    evals = [r for r in log if r.get("kind") == "eval" and "loss" in r]
    if len(evals) >= 2 and fit.get("stopped") == "completed" and evals[-1]["loss"] < min(r["loss"] for r in evals[:-1]):
        out.append("The selection loss was still falling at the last evaluation: more steps (train.epochs) may help.")
    warm = fit.get("warm_start") or {}
    if warm.get("loss") is not None and evals and evals[0]["loss"] > warm["loss"] * 1.05:
        out.append(
            f"Fine-tuning first raised the selection loss above the warm-started head's ({evals[0]['loss']:.3f} "
            f"against {warm['loss']:.3f}): a lower learning rate may keep what the head learned."
        )
    tokens = data.get("stats", {}).get("tokens", {})
    train = tokens.get("train") if isinstance(tokens, dict) else None
    if isinstance(train, dict) and train.get("share_truncated", 0) > 0.5:
        out.append(
            f"{train['share_truncated']:.0%} of the training inputs were cut at max_length={train['max_length']} "
            "tokens: if the end of the text matters, raise train.max_length."
        )
    if 0 < n_eval < 100:
        out.append(f"Only {n_eval} held-out examples: the intervals are wide; more validation data would narrow them.")
    return out


PROBLEMS = {
    "duplicates": "duplicate examples",
    "leakage": "validation examples also in training",
    "few_examples": "few examples in a class",
    "imbalance": "imbalanced classes",
    "truncation": "inputs cut at max_length",
    "few_selection_groups": "a selection split of few groups",
}


def data_checks(data: dict[str, Any], title: str = "Data checks") -> str:
    """The data checks' warnings as a table (problem, where, how many warnings of that kind, their messages; a
    message may cover many rows) and the data's figures as a table."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for w in data.get("warnings", []):
        groups[(w["check"], str(w.get("file") or ""))].append(w)
    rows = []
    for (code, file), items in groups.items():
        where = Path(file).name if file else "-"
        lines = [str(w["line"]) for w in items if w.get("line")]
        if lines:
            where += f":{','.join(lines[:5])}" + ("…" if len(lines) > 5 else "")
        if items[0].get("field"):
            where += f" ({items[0]['field']})"
        msgs = "<br>".join(escape(w["message"]) for w in items[:3]) + (
            f"<br><small>and {len(items) - 3} more</small>" if len(items) > 3 else ""
        )
        rows.append(
            f"<tr><td>{escape(PROBLEMS.get(code, code.replace('_', ' ')))}</td><td>{escape(where)}</td>"
            f"<td>{len(items)}</td><td>{msgs}</td></tr>"
        )
    table = (
        "<div class=scroll><table><tr><th>problem</th><th>where</th><th>warnings</th><th>details</th></tr>"
        f"{''.join(rows)}</table></div>"
        if rows
        else "<p>No warnings.</p>"
    )
    return f"<h2>{escape(title)}</h2>{table}{stats_table(data.get('stats', {}))}"


def stats_table(stats: dict[str, Any]) -> str:
    rows = []
    for key, value in stats.items():
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            inner = "; ".join(f"{k}: " + ", ".join(f"{a} {b}" for a, b in v.items()) for k, v in value.items())
        elif isinstance(value, dict):
            inner = ", ".join(f"{k} {v}" for k, v in value.items())
        else:
            inner = str(value)
        rows.append(f"<tr><td>{escape(key.replace('_', ' '))}</td><td>{escape(inner)}</td></tr>")
    return f"<details><summary>Data figures</summary><table class=panel>{''.join(rows)}</table></details>"


RUN_INFO = "run_info.json"


def write_run_info(run: Path, facts: dict[str, Any]) -> None:
    """What the report's summary panel needs before the manifest exists: start time, fingerprints, versions."""
    write_json(run / RUN_INFO, {"started": time.time(), **facts})


def _input_size(cfg: Any) -> str:
    """ ", max length 128" (tokens), or as the task says its input size (images: ", input 160 px")."""
    if not cfg.train.max_length:
        return ""
    return ", " + TASK_DEFAULTS.get(cfg.task, {}).get("input_size_shown", "max length {}").format(cfg.train.max_length)


def run_panel(run: Path, cfg: Any, fit: Any) -> str:
    """Date, duration, seed, model and method, the key hyperparameters, data fingerprints and versions."""
    info_path = run / RUN_INFO
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    started = info.get("started")
    t = cfg.train
    rows = [
        ("run", run.name),
        ("date", time.strftime("%Y-%m-%d %H:%M", time.localtime(started)) if started else "-"),
        (
            "duration",
            (f"{_duration(time.time() - started)} so far (training {_duration(fit.train_seconds)})")
            if started
            else _duration(fit.train_seconds),
        ),
        (
            "model",
            f"{cfg.model}"
            + (f" (fingerprint {info['model_fingerprint'][:12]})" if info.get("model_fingerprint") else ""),
        ),
        ("method", cfg.method + "".join(f", {what} kept as pre-trained" for what in fit.frozen)),
        (
            "hyperparameters",
            f"learning rate {t.learning_rate:g}, batch {t.batch_size}, "
            + (f"head epochs {cfg.head.epochs}" if cfg.method == "head" else f"epochs {t.epochs}")
            + _input_size(cfg)
            + f", warm-up {t.warmup_ratio:g}, weight decay {t.weight_decay:g}",
        ),
        ("chosen by", f"{fit.metric or t.metric} on the selection split"),
        ("seed", str(t.seed)),
        (
            "data",
            f"{cfg.data.train} / {cfg.data.validation or 'held out from training'}"
            + (f" (fingerprint {info['data_fingerprint'][:12]})" if info.get("data_fingerprint") else ""),
        ),
        ("steps", f"{fit.steps} optimizer steps, {fit.epochs_run:g} epochs; stopped: {fit.stopped}"),
        ("versions", ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items()) or "-"),
    ]
    body = "".join(f"<tr><td>{escape(k)}</td><td>{escape(str(v))}</td></tr>" for k, v in rows)
    return f"<h2>Run</h2><table class=panel>{body}</table>"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return (
        f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m {seconds % 60:02d}s"
    )


def smooth(points: list[tuple[float, float]], window: int = 10) -> list[tuple[float, float]]:
    if len(points) < window * 2:
        return points
    vals = np.convolve([p[1] for p in points], np.ones(window) / window, mode="valid")
    return [(points[i + window - 1][0], float(v)) for i, v in enumerate(vals)]


W = 490  # two charts side by side on a wide page


def training_section(log: list[dict[str, Any]], fit: dict[str, Any], metric: str, kept_note: str) -> str:
    """Loss (train, smoothed, and selection), the selection metric per evaluation and the learning rate, with
    the kept step marked on each; the sentence below names the metric that chose it. A head fitted in closed form
    (a logistic regression, no optimizer steps) is said in words."""
    best = fit.get("selection") or {}
    refit = fit.get("refit")
    refit_note = (
        f" The choices made, the head was fitted again on {refit['examples']} rows, the training split and the "
        f"{refit['selection_examples']} selection rows together (C = {refit['C']:g}); the linear probe it is "
        "compared with was fitted on the same rows. The validation data stays unseen."
        if refit
        else ""
    )
    if not fit.get("steps") and "C" in best:
        shown = ", ".join(f"{k.replace('_', '-')} {100 * best[k]:.1f}%" for k in ("accuracy", "macro_f1") if k in best)
        return (
            "<h2>Training</h2><p>The head is a logistic regression on the frozen features, fitted as the linear probe "
            f"is (strength C = {best['C']:g}, chosen by 3-fold cross-validation on the training data): no optimizer "
            f"steps. On the selection split: {shown}. {escape(kept_note[:1].upper() + kept_note[1:])}{refit_note}</p>"
        )
    marks = [(fit["best_step"], f"kept: step {fit['best_step']}")] if fit.get("best_step") else []
    charts = training_charts(log, metric, marks)
    chosen = "lowest" if metric == "loss" else "highest"
    kept = (
        f"The weights of step {fit['best_step']} were kept: the {chosen} {escape(metric)} on the selection split "
        "(carved from the training data; the report's figures are on the held-out validation data)."
        if fit.get("best_step")
        else "No evaluation ran during training: the last weights were kept."
    )
    text = (
        f"<p>{fit['steps']} optimizer steps; stopped: {escape(str(fit['stopped']).replace('_', ' '))}. {kept} "
        f"{escape(kept_note[:1].upper() + kept_note[1:])}{refit_note}</p>"
    )
    return "<h2>Training</h2><div class=row>" + "".join(charts) + "</div>" + text


def training_charts(log: list[dict[str, Any]], metric: str, marks: list[tuple[float, str]] | None = None) -> list[str]:
    """The training charts of a run's log: loss (train, smoothed, and selection), the selection metric per
    evaluation and the learning rate; what the report draws, and what the dashboard draws while a run trains."""
    marks = marks or []
    steps = [r for r in log if r.get("kind") == "step" and r.get("phase") != "head"] or [
        r for r in log if r.get("kind") == "step"
    ]
    evals = [r for r in log if r.get("kind") == "eval"]
    loss = {"train loss (smoothed)": smooth([(r["step"], r["loss"]) for r in steps])}
    selection = [(r["step"], r["loss"]) for r in evals if "loss" in r]
    if selection:  # a method that trains without evaluations (contrastive groups) has no selection curve
        loss["selection loss"] = selection
    charts = [svg.line_chart(loss, "Loss", "optimizer step", "loss", marks=marks, w=W)]
    if metric != "loss" and any(metric in r for r in evals):
        charts.append(
            svg.line_chart(
                {f"selection {metric}": [(r["step"], r[metric]) for r in evals if metric in r]},
                f"Selection-split {metric} per evaluation",
                "optimizer step",
                metric,
                marks=marks,
                w=W,
            )
        )
    lr = [(r["step"], r["lr"]) for r in steps if r.get("lr") is not None]
    if lr:
        charts.append(svg.line_chart({"learning rate": lr}, "Learning rate", "optimizer step", "", marks=marks, w=W))
    return [c for c in charts if c]
