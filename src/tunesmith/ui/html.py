"""The page frame and the small pieces every dashboard page is built from. Plain HTML: landmarks, headings,
labelled form fields, tables with headers; every value from a file or a person is escaped here."""

from __future__ import annotations

import math
import time
from html import escape
from typing import Any
from urllib.parse import urlencode

NAV = (("/", "Runs"), ("/new", "New run"), ("/compare", "Compare"), ("/models", "Models"), ("/try", "Try it"),
       ("/label", "Label"), ("/jobs", "Jobs"))  # fmt: skip
STATUS_TEXT = {"finished": "finished", "running": "running", "failed": "failed", "interrupted": "interrupted",
               "done": "done", "stopped": "stopped"}  # fmt: skip


def e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def url(where: str, /, **query: Any) -> str:
    items = [(k, v) for k, vs in query.items() for v in (vs if isinstance(vs, list | tuple) else [vs]) if v is not None]
    return where + ("?" + urlencode(items) if items else "")


def page(title: str, body: str, *, active: str = "", csrf: str = "", scripts: bool = True) -> str:
    links = "".join(
        f"<li><a href='{href}'{' aria-current=page' if href == active else ''}>{name}</a></li>" for href, name in NAV
    )
    logout = (
        f"<form method=post action='/logout' class=inline><input type=hidden name=csrf value='{e(csrf)}'>"
        "<button class=link type=submit>Log out</button></form>"
        if csrf
        else ""
    )
    nav = f"<nav aria-label='Main'><a class=brand href='/'>tunesmith</a><ul>{links}</ul>{logout}</nav>" if csrf else ""
    js = "<script src='/static/ui.js' defer></script>" if scripts else ""
    return (
        "<!doctype html><html lang=en><head><meta charset='utf-8'>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<meta name=csrf content='{e(csrf)}'><title>{e(title)} · tunesmith</title>"
        f"<link rel=stylesheet href='/static/ui.css'>{js}</head>"
        f"<body><header>{nav}</header><main id=main><h1>{e(title)}</h1>{body}</main></body></html>"
    )


def csrf_field(csrf: str) -> str:
    return f"<input type=hidden name=csrf value='{e(csrf)}'>"


def button_form(action: str, label: str, csrf: str, fields: dict[str, Any] | None = None, cls: str = "") -> str:
    hidden = "".join(f"<input type=hidden name='{e(k)}' value='{e(v)}'>" for k, v in (fields or {}).items())
    return (
        f"<form method=post action='{e(action)}' class=inline>{csrf_field(csrf)}{hidden}"
        f"<button type=submit class='{cls}'>{e(label)}</button></form>"
    )


def table(head: list[str], rows: list[list[str]], *, numeric: set[int] | None = None, caption: str = "") -> str:
    """Cells are HTML already (escape what is text with ``e``)."""
    numeric = numeric or set()
    th = "".join(f"<th scope=col{' class=num' if i in numeric else ''}>{h}</th>" for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(f"<td{' class=num' if i in numeric else ''}>{c}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    cap = f"<caption>{caption}</caption>" if caption else ""
    return f"<div class=scroll><table>{cap}<thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>"


def badge(status: str) -> str:
    return f"<span class='badge {e(status)}'>{e(STATUS_TEXT.get(status, status))}</span>"


def alert(text: str, kind: str = "error") -> str:
    role = "alert" if kind == "error" else "status"
    return f"<div class='alert {kind}' role={role}>{text}</div>"


def pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}%"


def number(x: Any, digits: int = 4) -> str:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return e(x)
    if isinstance(x, int):
        return f"{x:,}"
    return "–" if not math.isfinite(x) else f"{x:.{digits}g}"


SHARES = ("accuracy", "macro_f1", "token_f1", "rouge_l", "average_precision", "recall_at_fpr", "roc_auc",
          "precision_at_k")  # fmt: skip
SHARE_PREFIXES = ("recall_at_", "mrr", "ndcg")


def is_share(metric: str) -> bool:
    """A metric between 0 and 1 that reads as a percentage (accuracy, F1, recall@k, MRR, ...)."""
    return metric in SHARES or metric.startswith(SHARE_PREFIXES)


def figure(metric: str, value: Any) -> str:
    """A metric's value as a person reads it: shares as percentages, the rest as numbers."""
    if value is None:
        return "–"
    return pct(value) if is_share(metric) and isinstance(value, int | float) else number(value)


def signed_points(x: float) -> str:
    return f"{100 * x:+.1f}"


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{s}s"


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def when(ts: float | None) -> str:
    if not ts:
        return "–"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def headline(h: dict[str, Any] | None) -> str:
    """The key figure against the general model: value, difference and interval (points for shares)."""
    if not h:
        return "<span class=muted>–</span>"
    if "difference" not in h:
        return e(h.get("status") or "–")
    if is_share(h["metric"]):
        value = pct(h["value"]) if isinstance(h.get("value"), int | float) else "–"
        diff = f"{signed_points(h['difference'])} pts ({signed_points(h['ci_low'])} to {signed_points(h['ci_high'])})"
    else:
        value = number(h.get("value"))
        diff = f"{h['difference']:+.3g} ({h['ci_low']:+.3g} to {h['ci_high']:+.3g})"
    kind = {"better": "better", "worse": "worse"}.get(h.get("status") or "", "unclear")
    metric = h["metric"].replace("_", " ")
    return (
        f"<span class='fig {kind}' title='{e(h.get('text'))}'>{e(metric)} {value}<br>"
        f"<small>{e(diff)} vs {e(h.get('against'))}</small></span>"
    )
