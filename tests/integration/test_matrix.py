"""Every task with every method it allows, on tiny random models: the same pipeline, run directory and
predictor for each pair, and the contract's facts agree with the config's task table."""

from __future__ import annotations

import numpy as np
import pytest

import tunesmith
from tests.conftest import image_config, llm_config, pair_config, table_config, tiny_config
from tunesmith import config
from tunesmith.config import TASK_DEFAULTS
from tunesmith.inference import predictor_class
from tunesmith.methods import method_names
from tunesmith.tasks import get_task, task_names

PAIRS = [(task, method) for task in task_names() for method in get_task(task).methods]


def test_the_matrix_covers_every_task_and_method():
    assert set(task_names()) == {
        "text-classification", "image-classification", "causal-lm", "tabular-classification", "embedding",
    }  # fmt: skip
    assert {m for _, m in PAIRS} == set(method_names())
    assert len(PAIRS) == 12


@pytest.mark.parametrize("task", task_names())
def test_the_config_reads_the_task_folders_defaults(task):
    cls, row = get_task(task), TASK_DEFAULTS[task]
    assert (row["model"], row["methods"], row["metrics"]) == (cls.default_model, cls.methods, cls.metrics)
    assert row["lora_dropout"] == cls.lora_dropout and cls.__module__.endswith(row["name"].replace("-", "_") + ".task")
    cfg = config.from_dict({"task": task, "data": {"train": "t"}})
    assert (cfg.model, cfg.method, cfg.train.metric) == (cls.default_model, cls.methods[0], cls.metrics[0])
    assert predictor_class(task).__module__.endswith(f"{cls.__module__.rsplit('.', 1)[0]}.predictor")


@pytest.mark.parametrize(("task", "method"), PAIRS)
def test_every_task_trains_with_every_method(
    task,
    method,
    tiny_model,
    toy_data,
    tiny_llama,
    chat_data,
    tiny_vit,
    image_data,
    table_data,
    pair_data,
    tmp_path,
    cache_dir,
):
    out = tmp_path / "runs"
    one = {"train__epochs": 1, "method": method}
    if task == "text-classification":
        cfg, inputs = tiny_config(tiny_model, *toy_data, out, **one), ["good fine", "bad awful"]
    elif task == "causal-lm":
        cfg, inputs = llm_config(tiny_llama, *chat_data, out, **one), None
    elif task == "embedding":
        cfg, inputs = pair_config(tiny_model, *pair_data, out, **one), None
    elif task == "tabular-classification":
        row = {"amount": 250.0, "merchant": "travel", "hour": 3, "online": "yes", "when": "2024-03-09T03:10"}
        cfg, inputs = table_config(*table_data, out, **one), [row, {**row, "amount": 12.5, "hour": 14}]
    else:
        cfg, inputs = image_config(tiny_vit, *image_data, out, **one), None
    run = tunesmith.finetune(cfg)
    m = run.manifest
    assert (m["status"], m["task"], m["method"]) == ("complete", task, method)
    trained = m["fit"]["steps"] > 0 or "C" in m["fit"]["selection"]  # a linear head is fitted in closed form
    assert trained and (run.path / "report.html").is_file() and (run.path / "config.yaml").is_file()
    assert not (run.path / "checkpoints").exists()
    folder = m["export"].get("path") or m["export"].get("adapter")
    assert (run.path / folder).is_dir()
    predictor = tunesmith.load(run.path)
    assert type(predictor) is predictor_class(task)
    if inputs is not None:
        preds = predictor.predict(inputs)
        assert len(preds) == 2 and all(p.label in predictor.labels for p in preds)
    if task == "causal-lm":
        assert isinstance(predictor.generate("What does a cat say?", max_new_tokens=4), str)
    if task == "embedding":
        vectors = predictor.encode(["great 1", "dull 2"])
        assert vectors.shape == (2, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
