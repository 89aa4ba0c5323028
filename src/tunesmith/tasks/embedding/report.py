"""The embedding run's report: the pre-trained and the tuned encoder searching the same corpus with the same
held-out queries, paired; the first queries side by side. Writes report.json, report.html and
validation_rankings.jsonl."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.config import Config
from tunesmith.data.validate import DataReport
from tunesmith.eval import panels, retrieval, svg
from tunesmith.eval.report import fit_record, read_log
from tunesmith.files import atomic_write_bytes
from tunesmith.train.result import FitResult

SHOWN_QUERIES = 12


def write_report(
    run: Path, cfg: Config, prep: Any, baseline: dict[str, Any], tuned: dict[str, np.ndarray], ranked: np.ndarray,
    report: DataReport, fit: FitResult,
) -> dict[str, Any]:  # fmt: skip
    e = cfg.eval
    base_s = retrieval.summarise(baseline["per_query"], e.bootstrap, e.confidence, cfg.train.seed)
    tuned_s = retrieval.summarise(tuned, e.bootstrap, e.confidence, cfg.train.seed)
    comps = retrieval.compare(tuned, baseline["per_query"], e.bootstrap, e.confidence, cfg.train.seed)
    verdict = retrieval.verdict(base_s, tuned_s, comps, e.confidence)
    kept = fit.kept or {}
    if kept.get("model") == "pre-trained model":
        verdict["text"] += (
            " Fine-tuning did not beat the pre-trained encoder on the selection split, so the run keeps the "
            "pre-trained encoder (classifier.keep_better)."
        )
    summary = {
        **{k: tuned_s[k] for k in retrieval.NAMES},
        "n": tuned_s["n"],
        "corpus": len(prep.corpus),
        "base": base_s,
        "tuned": tuned_s,
        "tuned_minus_base": {
            n: {k: c[k] for k in ("difference", "ci_low", "ci_high", "significant")} for n, c in comps.items()
        },  # fmt: skip
        "verdict": verdict,
        "kept": kept or None,
    }
    queries = [q for q, _ in prep.data.val.inputs]
    rows = [
        {
            "line": line,
            "query": q,
            "relevant": sorted(rel),
            "base": [int(j) for j in b[:5]],
            "tuned": [int(j) for j in t[:5]],
            "rr_base": float(baseline["per_query"]["mrr_at_10"][i]),
            "rr_tuned": float(tuned["mrr_at_10"][i]),
        }
        for i, (q, line, rel, b, t) in enumerate(
            zip(queries, prep.data.val.lines, prep.val_relevant, baseline["ranked"], ranked)
        )
    ]
    full = {"summary": summary, "comparisons": comps, "data": report.to_dict(), "fit": fit_record(fit)}
    atomic_write_bytes(run / "report.json", json.dumps(full, indent=2, default=float).encode())
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    atomic_write_bytes(run / "validation_rankings.jsonl", lines.encode("utf-8"))
    html = _html(run, cfg, full, rows, prep.corpus, read_log(run), fit)
    atomic_write_bytes(run / "report.html", html.encode("utf-8"))
    return {"summary": summary}


def _cell(corpus: list[str], j: int, relevant: set[int]) -> str:
    mark = "✓ " if j in relevant else "✗ "
    return f"<td class=text>{mark}{escape(corpus[j][:220])}{'…' if len(corpus[j]) > 220 else ''}</td>"


def _html(
    run: Path, cfg: Config, full: dict[str, Any], rows: list[dict[str, Any]], corpus: list[str], log: list, fit: Any
) -> str:
    s, comps = full["summary"], full["comparisons"]
    b, t = s["base"], s["tuned"]
    table = "".join(
        f"<tr><td>{retrieval.SHOWN[n]}</td><td>{b[n] * 100:.1f} <small>({b['intervals'][n][0] * 100:.1f}–"
        f"{b['intervals'][n][1] * 100:.1f})</small></td><td>{t[n] * 100:.1f} <small>({t['intervals'][n][0] * 100:.1f}–"
        f"{t['intervals'][n][1] * 100:.1f})</small></td><td>{comps[n]['difference'] * 100:+.1f} <small>("
        f"{comps[n]['ci_low'] * 100:+.1f} to {comps[n]['ci_high'] * 100:+.1f})</small></td></tr>"
        for n in retrieval.NAMES
    )
    parts = [
        f"<h1>{escape(run.name)}: embedding · {escape(str(cfg.model))} · {escape(str(cfg.method))}</h1>",
        panels.verdict_box(s["verdict"], panels.diagnoses(full["fit"], full["data"], s["n"], log)),
        panels.data_checks(full["data"]),
        "<h2>General vs tuned encoder</h2><div class=scroll><table class=num><tr><th>figure (%)</th>"
        "<th>general</th><th>tuned</th><th>tuned − general (interval)</th></tr>" + table + "</table></div>"
        f"<p class=note>{s['n']} held-out queries searched among {s['corpus']:,} passages (every passage of the data"
        + (f" and the chunks of the knowledge base {escape(cfg.data.knowledge_base)}" if cfg.data.knowledge_base
           else "")
        + f"). Intervals: {int(cfg.eval.confidence * 100)}% bootstrap over queries; the difference is paired.</p>",
        svg.bar_chart(
            [retrieval.SHOWN[n] for n in retrieval.NAMES],
            {"general": [b[n] for n in retrieval.NAMES], "tuned": [t[n] for n in retrieval.NAMES]},
            "Retrieval quality (whiskers: intervals)",
            errors={name: [tuple(m["intervals"][n]) for n in retrieval.NAMES] for name, m in
                    (("general", b), ("tuned", t))},
        ),
    ]  # fmt: skip
    fitd = full["fit"]
    kept_note = (s.get("kept") or {}).get("why", "")
    parts.append(panels.training_section(log, fitd, fitd.get("metric") or "mrr_at_10", kept_note))
    shown = "".join(
        f"<tr><td>{r['line']}</td><td class=text>{escape(r['query'])}</td>"
        + _cell(corpus, r["base"][0], set(r["relevant"]))
        + _cell(corpus, r["tuned"][0], set(r["relevant"]))
        + "</tr>"
        for r in rows[:SHOWN_QUERIES]
    )
    parts.append(
        f"<h2>First {min(len(rows), SHOWN_QUERIES)} held-out queries: the passage each encoder ranks first</h2>"
        "<div class=scroll><table class=sbs><tr><th>line</th><th>query</th><th>general encoder</th><th>tuned encoder"
        f"</th></tr>{shown}</table></div><p class=note>✓ a passage the query was paired with; every ranking is in "
        "validation_rankings.jsonl.</p>"
    )
    parts.append(panels.run_panel(run, cfg, fit))
    return panels.page(f"{run.name}: tunesmith report", "".join(parts))


def summary_lines(manifest: dict[str, Any], run_dir: Path) -> list[str]:
    m = manifest["metrics"]
    out = [f"\n{m['verdict']['text']}", f"\n{'encoder':<12}" + "".join(f"{retrieval.SHOWN[n]:>11}" for n in
                                                                         retrieval.NAMES)]  # fmt: skip
    for name in ("base", "tuned"):
        label = "general" if name == "base" else "tuned"
        out.append(f"{label:<12}" + "".join(f"{m[name][n] * 100:>10.1f}%" for n in retrieval.NAMES))
    out.append(f"n = {m['n']} held-out queries, {m['corpus']:,} passages; report: {Path(run_dir) / 'report.html'}")
    return out
