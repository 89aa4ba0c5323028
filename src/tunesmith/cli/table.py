"""Aligned plain-text tables for the terminal: each column as wide as its longest cell."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Sequence


def table(
    header: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[int] = (), wrap_last: bool = True
) -> str:
    """Columns padded to their widest cell (``right``: right-aligned columns); the last column wraps to the
    terminal's width under itself instead of running off the screen."""
    cells = [[str(c) for c in header]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lead = sum(widths[:-1]) + 2 * (len(widths) - 1)
    room = max(shutil.get_terminal_size((120, 24)).columns - lead, 30)
    out = []
    for r in cells:
        parts = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r[:-1])]
        last = textwrap.wrap(r[-1], room) if wrap_last and len(r[-1]) > room else [r[-1]]
        out.append("  ".join([*parts, last[0] if last else ""]).rstrip())
        out += [" " * lead + more for more in last[1:]]
    return "\n".join(out)


def listing(
    header: Sequence[str], rows: Sequence[Sequence[object]], total: int, written: bool, right: Sequence[int] = ()
) -> str:
    """The first rows of a longer list as a table (no wrapping: one row a line), then how many more there are and,
    unless they were ``written`` to a file, how to get them all."""
    out = table(header, rows, right, wrap_last=False)
    more = total - len(rows)
    if more:
        out += f"\n... and {more} more" + ("" if written else " (--output FILE lists them all)")
    return out
