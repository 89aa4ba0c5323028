"""The update report: old against new per evaluation set, with confidence intervals and the gate's verdict."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from tunesmith.files import atomic_write_bytes
from tunesmith.lifecycle.gate import regression_units


def _fmt(metric: str, x: float) -> str:
    return f"{x:.4f}" if metric == "loss" else f"{x * 100:.1f}%"


def _ci_bar(lo: float, hi: float, diff: float, scale: float) -> str:
    """A small interval bar around 0: green right of zero is better for accuracy (left for loss)."""
    w, mid = 220, 110

    def x(v: float) -> float:
        return mid + max(-1.0, min(1.0, v / scale)) * (w / 2 - 6)

    return (
        f"<svg width='{w}' height='18'><line x1='{mid}' y1='0' x2='{mid}' y2='18' stroke='#999'/>"
        f"<line x1='{x(lo):.1f}' y1='9' x2='{x(hi):.1f}' y2='9' stroke='#345' stroke-width='3'/>"
        f"<circle cx='{x(diff):.1f}' cy='9' r='4' fill='#c33'/></svg>"
    )


def write_update_report(run: Path, result: Any) -> None:
    rows = []
    comps = result.comparisons
    scale = max([abs(v) for c in comps for v in (c.ci_low, c.ci_high)] + [1e-6])
    for c in comps:
        status = "shown only" if not c.gated else ("pass" if c.passed else "<b style='color:#b00'>REGRESSED</b>")
        rows.append(
            f"<tr><td>{escape(c.eval_set)}</td><td>{c.n}</td><td>{_fmt(c.metric, c.old)}</td>"
            f"<td>{_fmt(c.metric, c.new)}</td><td>{c.difference * (1 if c.metric == 'loss' else 100):+.2f}"
            f"{'' if c.metric == 'loss' else ' pts'} [{c.ci_low * (1 if c.metric == 'loss' else 100):+.2f}, "
            f"{c.ci_high * (1 if c.metric == 'loss' else 100):+.2f}]</td>"
            f"<td>{_ci_bar(c.ci_low, c.ci_high, c.difference, scale)}</td><td>{status}</td></tr>"
        )
    if result.passed:
        head = "Every earlier evaluation set is within the threshold."
    elif result.forced:
        head = "The gate failed and was overridden with --force: " + escape("; ".join(result.reasons))
    else:
        head = "The gate refused promotion: " + escape("; ".join(result.reasons))
    alias = f"@{result.alias}" if result.alias else "no alias"
    moved = "moved" if result.promoted else "not moved"
    html = (
        "<!doctype html><html><head><meta charset='utf-8'><title>tunesmith update</title><style>"
        "body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}table{border-collapse:collapse}"
        "td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}</style></head><body>"
        f"<h1>Update of {escape(result.parent)}</h1><p>{head}</p>"
        f"<p>Gate: {escape(result.metric)} may get worse by at most {result.max_regression:g} "
        f"{regression_units(result.metric)} on any earlier set; {alias} {moved}. Replay: {escape(result.replay)}.</p>"
        f"<table><tr><th>evaluation set</th><th>n</th><th>old ({escape(result.parent)})</th><th>new</th>"
        f"<th>new - old, 95% CI</th><th>interval</th><th>gate</th></tr>{''.join(rows)}</table>"
        "</body></html>"
    )
    atomic_write_bytes(run / "update_report.html", html.encode("utf-8"))
    atomic_write_bytes(run / "update_report.json", json.dumps(result.to_dict(), indent=2, default=str).encode())
