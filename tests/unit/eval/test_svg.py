"""The shared charts: round ticks, legends whose swatches keep their series' colours, long names cut with the
full name on hover, confusion matrices that scale with the number of classes."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from tunesmith.eval import svg

NS = {"s": "http://www.w3.org/2000/svg"}


def _parse(chart: str) -> ET.Element:
    return ET.fromstring(chart)


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [(0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1.0]), (0.31, 0.87, [0.2, 0.4, 0.6, 0.8, 1.0]), (0, 437, None)],
)
def test_ticks_are_round_and_cover_the_range(lo, hi, expected):
    ticks = svg.nice_ticks(lo, hi)
    if expected is not None:
        assert ticks == pytest.approx(expected)
    assert ticks[0] <= lo and ticks[-1] >= hi and 3 <= len(ticks) <= 12
    step = ticks[1] - ticks[0]
    mantissa = step / 10 ** int(f"{step:e}".split("e")[1])
    assert round(mantissa, 6) in (1, 2, 2.5, 5)
    assert svg.tick_text(0.25, [0, 0.25, 0.5]) == "0.25" and svg.tick_text(400, [0, 200, 400]) == "400"


def test_no_stylesheet_overrides_the_series_colours():
    """A <style> rule on text (fill, font) beats presentation attributes: every swatch rendered grey and bold
    titles lost their weight. Colours and fonts are attributes now, and each swatch has its series' colour."""
    names = ["majority class", "linear probe (frozen pre-trained)", "tuned"]
    for chart in (
        svg.bar_chart(["accuracy", "macro-F1"], {n: [0.5, 0.4] for n in names}, "Base vs tuned"),
        svg.line_chart({n: [(0, 1.0), (1, 0.5)] for n in names}, "Loss", "step"),
    ):
        assert "<style" not in chart
        root = _parse(chart)
        swatches = root.findall(".//s:rect[@class='swatch']", NS)
        assert [s.get("data-series") for s in swatches] == names
        for i, s in enumerate(swatches):
            assert s.get("fill") == svg.colour(i)
            drawn = [e for e in root.iter() if e.get("data-series") == names[i] and e.get("class") != "swatch"]
            painted = [e.get("stroke") if e.get("fill") in (None, "none") else e.get("fill") for e in drawn]
            assert painted and all(c == svg.colour(i) for c in painted)


def test_legend_entries_do_not_overlap_and_wrap():
    names = ["linear probe (frozen pre-trained)", "tuned", "a rather long baseline name for this legend"]
    markup, height = svg.legend(names, 8, 36, 300)
    xs = [float(x) for x in re.findall(r'class="swatch" data-series="[^"]+" x="([\d.]+)"', markup)]
    ys = [float(y) for y in re.findall(r'class="swatch" data-series="[^"]+" x="[\d.]+" y="([\d.]+)"', markup)]
    for i in range(len(names) - 1):
        same_row = ys[i] == ys[i + 1]
        assert not same_row or xs[i + 1] >= xs[i] + 14 + svg.text_width(names[i]), "entries overlap"
    assert height > 16, "three long names do not fit one 300 px row: the legend wraps"


def test_long_class_names_are_cut_with_the_full_name_on_hover():
    names = [f"a very long class name number {i:02d} that goes on" for i in range(25)]
    chart = svg.bar_chart(names, {"f1": [0.5] * 25}, "Per class")
    root = _parse(chart)
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert all(len(t) <= 2 * len(names[0]) for t in texts)
    assert sum("…" in t for t in texts) >= 25, "every long name is cut"
    assert all(f"<title>{n}</title>" in chart for n in names), "and keeps its full name as a hover title"


@pytest.mark.parametrize("k", [2, 10, 50])
def test_confusion_matrix_scales_with_the_classes(k):
    labels = [f"class {i}" for i in range(k)]
    m = [[(5 if i == j else 1) for j in range(k)] for i in range(k)]
    chart = svg.heatmap(m, labels, "Confusion")
    width = float(_parse(chart).get("width"))
    assert width <= 1000, "50 classes still fit a page width"
    normalised = svg.heatmap(m, labels, "Confusion", normalise=True)
    if k <= 10:  # figures are written while the cells are large enough
        assert f">{round(100 * 5 / (5 + k - 1))}<" in normalised
    assert normalised.count("<title>true class 0, predicted class 0") == 1


def test_the_loss_chart_draws_a_selection_curve_only_where_the_run_evaluated():
    from tunesmith.eval.panels import training_charts

    steps = [{"kind": "step", "step": i, "loss": 1.0 / i, "lr": 1e-5} for i in range(1, 41)]
    evals = [{"kind": "eval", "step": i, "loss": 0.5 / i, "macro_f1": 0.5 + i / 100} for i in (10, 20, 30, 40)]
    without = training_charts(steps, "macro_f1")[0]
    assert 'data-series="train loss (smoothed)"' in without and "selection loss" not in without
    with_evals = training_charts(steps + evals, "macro_f1")[0]
    assert 'data-series="selection loss"' in with_evals and ">selection loss</text>" in with_evals
