"""Small inline-SVG charts, so report.html is one self-contained file with no plotting dependency."""

from __future__ import annotations

from html import escape

PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]


def chart_frame(w: int, h: int, body: str, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f"<style>text{{font:11px sans-serif;fill:#333}}</style>{body}</svg>"
    )


def line_chart(
    series: dict[str, list[tuple[float, float]]], title: str, xlabel: str, w: int = 520, h: int = 260
) -> str:
    pts = [p for s in series.values() for p in s]
    if not pts:
        return ""
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    L, R, T, B = 50, 10, 25, 35

    def sx(x: float) -> float:
        return L + (x - x0) / (x1 - x0) * (w - L - R)

    def sy(y: float) -> float:
        return T + (1 - (y - y0) / (y1 - y0)) * (h - T - B)

    body = [
        f'<text x="{L}" y="15" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{L}" y1="{h - B}" x2="{w - R}" y2="{h - B}" stroke="#999"/>',
        f'<line x1="{L}" y1="{T}" x2="{L}" y2="{h - B}" stroke="#999"/>',
        f'<text x="{w / 2}" y="{h - 5}" text-anchor="middle">{escape(xlabel)}</text>',
    ]
    for v in (y0, (y0 + y1) / 2, y1):
        body.append(f'<text x="{L - 4}" y="{sy(v) + 4:.1f}" text-anchor="end">{v:.3g}</text>')
    for v in (x0, x1):
        body.append(f'<text x="{sx(v):.1f}" y="{h - B + 14}" text-anchor="middle">{v:.4g}</text>')
    for i, (name, s) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s)
        body.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{path}"/>')
        if len(s) < 30:
            body.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}"/>' for x, y in s)
        body.append(f'<text x="{w - R - 120}" y="{T + 12 * i + 4}" fill="{color}">■ {escape(name)}</text>')
    return chart_frame(w, h, "".join(body), title)


def bar_chart(
    groups: list[str],
    series: dict[str, list[float]],
    title: str,
    errors: dict[str, list[tuple]] | None = None,
    w: int = 520,
    h: int = 260,
    ymax: float = 1.0,
) -> str:
    """Grouped bars in [0, ymax]; ``errors`` gives (low, high) whiskers per bar."""
    L, R, T, B = 40, 10, 25, 45
    n_series = max(len(series), 1)
    gw = (w - L - R) / max(len(groups), 1)
    bw = gw * 0.8 / n_series

    def sy(y: float) -> float:
        return T + (1 - min(max(y, 0), ymax) / ymax) * (h - T - B)

    body = [
        f'<text x="{L}" y="15" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{L}" y1="{h - B}" x2="{w - R}" y2="{h - B}" stroke="#999"/>',
    ]
    for v in (0, ymax / 2, ymax):
        body.append(
            f'<text x="{L - 4}" y="{sy(v) + 4:.1f}" text-anchor="end">{v:.2g}</text>'
            f'<line x1="{L}" y1="{sy(v):.1f}" x2="{w - R}" y2="{sy(v):.1f}" stroke="#eee"/>'
        )
    for gi, g in enumerate(groups):
        body.append(
            f'<text x="{L + gi * gw + gw / 2:.1f}" y="{h - B + 14}" text-anchor="middle">{escape(g[:18])}</text>'
        )
        for si, (name, values) in enumerate(series.items()):
            v = values[gi]
            x = L + gi * gw + gw * 0.1 + si * bw
            body.append(
                f'<rect x="{x:.1f}" y="{sy(v):.1f}" width="{bw - 1:.1f}" height="{sy(0) - sy(v):.1f}" '
                f'fill="{PALETTE[si % len(PALETTE)]}"><title>{escape(name)} {escape(g)}: {v:.3f}</title></rect>'
            )
            if errors and name in errors and errors[name][gi] is not None:
                lo, hi = errors[name][gi]
                cx = x + bw / 2
                body.append(f'<line x1="{cx:.1f}" y1="{sy(lo):.1f}" x2="{cx:.1f}" y2="{sy(hi):.1f}" stroke="#222"/>')
    for si, name in enumerate(series):
        body.append(f'<text x="{L + si * 140}" y="{h - 8}" fill="{PALETTE[si % len(PALETTE)]}">■ {escape(name)}</text>')
    return chart_frame(w, h, "".join(body), title)


def heatmap(matrix: list[list[int]], labels: list[str], title: str, cell: int = 46) -> str:
    k = len(labels)
    L, T = 90, 40
    w, h = L + k * cell + 10, T + k * cell + 30
    peak = max((v for row in matrix for v in row), default=1) or 1
    body = [
        f'<text x="4" y="15" font-weight="bold">{escape(title)}</text>',
        f'<text x="{L + k * cell / 2}" y="30" text-anchor="middle">predicted</text>',
    ]
    for i, row in enumerate(matrix):
        body.append(
            f'<text x="{L - 4}" y="{T + i * cell + cell / 2 + 4}" text-anchor="end">{escape(labels[i][:12])}</text>'
        )
        for j, v in enumerate(row):
            shade = int(255 - 200 * v / peak)
            fill = f"rgb({shade},{shade},255)"
            color = "#fff" if v / peak > 0.6 else "#000"
            body.append(
                f'<rect x="{L + j * cell}" y="{T + i * cell}" width="{cell - 1}" height="{cell - 1}" '
                f'fill="{fill}"/><text x="{L + j * cell + cell / 2}" y="{T + i * cell + cell / 2 + 4}" '
                f'text-anchor="middle" style="fill:{color}">{v}</text>'
            )
    for j, lab in enumerate(labels):
        body.append(
            f'<text x="{L + j * cell + cell / 2}" y="{T + k * cell + 14}" text-anchor="middle">{escape(lab[:8])}</text>'
        )
    return chart_frame(w, h, "".join(body), title)
