"""Did tuning help a generator? Base vs tuned on the same held-out data: loss and perplexity on the reference
answers, and token F1 / ROUGE-L (exact match on request) of their generated answers, with paired bootstrap
intervals on the difference; side-by-side samples. Writes report.json, report.html and
validation_generations.jsonl."""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.eval import svg
from tunesmith.eval.compare import paired_bootstrap_mean
from tunesmith.eval.report import read_log, smooth, warnings_list
from tunesmith.eval.text_metrics import score_all
from tunesmith.files import atomic_write_bytes

SAMPLES_SHOWN = 12


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m['role']}: {m['content']}" for m in prompt)


def build_generation_report(
    run: Path,
    *,
    cfg: Any,
    base: dict[str, Any],
    tuned: dict[str, Any],
    golden: list[tuple[Any, str, int]],
    report: Any,
    fit: Any,
) -> dict[str, Any]:
    names = ("token_f1", "rouge_l", "exact_match") if cfg.eval.exact_match else ("token_f1", "rouge_l")
    refs = [r for _, r, _ in golden]
    models: dict[str, dict[str, Any]] = {}
    scores: dict[str, dict[str, list[float]]] = {}
    for name, res in (("base", base), ("tuned", tuned)):
        scores[name] = score_all(res["outputs"], refs, names) if golden else {}
        models[name] = {
            "loss": res["loss"],
            "perplexity": math.exp(min(res["loss"], 50.0)),
            **{n: (float(np.mean(v)) if v else None) for n, v in scores[name].items()},
        }
    comparisons = {
        n: paired_bootstrap_mean(
            scores["tuned"][n], scores["base"][n], cfg.eval.bootstrap, cfg.eval.confidence, cfg.train.seed
        )
        for n in names
        if golden
    }
    summary = {
        "loss": models["tuned"]["loss"],
        "perplexity": models["tuned"]["perplexity"],
        "base": models["base"],
        "tuned": models["tuned"],
        "tuned_minus_base": {
            n: {k: c[k] for k in ("difference", "ci_low", "ci_high", "significant")} for n, c in comparisons.items()
        },
        "n_loss_tokens": tuned["tokens"],
        "n_generated": len(golden),
    }
    summary["verdict"] = generation_verdict(models, comparisons, cfg.eval.confidence)
    samples = [
        {
            "line": line,
            "prompt": prompt,
            "reference": ref,
            "base": b,
            "tuned": t,
            **{f"{n}_base": scores["base"][n][i] for n in names},
            **{f"{n}_tuned": scores["tuned"][n][i] for n in names},
        }
        for i, ((prompt, ref, line), b, t) in enumerate(zip(golden, base["outputs"], tuned["outputs"]))
    ]
    full = {
        "summary": summary,
        "models": models,
        "comparisons": comparisons,
        "data": report.to_dict(),
        "fit": {
            "steps": fit.steps,
            "stopped": fit.stopped,
            "best_step": fit.best_step,
            "history": fit.history,
            "tokens_per_s": fit.tokens_per_second,
            "padding_share": fit.padding_share,
        },
    }
    atomic_write_bytes(run / "report.json", json.dumps(full, indent=2, default=float).encode())
    lines = "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples)
    atomic_write_bytes(run / "validation_generations.jsonl", lines.encode("utf-8"))
    html = render_html(full, samples, read_log(run), cfg)
    atomic_write_bytes(run / "report.html", html.encode("utf-8"))
    return full


def generation_verdict(models: dict[str, Any], comparisons: dict[str, Any], confidence: float) -> dict[str, Any]:
    """One sentence: are the tuned model's generated answers better than the base model's (token F1, with the
    interval); without generated answers, the held-out loss alone."""
    b, t = models["base"], models["tuned"]
    if "token_f1" not in comparisons:
        better = t["loss"] < b["loss"]
        text = (
            f"{'Lower' if better else 'No lower'} held-out loss than the base model: {t['loss']:.3f} against "
            f"{b['loss']:.3f} (no answers were generated, so answer quality is not measured)."
        )
        return {"status": "better" if better else "not measurably better", "text": text, "against": "base"}
    c = comparisons["token_f1"]
    lo, hi = c["ci_low"] * 100, c["ci_high"] * 100
    status = "better" if lo > 0 else ("worse" if hi < 0 else "not measurably better")
    figures = (
        f"token F1 of the generated answers {t['token_f1'] * 100:.1f}% against {b['token_f1'] * 100:.1f}%, "
        f"{c['difference'] * 100:+.1f} points ({int(confidence * 100)}% CI {lo:+.1f} to {hi:+.1f}, {c['n']} prompts)"
    )
    lead = {"better": "Better than", "worse": "Worse than", "not measurably better": "Not measurably better than"}
    tail = "; the interval includes zero." if status == "not measurably better" else "."
    return {"status": status, "text": f"{lead[status]} the base model: {figures}{tail}", "against": "base"}


def _fmt(x: float | None, pct: bool = True) -> str:
    if x is None:
        return "-"
    return f"{x * 100:.1f}" if pct else f"{x:.3f}"


