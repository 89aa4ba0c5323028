"""Config resolution, in one place: every key the config left open becomes a concrete value, with its reason,
before anything trains. ``fit()`` and the methods read only the resolved config."""

from __future__ import annotations

from tunesmith import config as cfgmod
from tunesmith.config import Config, Default
from tunesmith.hardware import Hardware, detect
from tunesmith.methods import get_method
from tunesmith.models.catalog import ModelSource
from tunesmith.models.facts import ModelFacts, model_facts
from tunesmith.pipeline.defaults import data_driven
from tunesmith.tasks import get_task
from tunesmith.tasks.base import TaskData


def data_driven_defaults(
    cfg: Config, data: TaskData, source: ModelSource, max_length: int, hardware: Hardware | None = None
) -> list[Default]:
    """Values for the keys the config left open that follow the data and the machine (docs/planning.md);
    ``hardware`` defaults to this machine's."""
    task = get_task(cfg.task)
    facts = facts_at(source, cfg.task, max_length)
    return task(cfg).open_defaults(cfg, source, data) + data_driven(
        cfg, len(data.train), facts, max_length, hardware or detect(), len(data.labels) or 2
    )


def facts_at(source: ModelSource, task: str, input_size: int) -> ModelFacts:
    """The model's facts for the estimates; an image model's side is the one the run trains at (small pictures
    train a convolutional model below its own side)."""
    return model_facts(source, input_size if get_task(task).default_image_size else 0)


def resolve_config(cfg: Config, chosen: list[Default], input_size: int) -> Config:
    """The config with the data-driven values, the input size and the learning rate filled in: the learning rate
    is the config's, else the data-driven rule's, else the method's own default (the head's head.learning_rate)."""
    overrides = [d.override() for d in chosen] + [f"train.max_length={input_size}"]
    if cfg.train.learning_rate is None and not any(d.key == "train.learning_rate" for d in chosen):
        overrides.append(f"train.learning_rate={get_method(cfg.method).default_learning_rate(cfg)}")
    return cfgmod.from_dict(cfgmod.to_dict(cfg), overrides)
