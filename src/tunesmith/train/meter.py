"""A work meter for the planner's probe: how many examples each phase pushed through the model, and how long
that took, split by kind of work (a forward pass, a generated answer) and by data split.

Off unless a probe turns it on with ``recording()``; then each ``measure()`` appends one record. The planner
scales each record by how much more of that split the full run holds, and keeps the rest of a phase's time as
a fixed cost (see tunesmith.planning.predict)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

_records: list[dict[str, Any]] | None = None
_phase = "setup"


@contextlib.contextmanager
def recording() -> Iterator[list[dict[str, Any]]]:
    global _records, _phase
    _records, _phase = [], "setup"
    try:
        yield _records
    finally:
        _records = None


def phase(name: str) -> None:
    global _phase
    _phase = name


@contextlib.contextmanager
def measure(kind: str, split: str, n: int, tokens: int = 0) -> Iterator[None]:
    """Time a block that handles ``n`` examples (``tokens`` tokens, where inputs are tokens) of ``split``
    (train, validation) by ``kind`` of work."""
    if _records is None:
        yield
        return
    t = time.perf_counter()
    yield
    _records.append(
        {"phase": _phase, "kind": kind, "split": split, "n": n, "tokens": tokens, "seconds": time.perf_counter() - t}
    )
