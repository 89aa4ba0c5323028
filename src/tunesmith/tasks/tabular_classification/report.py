"""The rare-event report: the tuned model beside the general model's anomaly score, IsolationForest, gradient-
boosted trees and logistic regression on the same validation rows, with bootstrap intervals on the differences;
the same with fewer labels; the decision threshold for eval.cost; calibration; slices. report.json, report.html
and validation_predictions.jsonl."""

from __future__ import annotations

import json
import time
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.config import Config
from tunesmith.data.validate import DataReport
from tunesmith.eval import panels, svg
from tunesmith.eval.metrics import classification_metrics
from tunesmith.eval.rare_events import (
    average_precision,
    calibration,
    choose_threshold,
    decision,
    detection_metrics,
    interval,
    paired_difference,
    recall_at_fpr,
)
from tunesmith.eval.report import fit_record, read_log
from tunesmith.files import atomic_write_bytes
from tunesmith.train.result import FitResult

TUNED = "tuned"
ANOMALY = "general model: anomaly score"
FOREST = "isolation forest"
TREES = "gradient-boosted trees"
LOGISTIC = "logistic regression"
USES_LABELS = {TUNED: True, ANOMALY: False, FOREST: False, TREES: True, LOGISTIC: True}
METRICS = ("average_precision", "roc_auc", "recall_at_fpr", "precision_at_k")


