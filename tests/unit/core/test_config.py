from pathlib import Path

import pytest

from tunesmith import config
from tunesmith.errors import ConfigError

BASE = {"data": {"train": "t.csv"}}


def test_defaults_fill_every_section():
    cfg = config.from_dict(BASE)
    assert cfg.method == "full" and cfg.model == "minilm-l6"
    assert cfg.train.epochs is None and cfg.train.learning_rate is None  # open: they follow the data
    assert cfg.lora.r is None and cfg.lora.alpha is None and cfg.eval.slice_columns == []


def test_unknown_key_names_its_path_and_the_allowed_keys():
    with pytest.raises(ConfigError) as exc:
        config.from_dict({"data": {"train": "t.csv"}, "train": {"epoch": 2}})
    assert "train.epoch: unknown key" in str(exc.value)
    assert "epochs" in str(exc.value)


@pytest.mark.parametrize(
    ("raw", "expect"),
    [
        ({"method": "qlora"}, "method: got 'qlora'; allowed: full, head, lora"),
        ({"train": {"epochs": 0}}, "train.epochs: got 0; allowed: a number >= 1"),
        ({"train": {"epochs": "two"}}, "train.epochs: got 'two'; allowed: int"),
        ({"train": {"scheduler": "step"}}, "allowed: linear, cosine, constant"),
        ({"eval": {"slice_columns": "length"}}, "eval.slice_columns: got 'length'; allowed: list of str"),
        ({"lora": {"dropout": 1.5}}, "lora.dropout: got 1.5; allowed: a number <= 0.9"),
    ],
)
def test_bad_values_are_refused_with_path_and_allowed(raw, expect):
    with pytest.raises(ConfigError) as exc:
        config.from_dict({**BASE, **raw})
    assert expect in str(exc.value)


@pytest.mark.parametrize(
    ("task", "frozen"), [("text-classification", True), ("causal-lm", False), ("image-classification", False)]
)
def test_freeze_embeddings_is_resolved_from_the_task(task, frozen):
    assert config.from_dict({**BASE, "task": task}).train.freeze_embeddings is frozen
    told = config.from_dict({**BASE, "task": task, "train": {"freeze_embeddings": False}})
    assert told.train.freeze_embeddings is False


@pytest.mark.parametrize("task", ["image-classification", "tabular-classification"])
def test_freeze_embeddings_is_refused_where_the_model_has_no_token_embeddings(task):
    with pytest.raises(ConfigError, match=f"train.freeze_embeddings: .*task {task} has none"):
        config.from_dict({**BASE, "task": task, "train": {"freeze_embeddings": True}})


def test_required_train_file():
    with pytest.raises(ConfigError, match="data.train: required key is missing"):
        config.from_dict({"data": {"validation": "v.csv"}})
    with pytest.raises(ConfigError, match="data: required section"):
        config.from_dict({})


def test_overrides_parse_yaml_values_and_create_sections():
    cfg = config.from_dict(
        BASE,
        [
            "train.epochs=5",
            "train.learning_rate=2e-5",
            "eval.slice_columns=[a, b]",
            "lora.merge=true",
            "data.validation=v.csv",
        ],
    )
    assert cfg.train.epochs == 5 and cfg.train.learning_rate == pytest.approx(2e-5)
    assert cfg.eval.slice_columns == ["a", "b"] and cfg.lora.merge is True
    assert cfg.data.validation == "v.csv"
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        config.from_dict(BASE, ["train.epochs"])


def test_config_is_frozen():
    cfg = config.from_dict(BASE)
    with pytest.raises(AttributeError):
        cfg.train.epochs = 9  # type: ignore[misc]


def test_dump_and_load_round_trip(tmp_path: Path):
    cfg = config.from_dict(BASE, ["train.max_length=64", "method=lora"])
    config.dump(cfg, tmp_path / "c.yaml")
    assert config.load(tmp_path / "c.yaml") == cfg


def test_load_names_the_file(tmp_path: Path):
    p = tmp_path / "bad.yaml"
    p.write_text("data:\n  train: x.csv\nbogus: 1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: bogus: unknown key"):
        config.load(p)
    p.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(p)


def test_describe_documents_every_key():
    rows = config.describe()
    keys = {r[0] for r in rows}
    assert {"data.train", "train.epochs", "lora.r", "eval.slice_columns", "model"} <= keys
    assert all(r[2] for r in rows if r[0] != "full"), "every key has help text"


@pytest.mark.parametrize("key", ["train.learning_rate", "head.learning_rate"])
def test_a_zero_learning_rate_is_refused_not_replaced(key):
    with pytest.raises(ConfigError, match=rf"{key}: got 0.0; allowed: a number > 0$"):
        config.from_dict({"data": {"train": "t.csv"}}, [f"{key}=0"])
    assert config.coerce({"data": {"train": "t.csv"}}, [f"{key}=1e-9"]) is not None


def test_a_mapping_inside_a_section_reads_checks_and_overrides_like_a_section():
    cfg = config.from_dict({"task": "tabular-classification", "data": {"train": "t"},
                            "eval": {"cost": {"missed": 20}}}, ["eval.cost.false_alarm=2"])  # fmt: skip
    assert (cfg.eval.cost.missed, cfg.eval.cost.false_alarm) == (20.0, 2.0)
    assert config.from_dict({"data": {"train": "t"}}).eval.cost.missed == 100.0  # the default when left out
    with pytest.raises(config.ConfigError, match=r"eval\.cost\.mised: unknown key \(did you mean 'missed'\?\)"):
        config.from_dict({"data": {"train": "t"}, "eval": {"cost": {"mised": 1}}})
    with pytest.raises(config.ConfigError, match=r"eval\.cost\.missed: got -1"):
        config.from_dict({"data": {"train": "t"}}, ["eval.cost.missed=-1"])
    with pytest.raises(config.ConfigError, match="--set eval.cost.x"):
        config.from_dict({"data": {"train": "t"}}, ["eval.cost.x=1"])
    with pytest.raises(config.ConfigError, match=r"eval\.fewer_labels\[1\]"):
        config.from_dict({"data": {"train": "t"}, "eval": {"fewer_labels": [0.1, 1.5]}})
    keys = [row[0] for row in config.describe()]
    assert "eval.cost.missed" in keys and "tabular.loss" in keys
