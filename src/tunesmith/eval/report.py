"""report.json and a self-contained report.html: how good is the tuned model, and compared with what."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.eval import panels, svg
from tunesmith.eval.compare import bootstrap_interval, majority_predictions, paired_bootstrap
from tunesmith.eval.metrics import binary_curves, classification_metrics, reliability, slice_metrics
from tunesmith.eval.svg import clip
from tunesmith.files import atomic_write_bytes


def read_log(run: Path) -> list[dict[str, Any]]:
    """The run's JSON-lines log; a line cut short (a run killed mid-write, or read while it writes) is passed over."""
    path = run / "logs" / "train.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def build_report(
    run: Path,
    *,
    cfg: Any,
    labels: list[str],
    val_y: np.ndarray,
    probs: np.ndarray,
    train_y: np.ndarray,
    probe: dict[str, Any] | None,
    slices: dict[str, list[str]],
    report: Any,
    fit: Any,
    samples: list[tuple[str, int]],
    gallery: str = "",
    sample_key: str = "text",
) -> dict[str, Any]:
    """``gallery``: an image task's grid of misclassified images, shown instead of the mistakes table."""
    k, n = len(labels), len(val_y)
    ev, seed = cfg.eval, cfg.train.seed
    tuned = classification_metrics(val_y, probs, labels)
    maj_pred = majority_predictions(train_y, n)
    models = {"majority class": classification_metrics(val_y, np.eye(k)[maj_pred], labels)}
    comparisons = {
        "majority class": paired_bootstrap(val_y, probs.argmax(1), maj_pred, k, ev.bootstrap, ev.confidence, seed)
    }
    predictions = {"majority class": maj_pred}
    if probe is not None:
        models[PROBE] = classification_metrics(val_y, probe["probs"], labels)
        predictions[PROBE] = probe["probs"].argmax(1)
        comparisons[PROBE] = paired_bootstrap(
            val_y, probs.argmax(1), predictions[PROBE], k, ev.bootstrap, ev.confidence, seed
        )
    models["tuned"], predictions["tuned"] = tuned, probs.argmax(1)
    for name, m in models.items():  # each model's own interval: the whiskers, and macro-F1's on the page
        m["intervals"] = bootstrap_interval(val_y, predictions[name], k, ev.bootstrap, ev.confidence, seed)
    tuned["reliability"] = reliability(val_y, probs)
    if k == 2:
        tuned["curves"] = binary_curves(val_y, probs[:, 1])
    slice_res = slice_metrics(val_y, probs, labels, slices) if slices else {}
    general = PROBE if probe is not None else "majority class"
    summary = {
        "n": n,
        "accuracy": tuned["accuracy"],
        "macro_f1": tuned["macro_f1"],
        "accuracy_ci": list(tuned["intervals"]["accuracy"]),
        "macro_f1_ci": list(tuned["intervals"]["macro_f1"]),
        "ece": tuned["ece"],
        "baselines": {
            name: {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
            for name, m in models.items()
            if name != "tuned"
        },
        "tuned_minus": {
            name: {m: {kk: c[m][kk] for kk in ("difference", "ci_low", "ci_high")} for m in ("accuracy", "macro_f1")}
            for name, c in comparisons.items()
        },
        "kept": getattr(fit, "kept", None),
    }
    summary["verdict"] = verdict(
        tuned["accuracy"], models[general]["accuracy"], comparisons[general]["accuracy"], general, summary["kept"], ev
    )
    full = {
        "summary": summary,
        "models": models,
        "comparisons": comparisons,
        "probe": {k: probe[k] for k in ("C", "features", "fitted_on") if k in probe} if probe else None,
        "slices": slice_res,
        "data": report.to_dict(),
        "fit": fit_record(fit),
    }
    atomic_write_bytes(run / "report.json", json.dumps(full, indent=2, default=float).encode())
    _write_predictions(run, labels, val_y, probs, samples, sample_key)
    atomic_write_bytes(
        run / "report.html",
        render_html(full, read_log(run), cfg, labels, val_y, probs, samples, gallery, run, fit).encode("utf-8"),
    )
    return full


def fit_record(fit: Any) -> dict[str, Any]:
    return {
        "steps": fit.steps,
        "stopped": fit.stopped,
        "best_step": fit.best_step,
        "metric": fit.metric,
        "warm_start": fit.warm_start,
        "history": fit.history,
        "selection": fit.best,
        "refit": getattr(fit, "refit", None),
    }


def _write_predictions(
    run: Path, labels: list[str], y: np.ndarray, probs: np.ndarray, samples: list[tuple[str, int]], key: str = "text"
) -> None:
    lines = []
    for (text, line), t, p in zip(samples, y, probs):
        lines.append(
            json.dumps(
                {
                    "line": line,
                    key: text,
                    "label": labels[t],
                    "predicted": labels[int(p.argmax())],
                    "score": round(float(p.max()), 5),
                },
                ensure_ascii=False,
            )
        )
    atomic_write_bytes(run / "validation_predictions.jsonl", ("\n".join(lines) + "\n").encode("utf-8"))


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def render_html(
    full: dict[str, Any],
    log: list[dict[str, Any]],
    cfg: Any,
    labels: list[str],
    y: np.ndarray,
    probs: np.ndarray,
    samples: list[tuple[str, int]],
    gallery: str = "",
    run: Path | None = None,
    fit: Any = None,
) -> str:
    name = run.name if run is not None else "run"
    s = full["summary"]
    kept = s.get("kept") or {}
    parts = [
        f"<h1>{escape(name)}: {escape(cfg.task)} · {escape(cfg.model)} · {escape(cfg.method)}</h1>",
        panels.verdict_box(s.get("verdict"), panels.diagnoses(full["fit"], full["data"], s["n"], log)),
        _headline(s, full["comparisons"]),
        panels.data_checks(full["data"]),
        _base_vs_tuned(full["models"], full.get("probe")),
        panels.training_section(log, full["fit"], full["fit"].get("metric") or cfg.train.metric, kept.get("why", "")),
        _per_class(full["models"]["tuned"], labels),
        _calibration(full["models"]["tuned"]),
        _curves(full["models"]["tuned"], labels),
        _slices(full["slices"]),
        gallery or _mistakes(labels, y, probs, samples),
        panels.run_panel(run, cfg, fit) if run is not None and fit is not None else "",
    ]
    return panels.page(f"{name}: tunesmith report", "".join(parts))


PROBE = "linear probe (frozen pre-trained)"
GENERAL_NAMES = {
    PROBE: "the general model (a linear probe on the frozen pre-trained model)",
    "majority class": "the majority class (no probe was run)",
}


def verdict(
    tuned: float, general: float, diff: dict[str, Any], general_name: str, kept: dict[str, Any] | None, ev: Any
) -> dict[str, Any]:
    """One sentence: better than the general model or not, by how much, with the interval."""
    lo, hi, d = diff["ci_low"] * 100, diff["ci_high"] * 100, diff["difference"] * 100
    status = "better" if lo > 0 else ("worse" if hi < 0 else "not measurably better")
    against = GENERAL_NAMES.get(general_name, general_name)
    figures = (
        f"accuracy {tuned * 100:.1f}% against {general * 100:.1f}%, {d:+.1f} points "
        f"({int(ev.confidence * 100)}% CI {lo:+.1f} to {hi:+.1f})"
    )
    text = {
        "better": f"Better than {against}: {figures}.",
        "worse": f"Worse than {against}: {figures}.",
        "not measurably better": f"Not measurably better than {against}: {figures}; the interval includes zero.",
    }[status]
    if kept and kept.get("model") == "frozen encoder + head" and "why" in kept:  # fine_tune chose it over tuning
        text = f"Kept the frozen encoder with a trained head: {kept['why']}. {text}"
    elif kept and kept.get("no_choice"):
        text = f"{text} No choice was made: {kept['why']}."
    return {"status": status, "text": text, "against": general_name}


def _headline(s: dict[str, Any], comps: dict[str, Any]) -> str:
    items = []
    for name, c in comps.items():
        a, f = c["accuracy"], c["macro_f1"]
        sig = "better" if a["ci_low"] > 0 else ("worse" if a["ci_high"] < 0 else "not distinguishable")
        items.append(
            f"<li>vs <b>{escape(name)}</b>: accuracy {a['difference'] * 100:+.1f} points "
            f"({int(c['confidence'] * 100)}% CI {a['ci_low'] * 100:+.1f} to {a['ci_high'] * 100:+.1f}), macro-F1 "
            f"{f['difference'] * 100:+.1f} ({f['ci_low'] * 100:+.1f} to {f['ci_high'] * 100:+.1f}): <b>{sig}</b></li>"
        )
    acc_lo, acc_hi = s["accuracy_ci"]
    f1_lo, f1_hi = s["macro_f1_ci"]
    return (
        f"<p class=big>Tuned model on {s['n']} held-out examples: accuracy <b>{_pct(s['accuracy'])}%</b> "
        f"<small>({_pct(acc_lo)} to {_pct(acc_hi)})</small>, macro-F1 <b>{_pct(s['macro_f1'])}%</b> "
        f"<small>({_pct(f1_lo)} to {_pct(f1_hi)})</small>.</p><ul>{''.join(items)}</ul>"
    )


def _base_vs_tuned(models: dict[str, Any], probe: dict[str, Any] | None = None) -> str:
    def ci(m: dict[str, Any], key: str) -> str:
        lo, hi = m["intervals"][key]
        return f"{_pct(m[key])} <small>({_pct(lo)}–{_pct(hi)})</small>"

    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{ci(m, 'accuracy')}</td><td>{ci(m, 'macro_f1')}</td>"
        f"<td>{m['ece']:.3f}</td></tr>"
        for name, m in models.items()
    )
    bars = svg.bar_chart(
        ["accuracy", "macro-F1"],
        {n: [m["accuracy"], m["macro_f1"]] for n, m in models.items()},
        "Base vs tuned on the same validation data (whiskers: 95% intervals)",
        errors={n: [m["intervals"]["accuracy"], m["intervals"]["macro_f1"]] for n, m in models.items()},
    )
    probe_note = (
        f"<p class=note>The linear probe: a logistic regression (C = {probe['C']:g}) on the "
        f"{escape(str(probe['features']))}; fitted on {escape(str(probe['fitted_on']))}.</p>"
        if probe and {"C", "features", "fitted_on"} <= set(probe)
        else ""
    )
    return (
        "<h2>Base vs tuned</h2><div class=scroll><table class=num><tr><th>model</th><th>accuracy % (interval)</th>"
        f"<th>macro-F1 % (interval)</th><th>ECE</th></tr>{rows}</table></div>{probe_note}{bars}"
    )


