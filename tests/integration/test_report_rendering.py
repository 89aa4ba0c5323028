"""Reports as a person sees them: rendered in headless Chromium at a laptop's and a phone's width, nothing runs
past the page's edge and every legend swatch has its series' colour (read back from the rendered page). Text
(25 long class names), image, chat, table, tune and embedding reports, from real runs on the tiny test models."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.browser import WIDTHS, inspect, screenshot
from tests.conftest import image_config, llm_config, pair_config, table_config, tiny_config, write_csv
from tunesmith import api
from tunesmith.tuning.study import tune

LONG = [f"{w} requests about the customer's account and billing history" for w in (
    "urgent", "routine", "angry", "polite", "repeated", "first-time", "escalated", "resolved", "pending", "closed",
    "refund", "upgrade", "downgrade", "cancel", "renewal", "invoice", "password", "login", "privacy", "shipping",
    "returns", "warranty", "feedback", "spam", "other",
)]  # fmt: skip


def _long_label_data(folder: Path) -> tuple[Path, Path]:
    """25 classes with long names, each marked by its own word, so the tiny model can learn some of them."""
    rng = np.random.default_rng(0)
    words = [f"w{i}x" for i in range(25)]
    rows = []
    for n in range(25 * 14):
        k = n % 25
        filler = " ".join(rng.choice(["the", "a", "my", "order", "please", "help"], size=4))
        rows.append({"text": f"{filler} {words[k]} {filler}", "label": LONG[k]})
    return write_csv(folder / "train.csv", rows[: 25 * 10]), write_csv(folder / "validation.csv", rows[25 * 10 :])


@pytest.fixture(scope="module")
def reports(
    tiny_model, tiny_vit, tiny_llama, image_data, chat_data, toy_data, table_data, pair_data, tmp_path_factory
) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("rendered")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNESMITH_CACHE", str(out / "cache"))
        text = api.finetune(
            tiny_config(
                tiny_model,
                *_long_label_data(out),
                out / "runs",
                method="head",
                head__epochs=30,
                data__min_examples_per_class=2,
            )  # fmt: skip
        )
        image = api.finetune(image_config(tiny_vit, *image_data, out / "runs", method="head", head__epochs=10))
        chat = api.finetune(llm_config(tiny_llama, *chat_data, out / "runs", train__epochs=1))
        table = api.finetune(
            table_config(*table_data, out / "runs", eval__fewer_labels=[0.2], eval__slice_columns=["merchant"])
        )
        pairs = api.finetune(pair_config(tiny_model, *pair_data, out / "runs", train__epochs=1))
        raw = tiny_config(tiny_model, *toy_data, out / "tune-runs", train__epochs=1)  # full, warm-started
        raw["train"]["learning_rate"] = "loguniform(1e-3, 3e-2)"
        (out / "search.yaml").write_text(yaml.safe_dump(raw))
        searched = tune(out / "search.yaml", trials=3, pruner="none")
    return {
        "text": text.path / "report.html",
        "image": image.path / "report.html",
        "chat": chat.path / "report.html",
        "table": table.path / "report.html",
        "tune": searched.report,
        "embedding": pairs.path / "report.html",
    }


@pytest.mark.parametrize("kind", ["text", "image", "chat", "table", "tune", "embedding"])
@pytest.mark.parametrize("width", WIDTHS)
def test_nothing_overflows_and_legends_keep_their_colours(reports, kind, width, tmp_path):
    seen = inspect(reports[kind], width)
    assert seen["width"] == width
    assert seen["scrollWidth"] <= width, f"the page scrolls sideways: {seen['overflow'][:5]}"
    assert not seen["overflow"], seen["overflow"][:5]
    swatches = seen["swatches"]
    assert len(swatches) >= {"text": 6, "image": 6, "chat": 4, "table": 9, "tune": 3, "embedding": 3}[kind], (
        "every chart has a legend"
    )
    for s in swatches:
        assert s["drawn"], f"swatch {s['series']!r} has no series drawn"
        assert all(c == s["swatch"] for c in s["drawn"]), s
    assert len({s["swatch"] for s in swatches}) >= 2, "series are told apart by colour"
    shot = screenshot(reports[kind], width, tmp_path / f"{kind}-{width}.png", seen["height"])
    assert shot.stat().st_size > 10_000


def test_text_report_reads_at_a_glance(reports):
    html = reports["text"].read_text()
    run = reports["text"].parent
    assert f"<title>{run.name}: tunesmith report</title>" in html, "the page title names the run"
    assert html.index("class='verdict") < html.index("<h2>Data checks"), "the verdict comes first"
    for part in ("<h2>Run</h2>", "Reliability", "ECE", "% of each true class", "(whiskers: 95% intervals)"):
        assert part in html
    report = json.loads((run / "report.json").read_text())
    lo, hi = report["summary"]["macro_f1_ci"]
    assert lo <= report["summary"]["macro_f1"] <= hi and hi > lo
    assert f"({100 * lo:.1f} to {100 * hi:.1f})" in html, "macro-F1's interval is on the page"
    manifest = json.loads((run / "manifest.json").read_text())
    assert [manifest["label_map"][str(i)] for i in range(25)] == LONG, "classes keep the order of the data"
    assert manifest["fit"]["metric"] == "macro_f1"
    best = next(r for r in report["fit"]["history"] if r["step"] == report["fit"]["best_step"])
    assert best["macro_f1"] == max(r["macro_f1"] for r in report["fit"]["history"]), "the head keeps by macro_f1"
    for name in LONG:  # cut names keep the whole name on hover
        assert f"<title>{escape(name)}</title>" in html


def test_chat_report_reconciles_perplexity_with_written_answers(reports):
    html = reports["chat"].read_text()
    report = json.loads((reports["chat"].parent / "report.json").read_text())
    lo, hi = report["models"]["tuned"]["perplexity_ci"]
    assert lo <= report["models"]["tuned"]["perplexity"] <= hi
    for part in ("what it measures", "teacher-forced", "at most 16 new tokens", "Side by side"):
        assert part in html


def test_tune_report_draws_the_baseline_and_explains_missing_importances(reports):
    html = reports["tune"].read_text()
    data = json.loads(reports["tune"].with_suffix(".json").read_text())
    assert all(t["baseline"] is not None for t in data["trials"]), "each trial records its frozen-head score"
    assert 'data-series="general model (frozen encoder + head)"' in html, "drawn as a line in the history"
    assert "Parameter importances are not shown: only one parameter (train.learning_rate) was searched" in html
    for t in data["trials"]:  # a trial's value is the selection score of the model its run kept
        manifest = json.loads((Path(t["run"]) / "manifest.json").read_text())
        assert t["value"] == pytest.approx(manifest["fit"]["selection"]["macro_f1"])


def test_embedding_report_puts_the_verdict_first_and_shows_queries(reports):
    html = reports["embedding"].read_text()
    assert html.index("class='verdict") < html.index("<h2>Data checks") < html.index("General vs tuned encoder")
    for part in ("recall@5", "MRR@10", "nDCG@10", "held-out queries", "<h2>Run</h2>", "validation_rankings.jsonl"):
        assert part in html
