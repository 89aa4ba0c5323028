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

from tunesmith.eval import panels, svg
from tunesmith.eval.compare import (
    bootstrap_mean_interval,
    bootstrap_ratio_interval,
    interval_verdict,
    paired_bootstrap_mean,
)
from tunesmith.eval.report import fit_record, read_log
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
    grounded: bool = False,
) -> dict[str, Any]:
    """``grounded``: the prompts carry retrieved documents (data.knowledge_base); each answer's support (the share
    of its words the documents it was given hold) is measured too."""
    names = ("token_f1", "rouge_l", "exact_match") if cfg.eval.exact_match else ("token_f1", "rouge_l")
    refs = [r for _, r, _ in golden]
    models: dict[str, dict[str, Any]] = {}
    scores: dict[str, dict[str, list[float]]] = {}
    for name, res in (("base", base), ("tuned", tuned)):
        scores[name] = score_all(res["outputs"], refs, names) if golden else {}
        if grounded and golden:
            scores[name]["support"] = [documents_support(out, p) for out, (p, _, _) in zip(res["outputs"], golden)]
        lo, hi = bootstrap_ratio_interval(res.get("rows", []), cfg.eval.bootstrap, cfg.eval.confidence, cfg.train.seed)
        models[name] = {
            "loss": res["loss"],
            "perplexity": math.exp(min(res["loss"], 50.0)),
            "perplexity_ci": [math.exp(min(lo, 50.0)), math.exp(min(hi, 50.0))] if math.isfinite(lo) else None,
            **{n: (float(np.mean(v)) if v else None) for n, v in scores[name].items()},
            "intervals": {
                n: bootstrap_mean_interval(v, cfg.eval.bootstrap, cfg.eval.confidence, cfg.train.seed)
                for n, v in scores[name].items()
                if v
            },
        }
    comparisons = {
        n: paired_bootstrap_mean(
            scores["tuned"][n], scores["base"][n], cfg.eval.bootstrap, cfg.eval.confidence, cfg.train.seed
        )
        for n in scores["tuned"]
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
        "max_new_tokens": tuned.get("max_new_tokens"),
        "max_length": cfg.train.max_length,
    }
    summary["verdict"] = generation_verdict(models, comparisons, cfg.eval.confidence)
    kept = getattr(fit, "kept", None) or {}
    if kept.get("model") == "pre-trained model":
        tuned_f1, base_f1 = (kept.get(k, {}).get("token_f1") for k in ("fine_tuned_selection", "frozen_selection"))
        figures = (
            f" (token F1 of its answers {tuned_f1 * 100:.1f}% against the base model's {base_f1 * 100:.1f}%)"
            if tuned_f1 is not None and base_f1 is not None
            else ""
        )
        summary["verdict"]["text"] += (
            f" Fine-tuning did not beat the base model on the selection split{figures}, so the run keeps the base "
            "model as it is (classifier.keep_better: false keeps the tuned one)."
        )
    summary["kept"] = kept or None
    samples = [
        {
            "line": line,
            "prompt": prompt,
            "reference": ref,
            "base": b,
            "tuned": t,
            **{f"{n}_base": scores["base"][n][i] for n in scores["base"]},
            **{f"{n}_tuned": scores["tuned"][n][i] for n in scores["tuned"]},
        }
        for i, ((prompt, ref, line), b, t) in enumerate(zip(golden, base["outputs"], tuned["outputs"]))
    ]
    full = {
        "summary": summary,
        "models": models,
        "comparisons": comparisons,
        "data": report.to_dict(),
        "fit": {**fit_record(fit), "tokens_per_s": fit.tokens_per_second, "padding_share": fit.padding_share},
    }
    atomic_write_bytes(run / "report.json", json.dumps(full, indent=2, default=float).encode())
    lines = "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples)
    atomic_write_bytes(run / "validation_generations.jsonl", lines.encode("utf-8"))
    html = render_html(full, samples, read_log(run), cfg, run, fit)
    atomic_write_bytes(run / "report.html", html.encode("utf-8"))
    return full


