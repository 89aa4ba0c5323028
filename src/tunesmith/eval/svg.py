"""Small inline-SVG charts, so a report is one self-contained file with no plotting dependency.

Every chart scales down with the page (``max-width:100%``), sets its fonts and default colour as inherited
attributes rather than a stylesheet (a stylesheet rule would override each element's own ``fill``), draws round
ticks with gridlines, and lays out its legend by the names' widths, wrapping onto more rows when they do not fit.
Long names are cut with an ellipsis and keep the full name as a hover title. Series elements and their legend
swatches carry ``data-series`` so a rendered page can be checked for matching colours.
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]
CHAR_W = 6.0  # mean advance of an 11 px sans-serif character: enough for layout, never for exact widths
FONT = 'font-family="sans-serif" font-size="11" fill="#333"'


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def text_width(s: str) -> float:
    return len(s) * CHAR_W


def clip(s: str, max_chars: int) -> str:
    return s if len(s) <= max_chars else s[: max(max_chars - 1, 1)] + "…"


def label(x: float, y: float, text: str, max_chars: int, anchor: str = "middle", extra: str = "") -> str:
    """A text element cut to ``max_chars`` with the full text as its hover title when cut."""
    shown = clip(text, max_chars)
    hover = f"<title>{escape(text)}</title>" if shown != text else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{hover}{escape(shown)}</text>'


def nice_step(span: float, n: int) -> float:
    raw = span / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def nice_ticks(lo: float, hi: float, n: int = 5, integer: bool = False) -> list[float]:
    """Round tick values covering [lo, hi]: 1, 2, 2.5 or 5 times a power of ten apart (whole numbers at least
    1 apart when ``integer``: steps, trials, epochs)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        pad = 1.0 if integer else (abs(lo) * 0.05 or 0.5)
        lo, hi = lo - pad, hi + pad
    step = nice_step(hi - lo, n)
    if integer:
        step = max(1.0, step if step != 2.5 else 2.0)
    first = math.floor(lo / step + 1e-9) * step
    count = math.ceil((hi - first) / step - 1e-9)
    return [round(first + i * step, 12) for i in range(count + 1)]


