"""The data-driven defaults: each rule's value, and that a key the user set is left alone."""

from __future__ import annotations

import pytest

from tunesmith import config
from tunesmith.errors import ConfigError
from tunesmith.hardware import GIB, Hardware
from tunesmith.methods.lora import lora_rank_for
from tunesmith.models.facts import ModelFacts
from tunesmith.pipeline.defaults import batch_size_for, data_driven, epochs_for, learning_rate_for
from tunesmith.pipeline.memory import estimate
from tunesmith.planning.plan import parse_duration, preference

MINILM = ModelFacts(params=22_700_000, hidden=384, layers=6, heads=12, vocab=30522)
PLENTY = Hardware(cores=2, memory_total=24 * GIB, memory_available=22 * GIB)


@pytest.mark.parametrize(
    ("n", "batch"),
    [(100, 8), (340, 8), (799, 8), (800, 16), (1599, 16), (1600, 32), (100_000, 32)],
)
def test_batch_size_keeps_enough_steps_per_epoch(n: int, batch: int):
    """400 long documents at batch 32 left 26 optimizer steps and a model worse than the frozen probe."""
    assert batch_size_for(n).value == batch


@pytest.mark.parametrize(
    ("task", "n", "batch", "epochs"),
    [
        ("text-classification", 1700, 32, 2),  # 54 steps an epoch
        ("text-classification", 102, 8, 5),  # capped: early stopping on the selection split guards the rest
        ("text-classification", 100_000, 32, 1),
        ("causal-lm", 340, 8, 2),
        ("causal-lm", 102, 8, 4),
        ("image-classification", 850, 16, 5),  # 54 steps an epoch: images aim at 250 steps
        ("image-classification", 425, 8, 5),  # digits: 88.5% at 2 epochs, 94.0% at 5
        ("image-classification", 20_000, 32, 1),
    ],
)
def test_epochs_aim_at_a_number_of_optimizer_steps(task: str, n: int, batch: int, epochs: int):
    assert epochs_for(task, n, batch).value == epochs


def test_learning_rate_by_method_and_model_size():
    assert learning_rate_for("full", "text-classification", 22_700_000).value == 5e-5
    assert learning_rate_for("full", "text-classification", 22_700_000, 8).value == 5e-5
    assert learning_rate_for("full", "text-classification", 22_700_000, 16).value == 7.1e-5
    assert learning_rate_for("full", "text-classification", 22_700_000, 32).value == 1e-4  # sqrt of the batch
    assert learning_rate_for("full", "image-classification", 4_650_000, 32).value == 3e-4  # images: no scaling
    assert learning_rate_for("full", "text-classification", 350_000_000).value == 2e-5
    assert learning_rate_for("full", "image-classification", 4_650_000).value == 3e-4
    assert learning_rate_for("lora", "causal-lm", 134_500_000).value == 5e-4
    assert learning_rate_for("lora", "causal-lm", 7_000_000_000).value == 2e-4
    assert learning_rate_for("head", "text-classification", 22_700_000) is None  # head.learning_rate applies


def test_lora_rank_grows_with_the_data():
    assert [d.value for d in lora_rank_for(500)] == [4, 8]
    assert [d.value for d in lora_rank_for(5_000)] == [8, 16]
    assert [d.value for d in lora_rank_for(50_000)] == [16, 32]


