"""Tasks: one folder each (``tasks/<task>/``), holding its ``task.py`` (the Task contract of tasks/base.py,
registered by name) and its ``predictor.py`` (inference/base.py's Predictor). A task folder is found by
looking, not by a list: adding a task changes nothing outside its folder."""

from __future__ import annotations

import importlib
import pkgutil

from tunesmith.tasks.base import TASKS, Task


def _discover() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg:
            importlib.import_module(f"{__name__}.{info.name}.task")


def get_task(name: str) -> type[Task]:
    _discover()
    return TASKS.get(name)


def task_names() -> list[str]:
    _discover()
    return TASKS.names()
