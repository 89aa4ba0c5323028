"""report.json and a self-contained report.html: how good is the tuned model, and compared with what."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.eval import svg
from tunesmith.eval.compare import majority_predictions, paired_bootstrap
from tunesmith.eval.metrics import classification_metrics, slice_metrics
from tunesmith.files import atomic_write_bytes


def read_log(run: Path) -> list[dict[str, Any]]:
    path = run / "logs" / "train.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


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
    """``gallery``: extra HTML (an image task's grid of misclassified images) placed before the mistakes table."""
    k, n = len(labels), len(val_y)
    tuned = classification_metrics(val_y, probs, labels)
    maj_pred = majority_predictions(train_y, n)
    maj_probs = np.eye(k)[maj_pred]
    models = {"majority class": classification_metrics(val_y, maj_probs, labels)}
    ev = cfg.eval
    comparisons = {
        "majority class": paired_bootstrap(
            val_y, probs.argmax(1), maj_pred, k, ev.bootstrap, ev.confidence, cfg.train.seed
        )
    }
    if probe is not None:
        models["linear probe (frozen pre-trained)"] = classification_metrics(val_y, probe["probs"], labels)
        comparisons["linear probe (frozen pre-trained)"] = paired_bootstrap(
            val_y, probs.argmax(1), probe["probs"].argmax(1), k, ev.bootstrap, ev.confidence, cfg.train.seed
        )
    models["tuned"] = tuned
    slice_res = slice_metrics(val_y, probs, labels, slices) if slices else {}
    general = "linear probe (frozen pre-trained)" if probe is not None else "majority class"
    summary = {
        "n": n,
        "accuracy": tuned["accuracy"],
        "macro_f1": tuned["macro_f1"],
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
        "probe": {"C": probe["C"], "features": probe["features"]} if probe else None,
        "slices": slice_res,
        "data": report.to_dict(),
        "fit": {"steps": fit.steps, "stopped": fit.stopped, "best_step": fit.best_step, "history": fit.history},
    }
    atomic_write_bytes(run / "report.json", json.dumps(full, indent=2, default=float).encode())
    _write_predictions(run, labels, val_y, probs, samples, sample_key)
    atomic_write_bytes(
        run / "report.html",
        render_html(full, read_log(run), cfg, labels, val_y, probs, samples, gallery).encode("utf-8"),
    )
    return full


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
) -> str:
    title = f"<h1>tunesmith report: {escape(cfg.task)} · {escape(cfg.model)} · {escape(cfg.method)}</h1>"
    parts = [
        title,
        _verdict(full["summary"], full["comparisons"]),
        _base_vs_tuned(full["models"]),
        _training(log, full["fit"], cfg.train.metric),
        _per_class(full["models"]["tuned"], labels),
        _slices(full["slices"]),
        data_checks(full["data"]),
        gallery,
        _mistakes(labels, y, probs, samples),
    ]
    return page("tunesmith report", "".join(parts))


def page(title: str, body: str) -> str:
    style = (
        "body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}table{border-collapse:collapse}"
        "td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}.big{font-size:1.2em}svg{margin:8px}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title><style>{style}</style>"
        f"</head><body>{body}</body></html>"
    )