def documents_support(answer: str, prompt: Any) -> float:
    """The share of an answer's words found in the documents its prompt gave it (knowledge/raft.py's layout)."""
    from tunesmith.knowledge.raft import overlap

    text = _prompt_text(prompt)
    documents = text.split("Documents:", 1)[-1].rsplit("\n\nQuestion: ", 1)[0]
    return overlap(answer, documents)


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
    figures = (
        f"token F1 of the generated answers {t['token_f1'] * 100:.1f}% against {b['token_f1'] * 100:.1f}%, "
        f"{c['difference'] * 100:+.1f} points ({int(confidence * 100)}% CI {lo:+.1f} to {hi:+.1f}, {c['n']} prompts)"
    )
    return interval_verdict(c, confidence, "the base model", figures)


def _fmt(x: float | None, pct: bool = True) -> str:
    if x is None:
        return "-"
    return f"{x * 100:.1f}" if pct else f"{x:.3f}"


SHOWN = {"token_f1": "token F1", "rouge_l": "ROUGE-L", "exact_match": "exact match", "support": "support"}
MEANING = {
    "loss": "mean loss per reference-answer token (teacher-forced: the model reads the reference)",
    "perplexity": "exp(loss): how surprised the model is by the reference answers; lower is better",
    "token_f1": "word overlap of the answer the model writes itself (greedy) with the reference",
    "rouge_l": "longest common word sequence of the written answer and the reference",
    "exact_match": "written answers identical to the reference (after normalising case and spaces)",
    "support": "share of the written answer's words found in the retrieved documents it was given",
}


def _reconcile(s: dict[str, Any], models: dict[str, Any], comps: dict[str, Any], confidence: float) -> str:
    """One table for what reads the reference (loss, perplexity) and what scores the written answers, with the
    intervals, and a line on how to read them together."""
    b, t = models["base"], models["tuned"]

    def ppl(m: dict[str, Any]) -> str:
        ci = m.get("perplexity_ci")
        return f"{m['perplexity']:.2f}" + (f" <small>({ci[0]:.2f}–{ci[1]:.2f})</small>" if ci else "")

    rows = [
        f"<tr><td>loss</td><td>{b['loss']:.3f}</td><td>{t['loss']:.3f}</td><td>{t['loss'] - b['loss']:+.3f}</td>"
        f"<td class=desc>{escape(MEANING['loss'])}</td></tr>",
        f"<tr><td>perplexity</td><td>{ppl(b)}</td><td>{ppl(t)}</td><td>{t['perplexity'] - b['perplexity']:+.2f}"
        f"</td><td class=desc>{escape(MEANING['perplexity'])}</td></tr>",
    ]
    for name, c in comps.items():
        rows.append(
            f"<tr><td>{escape(SHOWN.get(name, name))} %</td><td>{_fmt(b[name])}</td><td>{_fmt(t[name])}</td><td>"
            f"{c['difference'] * 100:+.1f} <small>({c['ci_low'] * 100:+.1f} to {c['ci_high'] * 100:+.1f})</small>"
            f"</td><td class=desc>{escape(MEANING.get(name, ''))}</td></tr>"
        )
    lower_ppl = t["loss"] < b["loss"]
    f1 = comps.get("token_f1")
    kept_base = (s.get("kept") or {}).get("model") == "pre-trained model"
    if kept_base:
        reading = (
            "The run kept the base model (its tuned answers to the selection prompts were no better), so the kept "
            "column holds the base model's own figures; the training record below is of the weights it set aside."
        )
    elif f1 is None:
        reading = "No answers were generated (eval.generate_examples is 0): only the reference-reading figures."
    elif lower_ppl and f1["ci_low"] <= 0:
        reading = (
            "Perplexity fell but the written answers are not measurably better: the model learned to expect the "
            "references' words without yet writing better answers itself (greedy decoding, short answers, or too few "
            "steps). Read the side-by-side answers below before shipping."
        )
    elif lower_ppl:
        reading = "Both readings agree: the references became more likely and the written answers got better."
    else:
        reading = "Perplexity did not fall: the tuned model does not expect the reference answers more than the base."
    caps = (
        f"Answers were generated greedily for {s['n_generated']} held-out prompts, at most "
        f"{s.get('max_new_tokens') or '-'} new tokens each; training and loss read at most "
        f"{s.get('max_length') or '-'} tokens per example. Intervals: {int(confidence * 100)}% bootstrap."
    )
    column = "kept (base model)" if kept_base else "tuned"
    return (
        f"<h2>Base vs tuned</h2><div class=scroll><table class=num><tr><th>figure</th><th>base</th><th>{column}</th>"
        f"<th>tuned − base (interval)</th><th>what it measures</th></tr>{''.join(rows)}</table></div>"
        f"<p>{escape(reading)}</p><p class=note>{escape(caps)}</p>"
    )


