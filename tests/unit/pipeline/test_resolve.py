"""Config resolution: the learning rate comes from the config, else the data-driven rule, else the method."""

from __future__ import annotations

from tunesmith import config
from tunesmith.config import Default


def _cfg(**raw):
    return config.from_dict({"data": {"train": "t.csv"}, **raw})


def test_the_configured_learning_rate_wins():
    from tunesmith.pipeline.resolve import resolve_config

    cfg = _cfg(train={"learning_rate": 1e-3})
    resolved = resolve_config(cfg, [Default("train.epochs", 3, "rule")], 64)
    assert (resolved.train.learning_rate, resolved.train.epochs, resolved.train.max_length) == (1e-3, 3, 64)


def test_the_rule_then_the_method_default():
    from tunesmith.pipeline.resolve import resolve_config

    ruled = resolve_config(_cfg(), [Default("train.learning_rate", 5e-5, "full on 22.7M")], 64)
    assert ruled.train.learning_rate == 5e-5
    head = resolve_config(_cfg(method="head", head={"learning_rate": 0.02}), [], 64)
    assert head.train.learning_rate == 0.02  # the head's own rate when nothing else gives one
