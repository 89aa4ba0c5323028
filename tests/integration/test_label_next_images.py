"""label-next and learn on images, with the tiny ViT: pools as a folder, a listing and an .npz; what is picked
(the run's smallest margins), what is set aside (labelled, the same pixels twice, training images), what is written
back, the learning loop's rounds, and bad pools refused with exit 2."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import COLOURS_RGB, image_config, make_image, write_image_folder
from tunesmith import api
from tunesmith.cli import main
from tunesmith.labels.select import margins

CLASSES = list(COLOURS_RGB)


def _config(tmp_path, model, train, val, **over):
    cfg = tmp_path / "images.yaml"
    cfg.write_text(yaml.safe_dump(image_config(model, train, val, tmp_path / "runs", **over)))
    return cfg


def _image_pool(tmp_path, train):
    """30 unlabelled images at the top of a folder; a sub-folder of 3 labelled ones; the first image again as a
    BMP (the same pixels under another name and format); a copy of a training image."""
    pool = tmp_path / "pool"
    (pool / "red").mkdir(parents=True)
    for i in range(30):
        Image.fromarray(make_image(CLASSES[i % 3], 500 + i)).save(pool / f"u{i:02d}.png")
    for i in range(3):
        Image.fromarray(make_image("red", 600 + i)).save(pool / "red" / f"l{i}.png")
    Image.open(pool / "u00.png").save(pool / "u00-again.bmp")
    shutil.copy(train / "blue" / "3.png", pool / "from-training.png")
    return pool


def test_label_next_ranks_images_by_the_runs_margins(tiny_vit, image_data, tmp_path, cache_dir, capsys):
    train, val = image_data
    run = api.finetune(_config(tmp_path, tiny_vit, train, val, train__epochs=2))
    pool = _image_pool(tmp_path, train)

    sel = api.label_next(run.path, pool, k=8, strategy="margin", near=1.0)
    assert sel.set_aside == {
        "already labelled": 3,
        "repeats an earlier pool row": 1,
        "already in the training data": 1,
    }
    assert sel.candidates == 30 and sel.shown_as == "image" and sel.pool.unit == "images"
    unlabelled = [
        i for i, row in enumerate(sel.pool.rows) if row["path"].startswith("u") and "again" not in row["path"]
    ]
    assert len(unlabelled) == 30 and set(sel.indices) <= set(unlabelled)
    predictor = api.load(run.path, backend="torch")
    probs = predictor.predict_proba([sel.pool.inputs[i].pixels for i in unlabelled])
    gaps = margins(probs)
    want = [unlabelled[j] for j in np.argsort(gaps)[:8]]
    assert sorted(sel.indices) == sorted(want), "the 8 smallest margins of the run's own model"
    assert [p.score for p in sel.picks] == pytest.approx(sorted(gaps)[:8], abs=1e-5)
    assert api.label_next(run.path, pool, k=2, near=1.0).strategy == "margin", "images pick by margin by default"

    out = tmp_path / "to_label.csv"
    assert main(["label-next", str(run.path), "--pool", str(pool), "--k", "8", "--strategy", "margin",
                 "--near", "1", "--output", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "8 of 30 candidate images of" in printed and "image" in printed.splitlines()[2]
    with out.open(encoding="utf-8") as fh:
        written = list(csv.DictReader(fh))
    assert list(written[0]) == ["path", "label", "pool_line", "score", "reason"]
    assert {r["path"] for r in written} == {sel.pool.rows[i]["path"] for i in sel.indices}
    assert all(r["label"] == "" and (pool / r["path"]).is_file() for r in written)


def test_image_pools_from_an_array_file_a_listing_and_a_model_alone(tiny_vit, image_data, tmp_path, cache_dir):
    train, val = image_data
    images = np.stack([make_image(CLASSES[i % 3], 700 + i) for i in range(24)])
    npz = tmp_path / "pool.npz"
    np.savez(npz, images=images)
    cold = api.label_next(str(tiny_vit), npz, k=5, near=1.0)
    assert cold.strategy == "cold start" and len(set(cold.indices)) == 5
    assert cold.pool.line_word == "row" and cold.pool.rows[cold.indices[0]]["path"].startswith("pool.npz[")
    assert np.array_equal(cold.pool.inputs[3].pixels, images[3])

    listing = tmp_path / "listing"
    listing.mkdir()
    rows = []
    for i in range(12):
        Image.fromarray(images[i]).save(listing / f"{i}.png")
        rows.append({"file": f"{i}.png", "label": CLASSES[i % 3] if i < 2 else "", "shop": f"s{i % 2}"})
    with (listing / "pool.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["file", "label", "shop"])
        w.writeheader()
        w.writerows(rows)
    cfg = _config(tmp_path, tiny_vit, train, val)
    sel = api.label_next(cfg, listing / "pool.csv", k=4, strategy="diverse", input_column="file", near=1.0)
    assert sel.scorer.startswith("a linear model on ") and sel.set_aside == {"already labelled": 2}
    assert sel.columns[:3] == ["file", "label", "shop"] and all(i >= 2 for i in sel.indices)
    assert all("the most uncertain of a cluster of" in p.reason for p in sel.picks)
    assert not (tmp_path / "runs").exists(), "picking writes no run"


def test_learn_on_images_reveals_pool_images_round_by_round(tiny_vit, image_data, tmp_path, cache_dir, capsys):
    _, val = image_data
    seed = write_image_folder(tmp_path / "seed", 4, 41)
    pool = tmp_path / "oracle.npz"
    images = np.stack([make_image(CLASSES[i % 3], 900 + i) for i in range(45)])
    np.savez(pool, images=images, labels=np.array([CLASSES[i % 3] for i in range(45)]))
    cfg = _config(tmp_path, tiny_vit, seed, val, train__epochs=2)
    out = tmp_path / "learn"
    assert main(["learn", str(cfg), "--pool", str(pool), "--rounds", "2", "--k", "9", "--near", "1",
                 "--strategy", "margin", "--out", str(out)]) == 0  # fmt: skip
    assert "margin round 2: 30 labels" in capsys.readouterr().err
    curve = json.loads((out / "learning_curve.json").read_text())
    assert [r["labels"] for r in curve["rounds"]] == [12, 21, 30] and curve["n_validation"] == 30
    with (out / "margin" / "round-02" / "train.csv").open(encoding="utf-8") as fh:
        listed = list(csv.DictReader(fh))
    assert len({r["path"] for r in listed}) == 30, "no image is revealed twice"
    revealed = [np.asarray(Image.open(out / "margin" / "round-02" / r["path"]).convert("RGB")) for r in listed[12:]]
    for px, r in zip(revealed, listed[12:]):
        match = [i for i in range(45) if np.array_equal(images[i], px)]
        assert len(match) == 1 and CLASSES[match[0] % 3] == r["label"], "the pool's pixels with its oracle label"
    assert (out / "report.html").is_file()


def test_bad_image_pools_are_refused_with_exit_2(tiny_vit, image_data, tmp_path, cache_dir, capsys):
    train, val = image_data
    cfg = str(_config(tmp_path, tiny_vit, train, val))
    listing = tmp_path / "pool.csv"
    listing.write_text("image,label\na.png,\n", encoding="utf-8")
    assert main(["label-next", cfg, "--pool", str(listing)]) == 2
    err = capsys.readouterr().err
    assert "pool.csv" in err and "column 'path'" in err and "image" in err
    listing.write_text("path,label\n../outside.png,\n", encoding="utf-8")
    assert main(["label-next", cfg, "--pool", str(listing)]) == 2
    assert "pool.csv:line 2 [path]: '../outside.png' is outside" in capsys.readouterr().err
    np.savez(tmp_path / "bad.npz", pictures=np.zeros((2, 8, 8), np.uint8))
    assert main(["label-next", cfg, "--pool", str(tmp_path / "bad.npz")]) == 2
    assert "expected an array 'images'" in capsys.readouterr().err
    done = write_image_folder(tmp_path / "done", 2, 77)
    assert main(["label-next", cfg, "--pool", str(done), "--near", "1"]) == 2
    assert "no image is left to label (6 already labelled)" in capsys.readouterr().err