def render_html(
    full: dict[str, Any],
    samples: list[dict[str, Any]],
    log: list[dict[str, Any]],
    cfg: Any,
    run: Path | None = None,
    fit: Any = None,
) -> str:
    s, models = full["summary"], full["models"]
    name = run.name if run is not None else "run"
    parts = [
        f"<h1>{escape(name)}: {escape(cfg.task)} · {escape(cfg.model)} · {escape(cfg.method)}</h1>",
        panels.verdict_box(s.get("verdict"), panels.diagnoses(full["fit"], full["data"], s["n_generated"], log)),
        panels.data_checks(full["data"]),
        _reconcile(s, models, full["comparisons"], cfg.eval.confidence),
    ]
    metric_names = [n for n in ("token_f1", "rouge_l", "exact_match", "support") if models["tuned"].get(n) is not None]
    if metric_names:
        parts.append(
            svg.bar_chart(
                [SHOWN.get(n, n) for n in metric_names],
                {n: [models[n][k] for k in metric_names] for n in ("base", "tuned")},
                "Written-answer quality (whiskers: 95% intervals)",
                errors={n: [tuple(models[n]["intervals"][k]) for k in metric_names] for n in ("base", "tuned")},
            )
        )
    fitd = full["fit"]
    parts.append(panels.training_section(log, fitd, fitd.get("metric") or "loss", ""))
    parts.append(
        f"<p class=note>{fitd['tokens_per_s']:.0f} training tokens/s; padding {fitd['padding_share'] * 100:.1f}% of "
        "computed positions.</p>"
    )
    tokens = full["data"]["stats"].get("tokens", {})
    if tokens:
        trows = "".join(
            f"<tr><td>{split}</td><td>{v['examples']}</td><td>{v['tokens']}</td><td>{v['answer_tokens']}</td>"
            f"<td>{v['mean']}</td><td>{v['max']}</td><td>{v['longer_than_max_length']}</td></tr>"
            for split, v in tokens.items()
            if isinstance(v, dict)
        )
        parts.append(
            "<h2>Tokens</h2><div class=scroll><table class=num><tr><th>split</th><th>examples</th><th>tokens</th>"
            "<th>answer tokens</th><th>mean</th><th>max</th><th>over max_length</th></tr>"
            f"{trows}</table></div><p>Billable training tokens (tokens × epochs, as hosted APIs count them): "
            f"<b>{tokens.get('billable_training_tokens', 0):,}</b>.</p>"
        )
    if samples:
        rows = "".join(
            f"<tr><td>{x['line']}</td><td class=text><pre>{escape(_prompt_text(x['prompt'])[-600:])}</pre></td>"
            f"<td class=text><pre>{escape(x['reference'])}</pre></td><td class=text><pre>{escape(x['base'])}</pre></td>"
            f"<td class=text><pre>{escape(x['tuned'])}</pre></td></tr>"
            for x in samples[:SAMPLES_SHOWN]
        )
        parts.append(
            f"<h2>Side by side ({min(len(samples), SAMPLES_SHOWN)} of {len(samples)} held-out prompts; all in "
            "validation_generations.jsonl)</h2><div class=scroll><table class=sbs><tr><th>line</th><th>prompt "
            "(its last 600 characters)</th><th>reference</th><th>base</th><th>tuned</th></tr>"
            f"{rows}</table></div>"
        )
    if run is not None and fit is not None:
        parts.append(panels.run_panel(run, cfg, fit))
    return panels.page(f"{name}: tunesmith report", "".join(parts))
