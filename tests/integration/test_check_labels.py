"""check-labels: planted label flips are found (out-of-fold scores on frozen features, confident learning), the
command prints and writes them, and what it cannot check is refused clearly."""

from __future__ import annotations

import csv

import numpy as np
import yaml

from tests.conftest import llm_config, make_rows, tiny_config, write_csv
from tunesmith import api
from tunesmith.cli import main

FLIP = {"pos": "neg", "neg": "pos"}


def test_planted_flips_are_found(tiny_model, tmp_path, cache_dir, capsys):
    rows = make_rows(300, seed=4)
    rng = np.random.default_rng(0)
    planted = set(rng.choice(len(rows), size=15, replace=False).tolist())  # 5% of the labels flipped
    for i in planted:
        rows[i]["label"] = FLIP[rows[i]["label"]]
    train = write_csv(tmp_path / "train.csv", rows)
    val = write_csv(tmp_path / "val.csv", make_rows(60, seed=9))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tiny_model, train, val, tmp_path / "runs")))

    found = api.check_labels(cfg)
    assert found.examples == 300, "the training data as given, the selection split put back"
    flipped = {i + 2 for i in planted}  # the CSV line of row i (line 1 is the header)
    lines = {s.line for s in found.suspects}
    caught = lines & flipped
    assert len(caught) >= 0.7 * len(flipped), f"recall {len(caught)}/{len(flipped)}"
    assert len(caught) >= 0.5 * len(lines), f"precision {len(caught)}/{len(lines)}"
    for s in found.suspects:
        if s.line in caught:
            assert s.suggested == FLIP[s.label], "the suggestion is the label before the flip"
            assert s.suggested_probability > 0.5 > s.label_probability
    assert found.accuracy > 0.8

    out = tmp_path / "suspects.csv"
    assert main(["check-labels", str(cfg), "--top", "5", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{len(found.suspects)} of 300 training examples look mislabelled" in printed
    assert "suggested (p)" in printed and f"wrote {out}" in printed
    with out.open(encoding="utf-8") as fh:
        written = list(csv.DictReader(fh))
    assert [int(r["line"]) for r in written] == [s.line for s in found.suspects]
    assert set(written[0]) == {"file", "line", "example", "label", "suggested", "label_probability",
                               "suggested_probability"}  # fmt: skip
    assert not (tmp_path / "runs").exists(), "checking labels writes no run"


def test_what_cannot_be_checked_is_refused(tiny_llama, chat_data, tmp_path, capsys):
    cfg = tmp_path / "chat.yaml"
    cfg.write_text(yaml.safe_dump(llm_config(tiny_llama, *chat_data, tmp_path / "runs")))
    assert main(["check-labels", str(cfg)]) == 2
    assert "reads text or image classification runs" in capsys.readouterr().err
    assert main(["check-labels", str(tmp_path)]) == 2
    assert "not a tunesmith run directory" in capsys.readouterr().err
    assert main(["check-labels", str(cfg), "--folds", "1"]) == 2
    assert "--folds 1: at least 2" in capsys.readouterr().err
