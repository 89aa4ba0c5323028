"""The search space written in the config: what parses, and the errors for what does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.errors import ConfigError
from tunesmith.tuning.space import parse_file

HEAD = "task: text-classification\ndata:\n  train: t.csv\n  text_column: col(1)\ntrain:\n  epochs: 2\n"


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "search.yaml"
    path.write_text(HEAD + body)
    return path


def test_dimensions_are_taken_out_and_the_rest_stays(tmp_path: Path):
    space = parse_file(write(tmp_path, "  learning_rate: loguniform(1e-5, 1e-3)\n  batch_size: choice(8, 16, 32)\n"
                                       "lora:\n  r: int(4, 16, 4)\n  dropout: uniform(0.0, 0.2)\n"))  # fmt: skip
    dims = {d.key: d for d in space.dimensions}
    assert dims["train.learning_rate"].kind == "loguniform" and dims["train.learning_rate"].args == (1e-5, 1e-3)
    assert dims["train.batch_size"].args == (8, 16, 32)
    assert dims["lora.r"].args == (4, 16, 4) and dims["lora.dropout"].args == (0.0, 0.2)
    assert "learning_rate" not in space.base["train"] and space.base["train"]["epochs"] == 2
    # a call-like value of a free-text key that names no distribution is a value, not a dimension
    assert space.base["data"]["text_column"] == "col(1)"
    raw = space.config_for({"train.learning_rate": 3e-4, "lora.r": 8})
    assert raw["train"]["learning_rate"] == 3e-4 and raw["lora"]["r"] == 8


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("  learning_rate: logunifrm(1e-5, 1e-3)", "unknown distribution 'logunifrm' (did you mean loguniform?)"),
        ("  learning_rate: loguniform(1e-3, 1e-5)", "low must be below high"),
        ("  learning_rate: loguniform(0, 1e-3)", "a log scale needs low > 0"),
        ("  learning_rate: loguniform(1e-5)", "expected 2 arguments"),
        ("  learning_rate: loguniform(1e-5, fast)", "'fast' is not a number"),
        ("  learning_rate: loguniform(1e-5, (1e-3))", "unbalanced or nested parentheses"),
        ("  batch_size: choice(16)", "a choice needs two or more values"),
        ("  batch_size: choice(16, 16)", "a value is listed twice"),
        ("  batch_size: int(8.5, 32)", "the bounds must be whole numbers"),
        ("  batch_size: int(8, 32, 0)", "step must be 1 or more"),
        ("  warmup_ratio: uniform(0.1, 2.0)", "train.warmup_ratio: got 2.0; allowed: a number <= 1.0"),
        ("  scheduler: choice(linear, wavy)", "train.scheduler: got 'wavy'; allowed: linear, cosine, constant"),
        ("  learnin_rate: loguniform(1e-5, 1e-3)", "train.learnin_rate: unknown key"),
    ],
)
def test_bad_expressions_name_file_line_key_and_what_is_allowed(tmp_path: Path, line: str, expected: str):
    path = write(tmp_path, line + "\n")
    with pytest.raises(ConfigError) as exc:
        parse_file(path)
    message = str(exc.value)
    assert f"{path}:7:" in message  # the line of the expression
    assert expected in message
    key = line.split(":")[0].strip()
    assert f"train.{key}" in message


def test_a_config_without_a_distribution_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match="no search space"):
        parse_file(write(tmp_path, "  learning_rate: 1e-3\n"))


def test_missing_and_malformed_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="config file not found"):
        parse_file(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_file(bad)


def test_list_choices_reach_optuna_as_text_and_the_config_as_lists(tmp_path: Path):
    """Optuna's storage keeps scalars only (a list choice is warned about and breaks its importance evaluators):
    list values travel as their YAML text and come back as lists in the trial's config and in best.yaml."""
    import optuna

    space = parse_file(write(tmp_path, "classifier:\n  hidden: choice([], [256], [128, 64])\n"))
    (dim,) = space.dimensions
    assert dim.encoded
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(6):
        trial = study.ask()
        seen.append(dim.suggest(trial))
        assert isinstance(trial.params["classifier.hidden"], str)
        raw = space.config_for(trial.params)
        assert raw["classifier"]["hidden"] == seen[-1] and isinstance(seen[-1], list)
    assert {tuple(v) for v in seen} <= {(), (256,), (128, 64)}
