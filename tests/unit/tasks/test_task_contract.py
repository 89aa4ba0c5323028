"""The Task contract: every task declares its facts; optional hooks have working defaults."""

from __future__ import annotations

import pytest

from tunesmith import config
from tunesmith.errors import ConfigError
from tunesmith.tasks import get_task, task_names
from tunesmith.tasks.base import Task


@pytest.mark.parametrize("name", task_names())
def test_every_task_declares_its_facts(name):
    cls = get_task(name)
    assert issubclass(cls, Task) and cls.name == name
    assert cls.methods and cls.metrics and cls.default_model
    target, low, high = cls.epoch_rule
    assert target > 0 and 1 <= low <= high
    assert cls.learning_rate_for("full", 10**6) is not None and cls.learning_rate_for("head", 10**6) is None
    order, why = cls.method_preference(100)
    assert set(order) == set(cls.methods) and why


def test_classification_tasks_share_pieces_without_subclassing_each_other():
    text, image = get_task("text-classification"), get_task("image-classification")
    assert not issubclass(image, text) and not issubclass(text, image)
    assert image.method_preference(100)[0] == ["head", "lora", "full"]
    assert text.method_preference(100)[0] == ["contrastive", "head", "lora", "full"], "few labels: pairs first"
    assert text.method_preference(5000)[0] == ["full", "lora", "head", "contrastive"]


@pytest.mark.parametrize(
    ("n", "classes", "method"),
    [(102, 2, "contrastive"), (102, 8, "contrastive"), (371, 18, "contrastive"), (288, 6, "contrastive"),
     (499, 3, "contrastive"), (400, 2, "full"), (500, 6, "full"), (1700, 2, "full")],
)  # fmt: skip
def test_text_gets_contrastive_for_few_examples_or_many_classes_under_500(n, classes, method):
    text = get_task("text-classification")
    chosen, why = text.default_method(n, classes)
    assert chosen == method and f"{n:,}" in why
    assert (text.method_preference(n, classes)[0][0] == "contrastive") == (method == "contrastive")


def test_a_task_without_a_head_refuses_the_head_method_clearly():
    cfg = config.from_dict({"task": "causal-lm", "data": {"train": "t.jsonl"}})
    task = get_task("causal-lm")(cfg)
    with pytest.raises(ConfigError, match="causal-lm has no head"):
        task.feature_head(object())
    assert task.lora_modules_to_save(object()) is None and task.data_files is not None