def _per_class(tuned: dict[str, Any], labels: list[str]) -> str:
    pc = tuned["per_class"]
    rows = "".join(
        f"<tr><td>{escape(lab)}</td><td>{_pct(pc[lab]['precision'])}</td><td>{_pct(pc[lab]['recall'])}</td>"
        f"<td>{_pct(pc[lab]['f1'])}</td><td>{pc[lab]['support']}</td></tr>"
        for lab in labels
    )
    bars = svg.bar_chart(
        labels,
        {m: [pc[lab][m] for lab in labels] for m in ("precision", "recall", "f1")},
        "Precision, recall, F1 per class",
    )
    cm = tuned["confusion_matrix"]
    return (
        f"<h2>Per class</h2>{bars}<details><summary>Per-class table</summary><div class=scroll><table class=num>"
        f"<tr><th>class</th><th>precision %</th><th>recall %</th><th>F1 %</th><th>n</th></tr>{rows}</table></div>"
        "</details><div class=row>"
        + svg.heatmap(cm, labels, "Confusion matrix: counts (rows true)")
        + svg.heatmap(cm, labels, "Confusion matrix: % of each true class", normalise=True)
        + "</div>"
    )


def _calibration(tuned: dict[str, Any]) -> str:
    bins = tuned.get("reliability") or []
    if not bins:
        return ""
    chart = _unit_chart(
        ("perfect calibration", [(0.0, 0.0), (1.0, 1.0)]),
        {"tuned model": [(b["confidence"], b["accuracy"]) for b in bins]},
        "Reliability: accuracy at each confidence",
        "mean confidence in the bin",
        "accuracy",
    )
    ece = tuned["ece"]
    over = sum(b["n"] * (b["confidence"] - b["accuracy"]) for b in bins)
    lean = "over-confident (says more than it gets right)" if over > 0 else "under-confident"
    reading = (
        f"ECE {ece:.3f}: confidence and accuracy agree within {100 * ece:.1f} points on average, so the "
        "probabilities can be read as they are."
        if ece < 0.05
        else f"ECE {ece:.3f}: the model is {lean} by {100 * ece:.1f} points on average; treat its scores as a "
        "ranking more than as probabilities."
    )
    return f"<h2>Calibration</h2>{chart}<p>{escape(reading)}</p>"


