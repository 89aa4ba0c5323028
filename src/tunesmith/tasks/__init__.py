"""Tasks: each keeps its data handling, model building, loss and metrics in one file."""

from __future__ import annotations

from typing import Any

from tunesmith.registry import Registry

TASKS: Registry[Any] = Registry("task")


def get_task(name: str) -> Any:
    # Import here so that registering a task never imports torch for `validate`-only paths early.
    from tunesmith.tasks import text_classification  # noqa: F401

    return TASKS.get(name)
