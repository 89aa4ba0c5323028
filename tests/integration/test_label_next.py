"""label-next and learn end to end on the tiny model: what is picked, what is set aside, what is written, the
learning-curve report, and bad pools refused with exit 2."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from tests.conftest import make_rows, tiny_config, write_csv
from tunesmith import api
from tunesmith.cli import main
from tunesmith.labels.select import margins


def _config(tmp_path, tiny_model, train, val, **over):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tiny_model, train, val, tmp_path / "runs", **over)))
    return cfg


def _pool(tmp_path, train_rows):
    """60 unlabelled rows, then 5 already labelled, a repeat of pool row 0 (other case and spacing), and a
    copy of a training text."""
    rows = [{"text": r["text"], "label": ""} for r in make_rows(60, seed=21)]
    rows += [{"text": r["text"], "label": r["label"]} for r in make_rows(5, seed=22)]
    rows.append({"text": "  " + rows[0]["text"].upper() + " ", "label": ""})
    rows.append({"text": train_rows[3]["text"], "label": ""})
    return write_csv(tmp_path / "pool.csv", rows)


def test_label_next_picks_the_runs_most_uncertain_rows(tiny_model, toy_data, tmp_path, cache_dir, capsys):
    train, val = toy_data
    with open(train, encoding="utf-8") as fh:
        train_rows = list(csv.DictReader(fh))
    pool = _pool(tmp_path, train_rows)
    run = api.finetune(_config(tmp_path, tiny_model, train, val, train__epochs=1))

    sel = api.label_next(run.path, pool, k=10, strategy="margin", near=1.0)  # the random tiny model: all alike
    assert sel.set_aside == {
        "already labelled": 5,
        "repeats an earlier pool row": 1,
        "already in the training data": 1,
    }
    assert sel.candidates == 60 and sel.strategy == "margin" and sel.scorer.startswith("the run ")
    assert all(i < 60 for i in sel.indices), "nothing labelled, repeated or trained on is picked"
    probs = api.load(run.path, backend="torch").predict_proba(sel.pool.inputs[:60])
    gaps = margins(probs)
    assert sorted(sel.indices) == sorted(np.argsort(gaps)[:10].tolist()), "the 10 smallest margins"
    assert [p.score for p in sel.picks] == pytest.approx(sorted(gaps)[:10], abs=1e-6)

    out = tmp_path / "to_label.csv"
    assert (
        main(
            [
                "label-next",
                str(run.path),
                "--pool",
                str(pool),
                "--k",
                "10",
                "--near",
                "1",
                "--strategy",
                "margin",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "10 of 60 candidate rows" in printed and "Set aside: 5 already labelled" in printed
    with out.open(encoding="utf-8") as fh:
        written = list(csv.DictReader(fh))
    assert list(written[0]) == ["text", "label", "pool_line", "score", "reason"]
    assert [int(r["pool_line"]) for r in written] == [i + 2 for i in sel.indices]
    assert all(r["label"] == "" and r["reason"].startswith("margin ") for r in written)


def test_label_next_from_a_config_or_a_model_alone(tiny_model, toy_data, tmp_path, cache_dir):
    train, val = toy_data
    pool = write_csv(tmp_path / "pool.csv", [{"text": r["text"]} for r in make_rows(40, seed=5)])
    cfg = _config(tmp_path, tiny_model, train, val)
    diverse = api.label_next(cfg, pool, k=6, strategy="diverse", near=1.0)
    assert diverse.scorer.startswith("a linear model on ") and len(set(diverse.indices)) == 6
    assert all("the most uncertain of a cluster of" in p.reason for p in diverse.picks)
    cold = api.label_next(str(tiny_model), pool, k=4)
    assert cold.strategy == "cold start" and len(cold.picks) == 4
    assert not (tmp_path / "runs").exists(), "picking writes no run"
    # The tiny random model embeds every text alike: at the default threshold most rows are near-twins of
    # training examples, and are set aside as such.
    near = api.label_next(cfg, pool, k=1)
    assert near.set_aside["near-duplicates of training examples"] > 0
    assert near.candidates == 40 - near.set_aside["near-duplicates of training examples"]


def test_bad_pools_are_refused_with_exit_2(tiny_model, toy_data, tmp_path, cache_dir, capsys):
    train, val = toy_data
    cfg = str(_config(tmp_path, tiny_model, train, val))
    no_text = write_csv(tmp_path / "no_text.csv", [{"body": "a film", "label": ""}])
    assert main(["label-next", cfg, "--pool", str(no_text)]) == 2
    err = capsys.readouterr().err
    assert "no_text.csv" in err and "column 'text'" in err and "body" in err
    done = write_csv(tmp_path / "done.csv", make_rows(8, seed=3))
    assert main(["label-next", cfg, "--pool", str(done)]) == 2
    assert "no row is left to label (8 already labelled)" in capsys.readouterr().err
    small = write_csv(tmp_path / "small.csv", [{"text": r["text"]} for r in make_rows(5, seed=3)])
    assert main(["label-next", cfg, "--pool", str(small), "--k", "6", "--near", "1"]) == 2
    assert "--k 6: the pool has only 5 rows to pick from" in capsys.readouterr().err
    empty = write_csv(tmp_path / "empty.csv", [{"text": "a film", "id": "1"}, {"text": "  ", "id": "2"}])
    assert main(["label-next", cfg, "--pool", str(empty)]) == 2
    assert "empty.csv:line 3 [text]: text is empty" in capsys.readouterr().err
    assert main(["label-next", cfg, "--pool", str(tmp_path / "missing.csv")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_learn_writes_a_learning_curve_against_random(tiny_model, toy_data, tmp_path, cache_dir, capsys):
    _, val = toy_data
    rows = make_rows(140, seed=31)
    seed_rows = write_csv(tmp_path / "seed.csv", rows[:12])
    pool = write_csv(tmp_path / "pool.csv", rows[12:])
    cfg = _config(tmp_path, tiny_model, seed_rows, val, train__epochs=2)
    out = tmp_path / "learn"
    args = ["--rounds", "2", "--k", "20", "--baseline", "--near", "1", "--out", str(out)]
    code = main(["learn", str(cfg), "--pool", str(pool), *args])
    assert code == 0
    printed = capsys.readouterr()
    assert "diverse round 2: 52 labels" in printed.err and "random round 2: 52 labels" in printed.err
    assert f"report: {out / 'report.html'}" in printed.out
    curve = json.loads((out / "learning_curve.json").read_text())
    assert [r["labels"] for r in curve["rounds"]] == [12, 32, 52]
    assert [r["labels"] for r in curve["baseline"]] == [12, 32, 52]
    for r in curve["rounds"] + curve["baseline"]:
        assert r["accuracy_ci"][0] <= r["accuracy"] <= r["accuracy_ci"][1]
    with open(out / "diverse" / "round-02" / "train.csv", encoding="utf-8") as fh:
        texts = [r["text"] for r in csv.DictReader(fh)]
    assert len(texts) == len(set(texts)) == 52, "no pool row is revealed twice"
    html = (out / "report.html").read_text()
    assert html.count('class="band"') == 2 and "Random picks reached" in html
    assert main(["learn", str(cfg), "--pool", str(pool), "--out", str(out)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    no_val = _config(tmp_path, tiny_model, seed_rows, None)
    assert main(["learn", str(no_val), "--pool", str(pool), "--out", str(tmp_path / "x")]) == 2
    assert "learn needs data.validation" in capsys.readouterr().err


def test_learn_warm_starts_each_round_from_the_last_rounds_weights(tiny_model, toy_data, tmp_path, cache_dir):
    _, val = toy_data
    rows = make_rows(80, seed=33)
    seed_rows = write_csv(tmp_path / "seed.csv", rows[:12])
    pool = write_csv(tmp_path / "pool.csv", rows[12:])
    cfg = _config(tmp_path, tiny_model, seed_rows, val, train__epochs=1)
    res = api.learn(cfg, pool, rounds=2, k=10, strategy="margin", out=tmp_path / "warm", near=1.0, warm=True)
    assert [r.started_from for r in res.rounds] == ["the pre-trained model"] + ["the previous round's weights"] * 2
    for before, after in zip(res.rounds, res.rounds[1:]):
        used = yaml.safe_load((tmp_path / after.run / "config.yaml").read_text())
        assert used["model"] == str((tmp_path / before.run / "model").resolve())
        labels = json.loads((tmp_path / before.run / "manifest.json").read_text())["label_map"]
        assert used["data"]["label_names"] == [labels[str(i)] for i in range(len(labels))]
    assert "the previous round&#x27;s weights" in (tmp_path / "warm" / "report.html").read_text()
    head = _config(tmp_path, tiny_model, seed_rows, val, train__epochs=1, method="head")
    cold = api.learn(head, pool, rounds=1, k=10, out=tmp_path / "head", near=1.0, warm=True)
    assert cold.rounds[1].started_from == "the pre-trained model (the head method trains no encoder weights)"
