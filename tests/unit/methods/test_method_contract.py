"""What the methods tell the planner and the defaults, without a branch on their names elsewhere."""

from __future__ import annotations

from tunesmith import config
from tunesmith.hardware import Hardware
from tunesmith.methods import get_method, method_names
from tunesmith.models.facts import ModelFacts

CPU = Hardware(cores=2, memory_total=16 << 30, memory_available=16 << 30)
MINILM = ModelFacts(params=22_700_000, hidden=384, layers=6, heads=12, vocab=30522)


def test_every_method_is_registered():
    assert method_names() == ["contrastive", "full", "head", "lora"]


def test_trainable_parameters_and_activations():
    full, head, lora = (get_method(n) for n in ("full", "head", "lora"))
    assert full.trainable_params(MINILM, 8, 2, 2) == MINILM.params
    assert head.trainable_params(MINILM, 8, 2, 2) == 1280 * 2
    assert lora.trainable_params(MINILM, 8, 2, 2) == 6 * 2 * 2 * 8 * 384
    assert (full.keeps_activations, head.keeps_activations) == (True, False)
    assert (full.epochs_key, head.epochs_key) == ("train.epochs", "head.epochs")
    groups = get_method("contrastive")
    assert (groups.epoch_rule, groups.batch_sizes) == ((60, 1, 20), (16,))


def test_contrastive_groups_set_their_own_batch_and_epochs():
    from tunesmith.pipeline.defaults import data_driven, epochs_for
    from tunesmith.pipeline.memory import activation_bytes

    one = activation_bytes(MINILM, "text-classification", "full", 64)
    assert activation_bytes(MINILM, "text-classification", "contrastive", 64) == one, "a group member is one text"
    assert epochs_for("text-classification", 102, 16, "contrastive").value == 9  # 7 steps an epoch: ~60 steps
    assert epochs_for("text-classification", 40, 16, "contrastive").value == 20  # 3 steps an epoch, at most 20
    assert epochs_for("text-classification", 371, 8, "full").value == 3

    cfg = config.from_dict({"data": {"train": "t"}, "method": "contrastive", "model": "minilm-l6"})
    chosen = {d.key: d for d in data_driven(cfg, 102, MINILM, 64, CPU)}
    assert chosen["train.batch_size"].value == 16 and "groups of 16 texts" in chosen["train.batch_size"].why
    assert chosen["train.epochs"].value == 9
    full = config.from_dict({"data": {"train": "t"}, "method": "full", "model": "minilm-l6"})
    assert {d.key: d.value for d in data_driven(full, 102, MINILM, 64, CPU)}["train.batch_size"] == 8


def test_lora_fills_its_own_open_keys():
    lora = get_method("lora")
    open_cfg = config.from_dict({"data": {"train": "t"}, "method": "lora"})
    assert {d.key: d.value for d in lora.open_defaults(open_cfg, 500)} == {"lora.r": 4, "lora.alpha": 8}
    set_r = config.from_dict({"data": {"train": "t"}, "method": "lora", "lora": {"r": 32}})
    assert {d.key: d.value for d in lora.open_defaults(set_r, 500)} == {"lora.alpha": 64}
    assert get_method("full").open_defaults(open_cfg, 500) == []


def test_descriptions_of_a_resolved_config():
    cfg = config.from_dict(
        {"data": {"train": "t"}, "method": "lora", "train": {"epochs": 3, "learning_rate": 5e-4}, "lora": {"r": 8}}
    )
    assert get_method("lora").describe(cfg) == ["3 epochs", "lr 0.0005", "r 8"]
    assert get_method("head").describe(cfg)[0] == "40 head epochs"


def test_plans_say_when_the_token_embeddings_stay_as_pre_trained():
    base = {"data": {"train": "t.csv"}, "train": {"epochs": 2, "learning_rate": 5e-5, "batch_size": 8}}
    text = config.from_dict(base)
    kept = config.from_dict({**base, "train": {**base["train"], "freeze_embeddings": False}})
    assert get_method("full").describe(text) == ["2 epochs", "lr 5e-05", "token embeddings frozen"]
    assert get_method("full").describe(kept) == ["2 epochs", "lr 5e-05"]
    assert get_method("contrastive").describe(text)[-1] == "token embeddings frozen"
    assert "token embeddings frozen" not in get_method("lora").describe(text)  # adapters never train them
    causal = config.from_dict({**base, "task": "causal-lm", "method": "full"})
    assert "token embeddings frozen" not in get_method("full").describe(causal)
