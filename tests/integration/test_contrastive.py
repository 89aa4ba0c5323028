"""The contrastive method (SetFit's recipe on tunesmith's fit()): the pairs it draws, an encoder that pulls
same-class texts together, a head fitted on the tuned features, and the run's usual files and choices."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch

import tunesmith
from tests.conftest import tiny_config
from tunesmith.methods.contrastive import group_plan, in_batch_loss, make_groups


def test_groups_hold_same_class_pairs_and_take_classes_and_examples_in_turn():
    labels = [0] * 6 + [1] * 6 + [2] * 3 + [3]  # class 3 has one example: it only has different-class pairs
    groups = make_groups(labels, steps=40, size=8, per_class=2, seed=0)
    assert len(groups) == 40 and all(len(g) == len(set(g)) == 8 for g in groups)
    assert all(len({labels[i] for i in g}) < len(g) for g in groups), "every group has a same-class pair"
    per_class = Counter(labels[i] for g in groups for i in g)
    assert max(per_class[c] for c in (0, 1, 2)) - min(per_class[c] for c in (0, 1, 2)) <= 4
    assert per_class[3] >= 0.4 * per_class[0], "a one-example class comes up every round of classes"
    seen = Counter(i for g in groups for i in g)
    assert max(seen[i] for i in range(6)) - min(seen[i] for i in range(6)) <= 2, "a class's examples in turn"
    assert groups == make_groups(labels, 40, 8, 2, seed=0) != make_groups(labels, 40, 8, 2, seed=1)
    assert all(sorted(g) == [0, 1, 2] for g in make_groups([0, 0, 1], 2, 16, 2, 0)), "a group of all there is"


def test_micro_batches_and_processes_each_train_a_smaller_group():
    assert group_plan(63, 16, 1) == (63, 16)
    assert group_plan(63, 16, 2) == (126, 8), "2 micro-batches: twice the groups, half the size"
    assert group_plan(63, 16, 4) == (252, 4)
    assert group_plan(60, 16, 32) == (60 * 32, 2), "a group keeps at least one pair"


def test_every_pair_in_a_group_trains_and_both_kinds_weigh_half():
    loss = in_batch_loss(lambda model, batch: batch["emb"])
    same = torch.tensor([[1.0, 0.0]] * 4)  # every pair's cosine similarity is 1
    y = torch.tensor([0, 0, 1, 2])  # 1 same-class pair (error 0), 5 different-class pairs (error 1 each)
    assert loss(None, {"emb": same, "group_labels": y}).item() == pytest.approx(0.5), "halves, not 5/6"
    apart = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    # same-class pair: 1 -> error 0; classes 0-1 and 0-2 orthogonal -> 0; classes 1-2 opposite -> (-1 - 0)^2 = 1
    assert loss(None, {"emb": apart, "group_labels": y}).item() == pytest.approx(0.5 * (1 / 5))
    assert loss(None, {"emb": apart[[0, 2]], "group_labels": y[[0, 2]]}).item() == 0.0, "no same-class pair"


def _similarity_gap(encoder, tokenizer, texts: list[str], labels: list[str]) -> float:
    """Mean cosine similarity of same-class pairs minus different-class pairs (mean-pooled embeddings)."""
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    sims = emb @ emb.T
    y = np.array(labels)
    same = y[:, None] == y[None, :]
    off = ~np.eye(len(y), dtype=bool)
    return float(sims[same & off].mean() - sims[~same].mean())


def test_contrastive_tunes_the_encoder_then_fits_a_head(tiny_model, toy_data, tmp_path, cache_dir):
    from transformers import AutoModel, AutoTokenizer

    train, val = toy_data
    cfg = tiny_config(
        tiny_model, train, val, tmp_path / "runs", method="contrastive", train__epochs=10,
        train__learning_rate=1e-3, classifier__keep_better=False, classifier__pooling="mean",
    )  # fmt: skip
    run = tunesmith.finetune(cfg)
    man = run.manifest
    assert (man["status"], man["method"]) == ("complete", "contrastive")
    steps = [json.loads(x) for x in (run.path / "logs" / "train.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in steps if r.get("kind") == "step"]
    assert len(losses) == man["fit"]["steps"] > 0
    assert man["fit"]["epochs"] == 10, "epochs of groups, as many texts as examples an epoch"
    assert {r["samples"] for r in steps if r.get("kind") == "step"} == {16}, "the loop counts a group's texts"
    assert man["fit"]["steps"] == 10 * -(-204 // 16), "204 training rows after the selection split, groups of 16"
    quarter = len(losses) // 4
    assert np.mean(losses[-quarter:]) < 0.7 * np.mean(losses[:quarter]), "the pair loss falls"
    assert man["fit"]["warm_start"] is not None, "the frozen head was fitted first: the candidate to beat"
    assert "frozen encoder with a trained head" in man["kept"]["why"]
    assert man["fit"]["refit"]["examples"] == 240, "the tuned encoder's head, fitted again on the selection rows too"

    texts = [line.split(",")[0] for line in val.read_text().splitlines()[1:81]]
    labels = [line.split(",")[1] for line in val.read_text().splitlines()[1:81]]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    before = _similarity_gap(AutoModel.from_pretrained(tiny_model), tokenizer, texts, labels)
    after = _similarity_gap(AutoModel.from_pretrained(run.path / "model"), tokenizer, texts, labels)
    assert after > before + 0.1, f"same-class texts moved together: gap {before:.3f} -> {after:.3f}"
    assert run.metrics["accuracy"] >= 0.85
    pred = tunesmith.load(run.path)
    assert [p.label for p in pred.predict(["great superb film", "dull awful plot"])] == ["pos", "neg"]


def test_small_text_data_gets_the_contrastive_method_unless_one_is_named(tiny_model, tmp_path, cache_dir):
    from tests.conftest import make_rows, write_csv
    from tunesmith import config
    from tunesmith.pipeline.finetune import check

    small = write_csv(tmp_path / "small.csv", make_rows(120, seed=2))
    large = write_csv(tmp_path / "large.csv", make_rows(400, seed=2))
    val = write_csv(tmp_path / "val.csv", make_rows(40, seed=3))

    def resolved(train, **named):
        raw = tiny_config(tiny_model, train, val, tmp_path / "runs", **named)
        raw.pop("method")
        raw.update(named)
        return check(config.from_dict(raw))

    few = resolved(small)
    assert few.resolved.method == "contrastive" and type(few.method).__name__ == "Contrastive"
    why = next(d.why for d in few.chosen if d.key == "method")
    assert why.startswith(f"{len(few.data.train)} training examples (under 200)")
    assert resolved(large).resolved.method == "full"
    assert resolved(small, method="head").resolved.method == "head", "a named method is kept"

    raw = tiny_config(tiny_model, small, val, tmp_path / "runs", train__epochs=1)
    raw.pop("method")
    run = tunesmith.finetune(raw)
    assert run.manifest["method"] == "contrastive" and "-text-classification-contrastive-" in run.path.name


def test_a_linear_head_is_fitted_again_on_the_selection_rows_and_the_probe_on_the_same(
    tiny_model, toy_data, tmp_path, cache_dir
):
    """Once the choices are made, the head method's logistic head is fitted on all 240 training rows (the 36 of
    the selection split included), and so is the linear probe it is compared with: the two are then one model."""
    from tunesmith.eval.report import PROBE

    train, val = toy_data
    run = tunesmith.finetune(
        tiny_config(tiny_model, train, val, tmp_path / "runs", method="head", classifier__pooling="mean")
    )
    refit = run.manifest["fit"]["refit"]
    assert (refit["examples"], refit["selection_examples"]) == (240, 36)
    report = json.loads((run.path / "report.json").read_text())
    assert report["probe"]["fitted_on"] == "240 rows: the training and selection splits, as the run's head"
    assert report["fit"]["refit"] == refit
    assert report["models"]["tuned"]["accuracy"] == report["models"][PROBE]["accuracy"]
    assert "fitted again on 240 rows" in (run.path / "report.html").read_text()

    # No selection split: the choices were made on the validation data, which must not train the head.
    plain = tunesmith.finetune(
        tiny_config(tiny_model, train, val, tmp_path / "plain", method="head", classifier__pooling="mean",
                    data__selection_split=0.0)
    )  # fmt: skip
    assert plain.manifest["fit"]["refit"] is None
    plain_report = json.loads((plain.path / "report.json").read_text())
    assert plain_report["probe"]["fitted_on"] == "240 rows: the training split"