# --- the classical baselines, on the same encoded rows ------------------------------------------------------
def _matrix(inputs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return np.hstack([inputs[0].astype(np.float64), inputs[1].astype(np.float64)])


def _one_hot(inputs: tuple[np.ndarray, np.ndarray], cards: list[int]) -> np.ndarray:
    num, cat = inputs
    parts = [num.astype(np.float64)] + [np.eye(c)[cat[:, i]] for i, c in enumerate(cards)]
    return np.hstack(parts)


def labelled_baselines(prep: Any, rows: np.ndarray, seed: int, t: int) -> dict[str, tuple[np.ndarray, float]]:
    """Trees and logistic regression trained on the training rows ``rows``: (validation scores of class t,
    seconds)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    y = prep.train_y[rows]
    train = tuple(a[rows] for a in prep.train_inputs)
    n_num = prep.train_inputs[0].shape[1]
    cards = prep.schema.cardinalities
    out = {}
    start = time.perf_counter()
    mask = [False] * n_num + [True] * len(cards)
    trees = HistGradientBoostingClassifier(categorical_features=mask if any(mask) else None, random_state=seed)
    trees.fit(_matrix(train), y)
    out[TREES] = (_class_scores(trees, _matrix(prep.val_inputs), t), time.perf_counter() - start)
    start = time.perf_counter()
    logistic = LogisticRegression(max_iter=2000)
    logistic.fit(_one_hot(train, cards), y)
    out[LOGISTIC] = (_class_scores(logistic, _one_hot(prep.val_inputs, cards), t), time.perf_counter() - start)
    return out


def _class_scores(model: Any, x: np.ndarray, t: int) -> np.ndarray:
    classes = list(model.classes_)
    return model.predict_proba(x)[:, classes.index(t)] if t in classes else np.zeros(len(x))


def isolation_forest(prep: Any, seed: int) -> tuple[np.ndarray, float]:
    from sklearn.ensemble import IsolationForest

    start = time.perf_counter()
    forest = IsolationForest(random_state=seed).fit(_matrix(prep.pretrain_inputs))
    return -forest.score_samples(_matrix(prep.val_inputs)), time.perf_counter() - start


# --- the report ---------------------------------------------------------------------------------------------
def build_report(
    run: Path, cfg: Config, model: Any, prep: Any, baseline: Any, report: DataReport, fit: FitResult, fewer: list[Any]
) -> dict[str, Any]:
    from tunesmith.tasks.tabular_classification.scoring import probabilities, target_index

    ev, seed, labels = cfg.eval, cfg.train.seed, prep.labels
    t = target_index(labels, prep.train_y)
    probs = probabilities(model, prep.val_inputs, ev.batch_size)
    y = (prep.val_y == t).astype(np.int64)
    scores = {TUNED: probs[:, t], ANOMALY: baseline.anomaly}
    seconds = {}
    scores[FOREST], seconds[FOREST] = isolation_forest(prep, seed)
    for name, (s, sec) in labelled_baselines(prep, np.arange(len(prep.train_y)), seed, t).items():
        scores[name], seconds[name] = s, sec
    models = {name: detection_metrics(y, s, ev.false_positive_rate, ev.top_k) for name, s in scores.items()}
    for name, s in scores.items():
        models[name]["average_precision_ci"] = list(
            interval(y, s, average_precision, ev.bootstrap, ev.confidence, seed)
        )
        models[name]["uses_labels"] = USES_LABELS[name]
        models[name]["seconds"] = round(seconds.get(name, 0.0), 3)
    at_fpr = _recall_at(ev.false_positive_rate)
    comparisons = {
        name: {
            "average_precision": paired_difference(
                y, scores[TUNED], s, average_precision, ev.bootstrap, ev.confidence, seed
            ),
            "recall_at_fpr": paired_difference(y, scores[TUNED], s, at_fpr, ev.bootstrap, ev.confidence, seed),
        }
        for name, s in scores.items()
        if name != TUNED
    }
    clf = classification_metrics(prep.val_y, probs, labels)
    summary: dict[str, Any] = {
        "n": int(len(y)),
        "positives": int(y.sum()),
        "target": labels[t],
        **{k: models[TUNED][k] for k in METRICS},
        "average_precision_ci": models[TUNED]["average_precision_ci"],
        "false_positive_rate": ev.false_positive_rate,
        "top_k": min(ev.top_k, len(y)),
        "accuracy": clf["accuracy"],
        "macro_f1": clf["macro_f1"],
        "loss": clf["loss"],
        "baselines": {n: {k: m[k] for k in (*METRICS, "uses_labels")} for n, m in models.items() if n != TUNED},
        "tuned_minus": {
            n: {k: {kk: c[k][kk] for kk in ("difference", "ci_low", "ci_high")} for k in c}
            for n, c in comparisons.items()
        },
        "kept": getattr(fit, "kept", None),
    }
    cal = calibration(y, probs[:, t])
    summary["ece"], summary["brier"] = cal["ece"], cal["brier"]
    if len(labels) == 2:
        summary["decision"] = _decision(cfg, prep, model, y, probs[:, t], t)
    summary["fewer_labels"] = [_fewer(cfg, prep, f, t, scores, y) for f in fewer]
    summary["verdict"] = verdict(models, comparisons, ev.confidence, summary["kept"])
    slices = _slices(prep, y, probs[:, t], summary.get("decision", {}).get("threshold"))
    full = {
        "summary": summary,
        "models": models,
        "comparisons": comparisons,
        "classification": clf,
        "calibration": cal,
        "curves": {name: _pr_curve(y, s) for name, s in scores.items()},
        "pretraining": {
            "losses": baseline.pretrained.losses,
            "epochs": baseline.pretrained.epochs,
            "rows": baseline.pretrained.rows,
            "cached": baseline.pretrained.cached,
            "seconds": baseline.pretrained.seconds,
        },
        "slices": slices,
        "data": report.to_dict(),
        "fit": fit_record(fit),
    }
    atomic_write_bytes(run / "report.json", json.dumps(full, indent=2, default=float).encode())
    _write_predictions(run, prep, probs, t, summary.get("decision", {}).get("threshold"))
    html = render_html(run, cfg, full, read_log(run), fit)
    atomic_write_bytes(run / "report.html", html.encode("utf-8"))
    return full


def _recall_at(fpr: float) -> Any:
    return lambda yy, ss: recall_at_fpr(yy, ss, fpr)


def _decision(cfg: Config, prep: Any, model: Any, y: np.ndarray, p: np.ndarray, t: int) -> dict[str, Any]:
    """The threshold with the lowest cost on the selection split (the validation data when there is none), and
    what it does on the validation rows."""
    from tunesmith.tasks.tabular_classification.scoring import probabilities

    cost = cfg.eval.cost
    on_select = prep.select_inputs is not None
    if on_select:
        sy = (prep.choice_y == t).astype(np.int64)
        sp = probabilities(model, prep.select_inputs, cfg.eval.batch_size)[:, t]
    else:
        sy, sp = y, p
    threshold = choose_threshold(sy, sp, cost.missed, cost.false_alarm)
    val = decision(y, p, threshold, cost.missed, cost.false_alarm)
    return {
        "threshold": threshold if np.isfinite(threshold) else None,
        "positive": prep.labels[t],
        "cost": {"missed": cost.missed, "false_alarm": cost.false_alarm},
        "chosen_on": "the selection split" if on_select else "the validation data (no selection split)",
        "validation": val,
        "flag_none_cost": float(cost.missed * y.sum()),
        "flag_all_cost": float(cost.false_alarm * (len(y) - y.sum())),
    }


def _fewer(cfg: Config, prep: Any, f: Any, t: int, scores: dict[str, np.ndarray], y: np.ndarray) -> dict[str, Any]:
    ev, seed = cfg.eval, cfg.train.seed
    rows = f.rows
    s = {TUNED: f.probs[:, t]} | {n: v[0] for n, v in labelled_baselines(prep, rows, seed, t).items()}
    s[ANOMALY] = scores[ANOMALY]
    ap = {n: average_precision(y, v) for n, v in s.items()}
    return {
        "share": f.share,
        "labelled_rows": int(len(rows)),
        "positives": int((prep.train_y[rows] == t).sum()),
        "models": {
            n: {"average_precision": ap[n], "recall_at_fpr": recall_at_fpr(y, v, ev.false_positive_rate)}
            for n, v in s.items()
        },
        "tuned_minus": {
            n: paired_difference(y, s[TUNED], s[n], average_precision, ev.bootstrap, ev.confidence, seed)
            for n in (TREES, LOGISTIC)
        },
    }


def verdict(
    models: dict[str, Any], comparisons: dict[str, Any], confidence: float, kept: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Against the general model (its anomaly score), then plainly against the best model trained on the same
    labels."""
    pct = int(confidence * 100)

    def figures(name: str) -> str:
        c = comparisons[name]["average_precision"]
        return (
            f"PR-AUC {models[TUNED]['average_precision']:.3f} against {models[name]['average_precision']:.3f}, "
            f"{c['difference']:+.3f} ({pct}% CI {c['ci_low']:+.3f} to {c['ci_high']:+.3f})"
        )

    c = comparisons[ANOMALY]["average_precision"]
    status = "better" if c["ci_low"] > 0 else ("worse" if c["ci_high"] < 0 else "not measurably better")
    text = {
        "better": f"Better than the general model's anomaly score (no labels): {figures(ANOMALY)}.",
        "worse": f"Worse than the general model's anomaly score (no labels): {figures(ANOMALY)}.",
        "not measurably better": f"Not measurably better than the general model's anomaly score: {figures(ANOMALY)}.",
    }[status]
    best = max((TREES, LOGISTIC), key=lambda n: models[n]["average_precision"])
    b = comparisons[best]["average_precision"]
    if b["ci_high"] < 0:
        text += f" {best.capitalize()} on the same labels are better: {figures(best)}; prefer them for this data."
    elif b["ci_low"] > 0:
        text += f" It also beats {best} on the same labels: {figures(best)}."
    else:
        text += f" Level with {best} on the same labels (the interval includes zero): {figures(best)}."
    if kept and kept.get("model") == "frozen encoder + head" and "why" in kept:
        text = f"Kept the pre-trained encoder with a trained head: {kept['why']}. {text}"
    return {"status": status, "text": text, "against": ANOMALY, "best_labelled": best}


def _pr_curve(y: np.ndarray, s: np.ndarray, points: int = 120) -> list[tuple[float, float]]:
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(y, s)
    keep = np.unique(np.linspace(0, len(recall) - 1, min(points, len(recall))).astype(int))
    return [(float(recall[i]), float(precision[i])) for i in keep]


def _slices(prep: Any, y: np.ndarray, p: np.ndarray, threshold: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col, values in prep.data.val.extras.items():
        if col.startswith("\x00"):
            continue
        vals = np.asarray(values)
        rows = {}
        for v in sorted(set(values)):
            sel = vals == v
            yy, pp = y[sel], p[sel]
            row = {
                "n": int(sel.sum()),
                "positives": int(yy.sum()),
                "average_precision": average_precision(yy, pp) if yy.any() else None,
            }
            if threshold is not None:
                flag = pp >= threshold
                row["recall"] = float(flag[yy == 1].mean()) if yy.any() else None
                row["false_positive_rate"] = float(flag[yy == 0].mean()) if (yy == 0).any() else None
            rows[v] = row
        out[col] = rows
    return out


def _write_predictions(run: Path, prep: Any, probs: np.ndarray, t: int, threshold: float | None) -> None:
    val, labels = prep.data.val, prep.labels
    lines = []
    for i, (line, truth) in enumerate(zip(val.lines, val.labels)):
        rec = {
            "line": line,
            "label": truth,
            "predicted": labels[int(probs[i].argmax())],
            f"p_{labels[t]}": round(float(probs[i, t]), 6),
        }
        if threshold is not None:
            rec["flagged"] = bool(probs[i, t] >= threshold)
        lines.append(json.dumps(rec, ensure_ascii=False))
    atomic_write_bytes(run / "validation_predictions.jsonl", ("\n".join(lines) + "\n").encode("utf-8"))


# --- for a person -------------------------------------------------------------------------------------------
def _f(x: Any, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}f}"


def _p(x: Any) -> str:
    return "–" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{100 * x:.1f}%"


def render_html(run: Path, cfg: Config, full: dict[str, Any], log: list[dict[str, Any]], fit: FitResult) -> str:
    s = full["summary"]
    kept = s.get("kept") or {}
    parts = [
        f"<h1>{escape(run.name)}: {escape(cfg.task)} · {escape(cfg.model)} · {escape(cfg.method)}</h1>",
        panels.verdict_box(s["verdict"], panels.diagnoses(full["fit"], full["data"], s["n"], log)),
        _comparison(full, cfg),
        _pr_chart(full),
        _decision_html(s),
        _fewer_html(s, cfg),
        panels.data_checks(full["data"]),
        _pretraining_html(full["pretraining"]),
        panels.training_section(log, full["fit"], full["fit"].get("metric") or cfg.train.metric, kept.get("why", "")),
        _calibration_html(full["calibration"], s["target"]),
        _slices_html(full["slices"], s.get("decision")),
        panels.run_panel(run, cfg, fit),
    ]
    return panels.page(f"{run.name}: tunesmith report", "".join(parts))


def _comparison(full: dict[str, Any], cfg: Config) -> str:
    s, models, comps = full["summary"], full["models"], full["comparisons"]
    fpr = f"{100 * s['false_positive_rate']:g}%"
    rows = []
    for name, m in models.items():
        lo, hi = m["average_precision_ci"]
        diff = ""
        if name in comps:
            c = comps[name]["average_precision"]
            diff = f"{c['difference']:+.3f} ({c['ci_low']:+.3f} .. {c['ci_high']:+.3f})"
        rows.append(
            f"<tr><td>{'<b>tuned</b>' if name == TUNED else escape(name)}</td>"
            f"<td>{'yes' if m['uses_labels'] else 'no'}</td><td>{_f(m['average_precision'])} "
            f"<span class=note>({_f(lo)} .. {_f(hi)})</span></td><td>{_f(m['roc_auc'])}</td>"
            f"<td>{_p(m['recall_at_fpr'])}</td><td>{_p(m['precision_at_k'])}</td><td>{diff}</td></tr>"
        )
    return (
        f"<h2>Detecting {escape(s['target'])}: every model on the same {s['n']:,} validation rows "
        f"({s['positives']} positive)</h2>"
        f"<div class=scroll><table><tr><th>model</th><th>labels</th>"
        f"<th>PR-AUC ({int(cfg.eval.confidence * 100)}% CI)</th>"
        f"<th>ROC-AUC</th><th>recall at {fpr} false positives</th><th>precision in top {s['top_k']}</th>"
        f"<th>tuned − model, PR-AUC (CI)</th></tr>{''.join(rows)}</table></div>"
        f"<p class=note>PR-AUC is average precision; a model guessing at random scores the positive share "
        f"({s['positives'] / max(s['n'], 1):.3f}). Accuracy {_p(s['accuracy'])} and macro-F1 {_p(s['macro_f1'])} "
        "at the most likely class are in report.json; they say little when one class is rare. The anomaly score and "
        "the isolation forest use no labels; trees and logistic regression learn from the same training rows as "
        "the tuned model.</p>"
    )


def _pr_chart(full: dict[str, Any]) -> str:
    curves = {name: pts for name, pts in full["curves"].items()}
    rate = full["summary"]["positives"] / max(full["summary"]["n"], 1)
    chart = svg.line_chart(
        {"random": [(0.0, rate), (1.0, rate)], **curves},
        "Precision against recall",
        "recall",
        "precision",
        xlim=(0, 1),
        ylim=(0, 1),
        dashed={"random"},
        w=560,
        h=340,
    )
    return f"<h2>Precision and recall</h2>{chart}"


def _decision_html(s: dict[str, Any]) -> str:
    d = s.get("decision")
    if not d:
        return ""
    v, c = d["validation"], d["cost"]
    th = "nothing is flagged (every threshold cost more)" if d["threshold"] is None else f"{d['threshold']:.4f}"
    return (
        f"<h2>Decision threshold</h2><p>Flag a row as <b>{escape(d['positive'])}</b> when its probability is at "
        f"least <b>{th}</b>: the lowest total cost on {escape(d['chosen_on'])} at {c['missed']:g} per missed "
        f"positive and {c['false_alarm']:g} per false alarm (eval.cost). Saved with the model; `tunesmith predict` "
        "and the server return it as <code>flagged</code>.</p>"
        "<div class=scroll><table><tr><th>on the validation rows</th><th>flagged</th><th>caught</th><th>missed</th>"
        "<th>false alarms</th>"
        "<th>cost</th></tr>"
        f"<tr><td>at the threshold</td><td>{v['flagged']}</td><td>{v['true_positives']}</td><td>{v['missed']}</td>"
        f"<td>{v['false_positives']}</td><td><b>{v['cost']:g}</b></td></tr>"
        f"<tr><td>flag nothing</td><td>0</td><td>0</td><td>{s['positives']}</td><td>0</td>"
        f"<td>{d['flag_none_cost']:g}</td></tr>"
        f"<tr><td>flag everything</td><td>{s['n']}</td><td>{s['positives']}</td><td>0</td>"
        f"<td>{s['n'] - s['positives']}</td><td>{d['flag_all_cost']:g}</td></tr></table></div>"
    )


def _fewer_html(s: dict[str, Any], cfg: Config) -> str:
    if not s.get("fewer_labels"):
        return ""
    fpr = f"{100 * s['false_positive_rate']:g}%"
    head = (
        f"<tr><th>labels kept</th><th>model</th><th>PR-AUC</th><th>recall at {fpr} FP</th>"
        "<th>tuned − model, PR-AUC (CI)</th></tr>"
    )
    rows = [
        f"<tr><td>all ({s['n']:,} validation rows)</td><td>tuned</td><td>{_f(s['average_precision'])}</td>"
        f"<td>{_p(s['recall_at_fpr'])}</td><td></td></tr>"
    ]
    for f in s["fewer_labels"]:
        first = True
        for name, m in f["models"].items():
            c = f["tuned_minus"].get(name)
            diff = f"{c['difference']:+.3f} ({c['ci_low']:+.3f} .. {c['ci_high']:+.3f})" if c else ""
            where = f"{f['share']:.0%}: {f['labelled_rows']:,} rows, {f['positives']} positive" if first else ""
            rows.append(
                f"<tr><td>{where}</td><td>{escape(name)}</td><td>{_f(m['average_precision'])}</td>"
                f"<td>{_p(m['recall_at_fpr'])}</td><td>{diff}</td></tr>"
            )
            first = False
    return (
        "<h2>With fewer labels</h2><p>The same comparison when only a share of the training rows keep their label "
        "(stratified, at least two of each class). Every row still pre-trains the general model, which is where "
        "pre-training should pay off.</p>"
        f"<div class=scroll><table>{head}{''.join(rows)}</table></div>"
    )


def _pretraining_html(p: dict[str, Any]) -> str:
    losses = p["losses"]
    chart = (
        svg.line_chart(
            {"pre-training loss": [(float(i), v) for i, v in enumerate(losses)]},
            "Pre-training loss on fixed corrupted rows",
            "evaluation (0: before)",
            "loss",
            w=480,
            h=240,
        )
        if len(losses) > 1
        else ""
    )
    change = f"{losses[0]:.3f} -> {losses[-1]:.3f}" if losses else "none"
    return (
        f"<h2>The general model</h2><p>Pre-trained without labels on {p['rows']:,} training rows for up to "
        f"{p['epochs']} epochs (contrastive views of corrupted rows plus restoring the corrupted features; loss "
        f"{change}{', from the cache' if p['cached'] else ''}). Saved as base_model/ in this run: a later run "
        "names this run as its model: to start from it.</p>" + chart
    )


def _calibration_html(cal: dict[str, Any], target: str) -> str:
    rows = "".join(
        f"<tr><td>{b['n']}</td><td>{_p(b['predicted'])}</td><td>{_p(b['observed'])}</td></tr>" for b in cal["bins"]
    )
    return (
        f"<h2>Calibration</h2><p>Predicted against observed share of {escape(target)}, in ten bins of equal size. "
        f"Brier score {cal['brier']:.4f}; expected calibration error {cal['ece']:.4f}; mean predicted "
        f"{_p(cal['mean_predicted'])} against {_p(cal['observed_rate'])} observed.</p>"
        f"<div class=scroll><table><tr><th>rows</th><th>predicted</th><th>observed</th></tr>{rows}</table></div>"
    )


def _slices_html(slices: dict[str, Any], d: dict[str, Any] | None) -> str:
    if not slices:
        return ""
    parts = ["<h2>Slices</h2>"]
    for col, rows in slices.items():
        extra = "<th>recall</th><th>false-positive rate</th>" if d and d.get("threshold") is not None else ""
        body = []
        for v, r in rows.items():
            cells = f"<td>{escape(str(v))}</td><td>{r['n']}</td><td>{r['positives']}</td>"
            cells += f"<td>{_f(r['average_precision'])}</td>"
            if extra:
                cells += f"<td>{_p(r.get('recall'))}</td><td>{_p(r.get('false_positive_rate'))}</td>"
            body.append(f"<tr>{cells}</tr>")
        parts.append(
            f"<h3>{escape(col)}</h3><div class=scroll><table><tr><th>value</th><th>rows</th><th>positive</th>"
            "<th>PR-AUC</th>"
            f"{extra}</tr>{''.join(body)}</table></div>"
        )
    return "".join(parts)


def summary_lines(manifest: dict[str, Any], run_dir: Path) -> list[str]:
    m = manifest["metrics"]
    fpr = f"{100 * m['false_positive_rate']:g}%"
    out = [f"\n{m['verdict']['text']}", f"\n{'model':<34}{'labels':>7}{'PR-AUC':>9}{'ROC-AUC':>9}{'recall@' + fpr:>13}"]
    rows = [(TUNED, {"uses_labels": True, **{k: m[k] for k in METRICS}})] + list(m["baselines"].items())
    for name, b in rows:
        out.append(
            f"{name:<34}{'yes' if b['uses_labels'] else 'no':>7}{_f(b['average_precision']):>9}"
            f"{_f(b['roc_auc']):>9}{_p(b['recall_at_fpr']):>13}"
        )
    for f in m.get("fewer_labels", []):
        t, trees = f["models"][TUNED], f["models"][TREES]
        out.append(
            f"{f['share']:.0%} of labels ({f['labelled_rows']} rows, {f['positives']} positive): tuned PR-AUC "
            f"{t['average_precision']:.3f}, trees {trees['average_precision']:.3f}"
        )
    d = m.get("decision")
    if d:
        th = "none (flag nothing)" if d["threshold"] is None else f"{d['threshold']:.4f}"
        v = d["validation"]
        out.append(
            f"threshold {th}: {v['true_positives']} caught, {v['missed']} missed, {v['false_positives']} "
            f"false alarms; cost {v['cost']:g} (flag nothing: {d['flag_none_cost']:g})"
        )
    out.append(f"n = {m['n']} validation rows, {m['positives']} positive; report: {Path(run_dir) / 'report.html'}")
    return out
