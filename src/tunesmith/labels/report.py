"""The learning-curve report of ``tunesmith learn``: labels against validation accuracy with 95% intervals, and
what each round trained on."""

from __future__ import annotations

from html import escape
from typing import Any

from tunesmith.eval.panels import page
from tunesmith.eval.svg import line_chart
from tunesmith.files import atomic_write_text


def _pct(v: float) -> str:
    return f"{100 * v:.1f}"


def summary(result: Any) -> str:
    """Where the curve started and ended, whether the gain is outside the noise, and against random picks."""
    first, last = result.rounds[0], result.rounds[-1]
    gain = last.accuracy - first.accuracy
    apart = last.accuracy_ci[0] > first.accuracy_ci[1] or last.accuracy_ci[1] < first.accuracy_ci[0]
    sure = "the intervals do not overlap" if apart else "the intervals overlap, so the change may be noise"
    text = (
        f"{first.labels} labels: {_pct(first.accuracy)}% accuracy; after {len(result.rounds) - 1} rounds of "
        f"{result.k} {result.strategy} picks, {last.labels} labels: {_pct(last.accuracy)}% "
        f"({100 * gain:+.1f} points; {sure})."
    )
    if result.baseline:
        b = result.baseline[-1]
        ahead = 100 * (last.accuracy - b.accuracy)
        text += (
            f" Random picks reached {_pct(b.accuracy)}% with {b.labels} labels ({ahead:+.1f} for {result.strategy})."
        )
    return text


def _curve(rounds: list[Any]) -> tuple[list[tuple[float, float]], list[tuple[float, float, float]]]:
    points = [(float(r.labels), 100 * r.accuracy) for r in rounds]
    band = [(float(r.labels), 100 * r.accuracy_ci[0], 100 * r.accuracy_ci[1]) for r in rounds]
    return points, band


def _rows(rounds: list[Any], folder: Any) -> str:
    return "".join(
        f"<tr><td class=desc>{escape(r.strategy)}</td><td>{r.round}</td><td>{r.labels}</td><td>{r.picked}</td>"
        f"<td>{r.waiting}</td><td>{_pct(r.accuracy)}</td><td>{_pct(r.accuracy_ci[0])} – {_pct(r.accuracy_ci[1])}</td>"
        f"<td>{_pct(r.macro_f1)}</td><td>{r.seconds:.0f}</td>"
        f"<td class=desc><small>{escape(r.started_from)}</small></td>"
        f"<td class=desc><small>{escape(_inside(r.run, folder))}</small></td></tr>"
        for r in rounds
    )


def _inside(run: str, folder: Any) -> str:
    """A round's run folder as seen from the report's folder."""
    from pathlib import Path

    try:
        return str(Path(run).relative_to(folder))
    except ValueError:
        return run


def write_report(result: Any) -> None:
    rounds = result.rounds
    if not rounds:
        return
    series, bands = {}, {}
    for name, rs in ((f"{result.strategy} picks", rounds), ("random picks", result.baseline)):
        if rs:
            series[name], bands[name] = _curve(rs)
    chart = line_chart(
        series,
        f"Validation accuracy by labels (n = {result.n_validation}; bands: 95% intervals)",
        "labelled training examples",
        "accuracy %",
        bands=bands,
        dashed={"random picks"},
    )
    cls = "better" if len(rounds) > 1 and rounds[-1].accuracy_ci[0] > rounds[0].accuracy_ci[1] else "unclear"
    stopped = escape(result.stopped) + (f"; random picks: {escape(result.baseline_stopped)}" if result.baseline else "")
    body = (
        f"<h1>Learning curve: {escape(result.strategy)} picks, {result.k} a round</h1>"
        f"<div class='verdict {cls}'><p class=big><b>{escape(summary(result))}</b></p></div>"
        f"<p class=note>Pool: {escape(result.pool)}. Every round is a full tunesmith run measured on the same "
        f"validation file ({escape(result.validation)}). Stopped: {stopped}.</p>"
        f"<div class=scroll>{chart}</div>"
        "<h2>Rounds</h2><div class=scroll><table class=num><tr><th>picks</th><th>round</th><th>labels</th>"
        "<th>picked</th><th>waiting</th><th>accuracy %</th><th>95% interval</th><th>macro-F1 %</th><th>seconds</th>"
        "<th>started from</th><th>run</th></tr>"
        f"{_rows(rounds, result.folder)}{_rows(result.baseline, result.folder)}</table></div>"
        "<p class=note>picked: pool rows whose labels were revealed before the round; waiting: revealed rows of a "
        "class seen only once, held back until its second example (one example cannot be split).</p>"
    )
    atomic_write_text(result.folder / "report.html", page(f"Learning curve ({result.strategy})", body))