def _curves(tuned: dict[str, Any], labels: list[str]) -> str:
    c = tuned.get("curves") or {}
    if not c:
        return ""
    roc = _unit_chart(
        ("chance", [(0.0, 0.0), (1.0, 1.0)]),
        {f"ROC (AUC {c['roc_auc']:.3f})": c["roc"]},
        f"ROC, positive class {labels[1]}",
        "false positive rate",
        "true positive rate",
    )
    rate = c["positive_rate"]
    pr = _unit_chart(
        ("chance", [(0.0, rate), (1.0, rate)]),
        {f"precision-recall (AP {c['average_precision']:.3f})": c["pr"]},
        f"Precision-recall, positive class {labels[1]}",
        "recall",
        "precision",
    )
    return f"<h2>Threshold curves</h2><div class=row>{roc}{pr}</div>"


def _unit_chart(
    reference: tuple[str, list[tuple[float, float]]],
    series: dict[str, list[tuple[float, float]]],
    title: str,
    xlabel: str,
    ylabel: str,
) -> str:
    """A chart on the unit square (calibration, ROC, precision-recall): the dashed reference line first."""
    name, line = reference
    return svg.line_chart(
        {name: line, **series}, title, xlabel, ylabel, xlim=(0, 1), ylim=(0, 1), dashed={name}, w=420, h=320
    )