def test_micro_batches_follow_the_memory():
    cfg = config.from_dict({"data": {"train": "t.csv"}, "train": {"max_length": 512}})
    roomy = {d.key: d.value for d in data_driven(cfg, 2000, MINILM, 512, PLENTY)}
    assert roomy["train.gradient_accumulation"] == 1
    small = Hardware(cores=2, memory_total=4 * GIB, memory_available=3 * GIB)
    tight = {d.key: d.value for d in data_driven(cfg, 2000, MINILM, 512, small)}
    steps = tight["train.gradient_accumulation"]
    assert steps > 1
    batch = roomy["train.batch_size"]
    assert batch == 32
    micro = -(-batch // steps)
    assert cfg.train.freeze_embeddings  # the text default: the token embeddings have no optimizer state
    est = estimate(MINILM, cfg.task, "full", 512, frozen_embeddings=True)
    assert est.peak(micro) <= 0.8 * small.memory_available
    assert est.peak(-(-batch // (steps - 1))) > 0.8 * small.memory_available
    trained = estimate(MINILM, cfg.task, "full", 512)
    assert trained.training_state - est.training_state == 12 * MINILM.vocab * MINILM.hidden
    lora = estimate(MINILM, cfg.task, "lora", 512, frozen_embeddings=True)
    assert lora.training_state == estimate(MINILM, cfg.task, "lora", 512).training_state  # adapters: unchanged


def test_keys_the_user_set_are_left_alone():
    cfg = config.from_dict(
        {"data": {"train": "t.csv"}, "method": "lora",
         "train": {"epochs": 3, "batch_size": 16, "learning_rate": 1e-4, "gradient_accumulation": 2},
         "lora": {"r": 32}}
    )  # fmt: skip
    chosen = {d.key: d.value for d in data_driven(cfg, 2000, MINILM, 64, PLENTY)}
    assert chosen == {"lora.alpha": 64}  # only the open key that follows from the set rank


def test_method_preference_follows_the_data_size():
    assert preference("text-classification", 100)[0][0] == "contrastive"
    assert preference("image-classification", 100)[0][0] == "head"
    assert preference("text-classification", 500)[0][0] == "lora"
    assert preference("text-classification", 300, classes=6)[0][0] == "contrastive"
    assert preference("text-classification", 300, classes=2)[0][0] == "lora"
    assert preference("text-classification", 5000)[0][0] == "full"
    assert preference("causal-lm", 5000)[0][0] == "lora"


def test_durations():
    assert parse_duration("90s") == 90 and parse_duration("10m") == 600
    assert parse_duration("1.5h") == 5400 and parse_duration("2h30m") == 9000
    for bad in ("", "ten minutes", "10x", "m"):
        with pytest.raises(ConfigError, match="expected a duration"):
            parse_duration(bad)


def test_a_budget_met_with_fewer_epochs_predicts_and_writes_those_epochs(tmp_path):
    import yaml

    from tunesmith.planning.plan import Option, Plan, recommend, write_config
    from tunesmith.planning.predict import Prediction

    option = Option("m", "full", status="ok")
    option.prediction = Prediction(seconds=100.0, peak_bytes=GIB, gpu_peak_bytes=0, phases={"train": 80.0})
    option.probe = {"resolved": {"epochs": 4}}
    option.defaults = [{"key": "train.epochs", "value": 4, "why": "rule"}, {"key": "lora.r", "value": 8, "why": "x"}]
    plan = Plan(PLENTY, {"train_examples": 2000}, [option], 1.0, budget_s=70.0)
    recommend(plan, {"task": "text-classification", "data": {"train": "t.csv"}})
    assert plan.recommended is option and plan.config["train"]["epochs"] == 2  # 20 + 2 x 20 = 60 s <= 70 s
    assert plan.seconds == pytest.approx(60.0)
    assert [d["key"] for d in plan.kept_defaults()] == ["lora.r"]
    text = write_config(plan, tmp_path / "plan.yaml").read_text()
    assert "# predicted: 1m 00s" in text and "train.epochs = 4" not in text
    assert yaml.safe_load(text)["train"]["epochs"] == 2


def test_a_table_network_is_not_estimated_as_a_transformer():
    """Tables say their own activations (tasks/tabular_classification): a 0.2M-parameter MLP needs well under a
    GiB with batch 256, where the transformer formula with its fallback shape would claim gigabytes."""
    from tunesmith.models.catalog import resolve
    from tunesmith.models.facts import model_facts

    facts = model_facts(resolve("tabular-net"))
    table = estimate(facts, "tabular-classification", "full", seq=85)
    assert table.peak(256) < 1 << 30 and table.activations_per_example < 1 << 20
    text = estimate(facts, "text-classification", "full", seq=85)
    assert text.activations_per_example > 10 * table.activations_per_example