def render_html(full: dict[str, Any], samples: list[dict[str, Any]], log: list[dict[str, Any]], cfg: Any) -> str:
    s, models = full["summary"], full["models"]
    b, t = models["base"], models["tuned"]
    parts = [f"<h1>tunesmith report: {escape(cfg.task)} · {escape(cfg.model)} · {escape(cfg.method)}</h1>"]
    v = s.get("verdict")
    if v:
        colour = {"better": "#e6f4ea", "worse": "#fce8e6"}.get(v["status"], "#fef7e0")
        parts.append(f"<p class=big style='background:{colour};padding:8px'><b>{escape(v['text'])}</b></p>")
    verdict = [
        f"<li>held-out perplexity <b>{b['perplexity']:.2f} → {t['perplexity']:.2f}</b> "
        f"(loss {b['loss']:.3f} → {t['loss']:.3f} on {s['n_loss_tokens']} answer tokens)</li>"
    ]
    for name, c in full["comparisons"].items():
        sig = "better" if c["ci_low"] > 0 else ("worse" if c["ci_high"] < 0 else "not distinguishable")
        verdict.append(
            f"<li>{escape(name)}: {c['difference'] * 100:+.1f} points "
            f"({int(c['confidence'] * 100)}% CI {c['ci_low'] * 100:+.1f} to {c['ci_high'] * 100:+.1f}, "
            f"{c['n']} prompts): <b>{sig}</b></li>"
        )
    parts.append(f"<p class=big>Tuned vs the base model on the same held-out data:</p><ul>{''.join(verdict)}</ul>")
    metric_names = [n for n in ("token_f1", "rouge_l", "exact_match") if n in t and t[n] is not None]
    head = "".join(f"<th>{n} %</th>" for n in metric_names)
    rows = "".join(
        f"<tr><td>{name}</td><td>{m['loss']:.3f}</td><td>{m['perplexity']:.2f}</td>"
        + "".join(f"<td>{_fmt(m[n])}</td>" for n in metric_names)
        + "</tr>"
        for name, m in models.items()
    )
    parts.append(
        f"<h2>Base vs tuned</h2><table><tr><th>model</th><th>loss</th><th>perplexity</th>{head}</tr>{rows}</table>"
    )
    if metric_names:
        parts.append(
            svg.bar_chart(metric_names, {n: [models[n][k] for k in metric_names] for n in models}, "Answer quality")
        )
    steps = [(r["step"], r["loss"]) for r in log if r.get("kind") == "step"]
    evals = [(r["step"], r["loss"]) for r in log if r.get("kind") == "eval"]
    fit = full["fit"]
    parts.append("<h2>Training</h2>")
    parts.append(svg.line_chart({"train loss": smooth(steps), "validation loss": evals}, "Loss", "step"))
    parts.append(
        f"<p>{fit['steps']} optimizer steps; stopped: {escape(fit['stopped'])}; best at step {fit['best_step']} "
        f"(lowest validation loss), whose weights were kept. {fit['tokens_per_s']:.0f} training tokens/s; "
        f"padding {fit['padding_share'] * 100:.1f}% of computed positions.</p>"
    )
    data = full["data"]
    tokens = data["stats"].get("tokens", {})
    if tokens:
        trows = "".join(
            f"<tr><td>{split}</td><td>{v['examples']}</td><td>{v['tokens']}</td><td>{v['answer_tokens']}</td>"
            f"<td>{v['mean']}</td><td>{v['max']}</td><td>{v['longer_than_max_length']}</td></tr>"
            for split, v in tokens.items()
            if isinstance(v, dict)
        )
        parts.append(
            "<h2>Data</h2><table><tr><th>split</th><th>examples</th><th>tokens</th><th>answer tokens</th>"
            f"<th>mean</th><th>max</th><th>over max_length</th></tr>{trows}</table>"
            f"<p>Billable training tokens (tokens × epochs, as hosted APIs count them): "
            f"<b>{tokens.get('billable_training_tokens', 0):,}</b>.</p>"
        )
    parts.append(warnings_list(data, "no data warnings"))
    if samples:
        rows = "".join(
            f"<tr><td>{x['line']}</td><td><pre>{escape(_prompt_text(x['prompt'])[-600:])}</pre></td>"
            f"<td>{escape(x['reference'])}</td><td>{escape(x['base'])}</td><td>{escape(x['tuned'])}</td></tr>"
            for x in samples[:SAMPLES_SHOWN]
        )
        parts.append(
            f"<h2>Side by side ({min(len(samples), SAMPLES_SHOWN)} of {len(samples)} held-out prompts; all in "
            "validation_generations.jsonl)</h2><table><tr><th>line</th><th>prompt</th><th>reference</th>"
            f"<th>base</th><th>tuned</th></tr>{rows}</table>"
        )
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse}"
        "td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}.big{font-size:1.2em}"
        "pre{white-space:pre-wrap;margin:0;font-size:.85em}svg{margin:8px}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>tunesmith report</title><style>{style}</style>"
        f"</head><body>{''.join(parts)}</body></html>"
    )