def _slices(slices: dict[str, Any]) -> str:
    if not slices:
        return ""
    parts = ["<h2>Slices</h2>"]
    for col, res in slices.items():
        vals = list(res["values"])
        rows = "".join(
            f"<tr><td>{escape(str(v))}</td><td>{res['values'][v]['n']}</td><td>{_pct(res['values'][v]['accuracy'])}"
            f"</td><td>{_pct(res['values'][v]['macro_f1'])}</td></tr>"
            for v in vals
        )
        small = [str(v) for v in vals if res["values"][v]["n"] < 30]
        caution = (
            f" Slices with under 30 examples ({escape(', '.join(small[:5]))}) vary a lot by chance." if small else ""
        )
        parts.append(
            svg.bar_chart(
                [f"{v} (n={res['values'][v]['n']})" for v in vals],
                {"accuracy": [res["values"][v]["accuracy"] for v in vals]},
                f"Accuracy by {col}",
            )
            + f"<div class=scroll><table class=num><tr><th>{escape(col)}</th><th>n</th><th>accuracy %</th>"
            f"<th>macro-F1 %</th></tr>{rows}</table></div>"
            f"<p>Largest accuracy gap across <b>{escape(col)}</b>: {_pct(res['accuracy_gap'])} points "
            f"(best {escape(str(res['best']))}, worst {escape(str(res['worst']))}).{caution}</p>"
        )
    return "".join(parts)


def _mistakes(labels: list[str], y: np.ndarray, probs: np.ndarray, samples: list[tuple[str, int]]) -> str:
    wrong = [i for i in np.argsort(-probs.max(1)) if probs[i].argmax() != y[i]][:12]
    if not wrong:
        return "<h2>Most confident mistakes</h2><p>No mistakes on the validation data.</p>"
    rows = "".join(
        f"<tr><td>{samples[i][1]}</td><td class=text>{escape(clip(samples[i][0], 400))}</td>"
        f"<td>{escape(labels[y[i]])}</td><td>{escape(labels[int(probs[i].argmax())])} ({probs[i].max():.2f})</td></tr>"
        for i in wrong
    )
    return (
        "<h2>Most confident mistakes</h2><div class=scroll><table><tr><th>line</th><th>text</th><th>true</th>"
        f"<th>predicted (score)</th></tr>{rows}</table></div>"
        "<p class=note>All validation predictions are in validation_predictions.jsonl.</p>"
    )