def tick_text(v: float, ticks: list[float]) -> str:
    """A tick's value with as many decimals as the tick step needs."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    if abs(v) >= 1e6 or step < 1e-4:
        return "0" if v == 0 else f"{v:.3g}".replace("e-0", "e-").replace("e+0", "e")
    decimals = next((d for d in range(7) if abs(round(step, d) - step) < 1e-9 * max(step, 1e-12)), 6)
    return f"{v:,.{decimals}f}"


def legend(names: list[str], x: float, y: float, width: float, colours: list[str] | None = None) -> tuple[str, float]:
    """Swatch and name per series, placed by width and wrapped: (svg, height used)."""
    parts, cx, cy = [], x, y
    for i, name in enumerate(names):
        shown = clip(name, 60)
        need = 16 + text_width(shown) + 14
        if cx > x and cx + need > x + width:
            cx, cy = x, cy + 16
        c = colours[i] if colours else colour(i)
        parts.append(
            f'<rect class="swatch" data-series="{escape(name)}" x="{cx:.1f}" y="{cy - 9:.1f}" width="10" height="10" '
            f'fill="{c}"/>' + label(cx + 14, cy, name, 60, "start")
        )
        cx += need
    return "".join(parts), (cy - y) + 16 if names else 0.0


def chart_frame(w: float, h: float, body: str, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{w:.0f}" height="{h:.0f}" '
        f'viewBox="0 0 {w:.0f} {h:.0f}" style="max-width:100%;height:auto" role="img" aria-label="{escape(title)}" '
        f"{FONT}><title>{escape(title)}</title>{body}</svg>"
    )


def _title(text: str, w: float) -> str:
    return label(8, 16, text, int((w - 16) / 7), "start", ' font-weight="bold" font-size="12"')


def line_chart(
    series: dict[str, list[tuple[float, float]]],
    title: str,
    xlabel: str,
    ylabel: str = "",
    *,
    marks: list[tuple[float, str]] | None = None,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    dashed: set[str] | None = None,
    bands: dict[str, list[tuple[float, float, float]]] | None = None,
    w: int = 560,
    h: int = 280,
) -> str:
    """Lines with round ticks and gridlines; ``marks`` draws labelled vertical lines (the kept step);
    ``bands`` shades (x, low, high) intervals under the series of the same name, in its colour."""
    pts = [p for s in series.values() for p in s if math.isfinite(p[1])]
    pts += [(x, v) for b in (bands or {}).values() for x, lo, hi in b for v in (lo, hi) if math.isfinite(v)]
    if not pts:
        return ""
    whole = all(float(p[0]).is_integer() for p in pts)
    xs = nice_ticks(*(xlim or (min(p[0] for p in pts), max(p[0] for p in pts))), 6, integer=whole and not xlim)
    ys = nice_ticks(*(ylim or (min(p[1] for p in pts), max(p[1] for p in pts))), 5)
    leg, leg_h = legend(list(series), 8, 36, w - 16)
    L = 14 + max(text_width(tick_text(v, ys)) for v in ys) + (14 if ylabel else 0)
    R, T, B = 14, 30 + leg_h, 38
    x0, x1, y0, y1 = xs[0], xs[-1], ys[0], ys[-1]

    def sx(x: float) -> float:
        return L + (x - x0) / ((x1 - x0) or 1) * (w - L - R)

    def sy(y: float) -> float:
        return T + (1 - (y - y0) / ((y1 - y0) or 1)) * (h - T - B)

    body = [_title(title, w), leg]
    for v in ys:
        body.append(
            f'<line x1="{L:.1f}" y1="{sy(v):.1f}" x2="{w - R}" y2="{sy(v):.1f}" stroke="#e6e6e6"/>'
            f'<text x="{L - 5:.1f}" y="{sy(v) + 4:.1f}" text-anchor="end">{tick_text(v, ys)}</text>'
        )
    for v in xs:
        body.append(
            f'<line x1="{sx(v):.1f}" y1="{T}" x2="{sx(v):.1f}" y2="{h - B}" stroke="#f0f0f0"/>'
            f'<text x="{sx(v):.1f}" y="{h - B + 14}" text-anchor="middle">{tick_text(v, xs)}</text>'
        )
    body.append(f'<rect x="{L:.1f}" y="{T}" width="{w - L - R:.1f}" height="{h - T - B}" fill="none" stroke="#999"/>')
    body.append(f'<text x="{(L + w - R) / 2:.1f}" y="{h - 6}" text-anchor="middle">{escape(xlabel)}</text>')
    if ylabel:
        my = (T + h - B) / 2
        body.append(
            f'<text x="12" y="{my:.1f}" text-anchor="middle" transform="rotate(-90 12 {my:.1f})">'
            f"{escape(ylabel)}</text>"
        )
    for x, text in marks or []:
        right = sx(x) + 4 + text_width(text) > w - R  # no room to the right of the line: write it on the left
        body.append(
            f'<line x1="{sx(x):.1f}" y1="{T}" x2="{sx(x):.1f}" y2="{h - B}" stroke="#222" stroke-dasharray="4 3"/>'
            + label(sx(x) + (-4 if right else 4), T + 11, text, 30, "end" if right else "start")
        )
    for i, name in enumerate(series):
        band = [b for b in (bands or {}).get(name, []) if math.isfinite(b[1]) and math.isfinite(b[2])]
        if band:
            edge = [(x, hi) for x, _, hi in band] + [(x, lo) for x, lo, _ in reversed(band)]
            outline = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in edge)
            body.append(
                f'<polygon class="band" data-series="{escape(name)}" fill="{colour(i)}" fill-opacity="0.15" '
                f'stroke="none" points="{outline}"/>'
            )
    for i, (name, s) in enumerate(series.items()):
        c = colour(i)
        s = [p for p in s if math.isfinite(p[1])]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s)
        dash = ' stroke-dasharray="5 4"' if dashed and name in dashed else ""
        body.append(
            f'<polyline data-series="{escape(name)}" fill="none" stroke="{c}" stroke-width="1.8"{dash} '
            f'points="{path}"/>'
        )
        if len(s) < 40:
            body.extend(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.6" fill="{c}"><title>{escape(name)}: '
                f"{x:g}, {y:.4g}</title></circle>"
                for x, y in s
            )
    return chart_frame(w, h, "".join(body), title)


def bar_chart(
    groups: list[str],
    series: dict[str, list[float]],
    title: str,
    errors: dict[str, list[tuple[float, float] | None]] | None = None,
    w: int = 560,
    h: int = 280,
    ymax: float = 1.0,
    percent: bool = True,
) -> str:
    """Grouped bars in [0, ymax]; ``errors`` gives (low, high) whiskers per bar. Many groups widen the chart and
    turn their labels; long group names are cut with the full name on hover."""
    n_series = max(len(series), 1)
    many = len(groups) > 6 or max((len(g) for g in groups), default=0) > 14
    w = max(w, int(60 + len(groups) * max(14 * n_series, 28)))
    leg, leg_h = legend(list(series), 8, 36, w - 16)
    longest = min(max((len(g) for g in groups), default=0), 24)
    # turned names reach down and to the left of their group: the first one needs room left of the axis
    L, R, T = max(46.0, longest * CHAR_W * 0.72 - w / max(len(groups), 1) / 2 + 12) if many else 46.0, 12, 30 + leg_h
    B = 30 + (longest * 4.6 if many else 0)
    h = int(h + (B - 30))
    gw = (w - L - R) / max(len(groups), 1)
    bw = gw * 0.8 / n_series
    ticks = nice_ticks(0, ymax, 5)

    def sy(y: float) -> float:
        return T + (1 - min(max(y, 0), ticks[-1]) / ticks[-1]) * (h - T - B)

    body = [_title(title, w), leg]
    for v in ticks:
        text = f"{100 * v:.0f}%" if percent else tick_text(v, ticks)
        body.append(
            f'<line x1="{L}" y1="{sy(v):.1f}" x2="{w - R}" y2="{sy(v):.1f}" stroke="#e6e6e6"/>'
            f'<text x="{L - 5}" y="{sy(v) + 4:.1f}" text-anchor="end">{text}</text>'
        )
    body.append(f'<line x1="{L}" y1="{h - B}" x2="{w - R}" y2="{h - B}" stroke="#999"/>')
    for gi, g in enumerate(groups):
        gx = L + gi * gw + gw / 2
        if many:
            body.append(label(gx + 3, h - B + 10, g, 24, "end", f' transform="rotate(-45 {gx + 3:.1f} {h - B + 10})"'))
        else:
            body.append(label(gx, h - B + 15, g, max(int(gw / CHAR_W), 4)))
        for si, (name, values) in enumerate(series.items()):
            v = values[gi]
            x = L + gi * gw + gw * 0.1 + si * bw
            shown = f"{100 * v:.1f}%" if percent else f"{v:.4g}"
            body.append(
                f'<rect data-series="{escape(name)}" x="{x:.1f}" y="{sy(v):.1f}" width="{max(bw - 1, 1):.1f}" '
                f'height="{sy(0) - sy(v):.1f}" fill="{colour(si)}"><title>{escape(name)}, {escape(g)}: {shown}'
                "</title></rect>"
            )
            err = (errors or {}).get(name)
            if err and err[gi] is not None:
                lo, hi = err[gi]
                cx = x + bw / 2
                body.append(
                    f'<path class="whisker" d="M{cx - 4:.1f},{sy(lo):.1f}h8M{cx:.1f},{sy(lo):.1f}V{sy(hi):.1f}'
                    f'M{cx - 4:.1f},{sy(hi):.1f}h8" stroke="#222" fill="none"/>'
                )
    return chart_frame(w, h, "".join(body), title)


def heatmap(matrix: list[list[float]], labels: list[str], title: str, *, normalise: bool = False) -> str:
    """Confusion matrix, rows true and columns predicted; ``normalise`` shows each row as percentages (the
    recall of each class on the diagonal). Cells shrink with the number of classes; figures are written while
    they fit and always shown on hover."""
    k = len(labels)
    cell = max(12, min(46, int(520 / max(k, 1))))
    longest = min(max((len(s) for s in labels), default=1), 18)
    L, T = 16 + longest * CHAR_W, 40 + longest * 4.6
    # column names turn 45 degrees up and to the right: the last ones need that much room past the grid
    w, h = max(L + k * cell + 12 + longest * CHAR_W * 0.72, 16 + len(title) * 7.2), T + k * cell + 12
    rows = [[float(v) for v in r] for r in matrix]
    shown = [[v / (sum(r) or 1) for v in r] for r in rows] if normalise else rows
    peak = max((v for r in shown for v in r), default=1) or 1
    body = [_title(title, w), f'<text x="{L + k * cell / 2:.1f}" y="32" text-anchor="middle">predicted →</text>']
    for i, row in enumerate(shown):
        body.append(label(L - 5, T + i * cell + cell / 2 + 4, labels[i], 18, "end"))
        for j, v in enumerate(row):
            shade = int(250 - 190 * v / peak)
            fg = "#fff" if v / peak > 0.6 else "#111"
            figure = f"{100 * v:.0f}" if normalise else f"{int(rows[i][j])}"
            hover = f"true {labels[i]}, predicted {labels[j]}: {int(rows[i][j])}"
            if normalise:
                hover += f" ({100 * v:.1f}% of the row)"
            body.append(
                f'<rect x="{L + j * cell:.1f}" y="{T + i * cell:.1f}" width="{cell - 1}" height="{cell - 1}" '
                f'fill="rgb({shade},{shade + 2 if shade < 253 else 255},255)"><title>{escape(hover)}</title></rect>'
            )
            if cell >= 22:
                body.append(
                    f'<text x="{L + j * cell + cell / 2:.1f}" y="{T + i * cell + cell / 2 + 4:.1f}" '
                    f'text-anchor="middle" fill="{fg}" font-size="{10 if cell < 30 else 11}">{figure}</text>'
                )
    for j, lab in enumerate(labels):
        x, y = L + j * cell + cell / 2 + 3, T - 5
        body.append(label(x, y, lab, 18, "start", f' transform="rotate(-45 {x:.1f} {y:.1f})"'))
    return chart_frame(w, h, "".join(body), title)


def hbar(values: dict[str, float], title: str, w: int = 560) -> str:
    """Horizontal bars in [0, max], one per name (parameter importances)."""
    if not values:
        return ""
    names = list(values)
    L = 16 + min(max(len(n) for n in names), 28) * CHAR_W
    T, row = 30, 20
    h = T + row * len(names) + 10
    peak = max(values.values()) or 1.0
    body = [_title(title, w)]
    for i, name in enumerate(names):
        v = values[name]
        y = T + i * row
        bw = (w - L - 60) * v / peak
        body.append(label(L - 6, y + 13, name, 28, "end"))
        body.append(
            f'<rect data-series="{escape(name)}" x="{L:.1f}" y="{y + 3}" width="{max(bw, 1):.1f}" height="{row - 6}" '
            f'fill="{colour(0)}"><title>{escape(name)}: {v:.3f}</title></rect>'
            f'<text x="{L + bw + 5:.1f}" y="{y + 13}">{v:.2f}</text>'
        )
    return chart_frame(w, h, "".join(body), title)
