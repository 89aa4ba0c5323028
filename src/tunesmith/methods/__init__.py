"""Methods decide what trains (all weights, the head only, adapters) and what is saved: one file per method,
each implementing ``methods.base.Method`` and registered by name. ``train`` owns how its training runs, so a
method that trains on cached features (head) needs no change in fit(), the pipeline or the CLI."""

from __future__ import annotations

from tunesmith.methods.base import METHODS, Method


def get_method(name: str) -> Method:
    from tunesmith.methods import contrastive, full, head, lora  # noqa: F401  (each registers itself)

    return METHODS.get(name)()


def method_names() -> list[str]:
    from tunesmith.methods import contrastive, full, head, lora  # noqa: F401

    return METHODS.names()