GENERAL_NAMES = {
    "linear probe (frozen pre-trained)": "the general model (a linear probe on the frozen pre-trained model)",
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
    return {"status": status, "text": text, "against": general_name}


def _verdict(s: dict[str, Any], comps: dict[str, Any]) -> str:
    verdict = []
    for name, c in comps.items():
        a = c["accuracy"]
        sig = "better" if a["ci_low"] > 0 else ("worse" if a["ci_high"] < 0 else "not distinguishable")
        verdict.append(
            f"<li>vs <b>{escape(name)}</b>: accuracy {a['difference'] * 100:+.1f} points "
            f"({int(c['confidence'] * 100)}% CI {a['ci_low'] * 100:+.1f} to {a['ci_high'] * 100:+.1f}): "
            f"<b>{sig}</b></li>"
        )
    v = s.get("verdict")
    colour = {"better": "#e6f4ea", "worse": "#fce8e6"}.get(v["status"], "#fef7e0") if v else ""
    top = f"<p class=big style='background:{colour};padding:8px'><b>{escape(v['text'])}</b></p>" if v else ""
    return (
        f"{top}<p class=big>Tuned model: accuracy <b>{_pct(s['accuracy'])}%</b>, macro-F1 "
        f"<b>{_pct(s['macro_f1'])}%</b> on {s['n']} held-out examples.</p><ul>{''.join(verdict)}</ul>"
    )


def _base_vs_tuned(models: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{_pct(m['accuracy'])}</td><td>{_pct(m['macro_f1'])}</td>"
        f"<td>{m['ece']:.3f}</td></tr>"
        for name, m in models.items()
    )
    bars = svg.bar_chart(
        ["accuracy", "macro-F1"],
        {n: [m["accuracy"], m["macro_f1"]] for n, m in models.items()},
        "Base vs tuned (same validation data)",
    )
    return (
        "<h2>Base vs tuned</h2><table><tr><th>model</th><th>accuracy %</th><th>macro-F1 %</th>"
        f"<th>ECE</th></tr>{rows}</table>{bars}"
    )


def _training(log: list[dict[str, Any]], fit: dict[str, Any], metric: str) -> str:
    steps = [(r["step"], r["loss"]) for r in log if r.get("kind") == "step" and r.get("phase") != "head"]
    steps = steps or [(r["step"], r["loss"]) for r in log if r.get("kind") == "step"]
    evals = [(r["step"], r["loss"]) for r in log if r.get("kind") == "eval"]
    chart = svg.line_chart({"train loss": smooth(steps), "validation loss": evals}, "Loss", "step")
    return (
        f"<h2>Training</h2>{chart}<p>{fit['steps']} optimizer steps; stopped: {escape(fit['stopped'])}; best at "
        f"step {fit['best_step']} (by {escape(metric)}), whose weights were kept.</p>"
    )


def _per_class(tuned: dict[str, Any], labels: list[str]) -> str:
    pc = tuned["per_class"]
    bars = svg.bar_chart(
        labels,
        {m: [pc[lab][m] for lab in labels] for m in ("precision", "recall", "f1")},
        "Precision, recall, F1 per class",
    )
    return f"<h2>Per class</h2>{bars}" + svg.heatmap(tuned["confusion_matrix"], labels, "Confusion matrix (rows: true)")


def _slices(slices: dict[str, Any]) -> str:
    if not slices:
        return ""
    parts = ["<h2>Slices</h2>"]
    for col, res in slices.items():
        vals = list(res["values"])
        parts.append(
            svg.bar_chart(vals, {"accuracy": [res["values"][v]["accuracy"] for v in vals]}, f"Accuracy by {col}")
        )
        parts.append(
            f"<p>Largest accuracy gap across <b>{escape(col)}</b>: {_pct(res['accuracy_gap'])} points "
            f"(best {escape(str(res['best']))}, worst {escape(str(res['worst']))}).</p>"
        )
    return "".join(parts)


def warnings_list(data: dict[str, Any], empty: str = "no warnings") -> str:
    """The data checks' warnings as an HTML list, each with its file and line."""
    items = "".join(
        f"<li>{escape(w['message'])} <small>({escape(str(w['file']))}"
        f"{':' + str(w['line']) if w['line'] else ''})</small></li>"
        for w in data["warnings"]
    )
    return f"<ul>{items or f'<li>{empty}</li>'}</ul>"


def data_checks(data: dict[str, Any]) -> str:
    return f"<h2>Data checks</h2>{warnings_list(data)}<pre>{escape(json.dumps(data['stats'], indent=1))}</pre>"


def _mistakes(labels: list[str], y: np.ndarray, probs: np.ndarray, samples: list[tuple[str, int]]) -> str:
    wrong = [i for i in np.argsort(-probs.max(1)) if probs[i].argmax() != y[i]][:12]
    rows = "".join(
        f"<tr><td>{samples[i][1]}</td><td>{escape(samples[i][0][:240])}</td><td>{escape(labels[y[i]])}</td>"
        f"<td>{escape(labels[int(probs[i].argmax())])} ({probs[i].max():.2f})</td></tr>"
        for i in wrong
    )
    return (
        "<h2>Most confident mistakes</h2><table><tr><th>line</th><th>text</th><th>true</th>"
        f"<th>predicted</th></tr>{rows}</table>"
    )


def smooth(points: list[tuple[float, float]], window: int = 10) -> list[tuple[float, float]]:
    if len(points) < window * 2:
        return points
    vals = np.convolve([p[1] for p in points], np.ones(window) / window, mode="valid")
    return [(points[i + window - 1][0], float(v)) for i, v in enumerate(vals)]
