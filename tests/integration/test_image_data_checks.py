"""Every image-data check has a failing case, naming the file; nothing is written on a fatal problem."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import fatal_problems, image_config, make_image, problems_named, write_image_folder
from tunesmith import api
from tunesmith.errors import DataError


def _cfg(tmp_path: Path, model: Path, train: Path, val: Path | None, **kw) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(image_config(model, train, val, tmp_path / "runs", **kw)))
    return path


def _fatal(tmp_path, model, cache_dir, train, val, capsys, **kw):
    return fatal_problems(_cfg(tmp_path, model, train, val, **kw), tmp_path / "runs", cache_dir, capsys)


_find = problems_named


def test_broken_files_in_an_image_folder_are_all_named(tmp_path, tiny_vit, cache_dir, capsys):
    train = write_image_folder(tmp_path / "train", 10, 1)
    (train / "red" / "empty.png").write_bytes(b"")
    (train / "green" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (train / "blue" / "notes.txt").write_text("not an image")
    problems = _fatal(tmp_path, tiny_vit, cache_dir, train, None, capsys)
    unreadable = {p.message.split(":")[0]: p.message for p in _find(problems, "image_unreadable")}
    assert "zero-byte" in unreadable["red/empty.png"]
    assert "green/corrupt.png" in unreadable
    assert "'.txt'" in _find(problems, "image_format")[0].message


def test_a_listed_path_may_not_leave_its_folder(tmp_path, tiny_vit, cache_dir, capsys):
    root = tmp_path / "data"
    write_image_folder(root / "imgs", 10, 1)
    outside = tmp_path / "secret.png"
    Image.fromarray(make_image("red", 0)).save(outside)
    rows = ["path,label"]
    rows += [f"imgs/{lab}/{i}.png,{lab}" for lab in ("red", "green", "blue") for i in range(10)]
    rows += ["../secret.png,red", f"{outside},red", "imgs/../../secret.png,red", "imgs/red/missing.png,red"]
    listing = root / "train.csv"
    listing.write_text("\n".join(rows) + "\n")
    problems = _fatal(tmp_path, tiny_vit, cache_dir, listing, None, capsys)
    escapes = _find(problems, "path_escape")
    assert [p.line for p in escapes] == [32, 33, 34] and all(p.field == "path" for p in escapes)
    assert _find(problems, "image_missing")[0].line == 35


def test_too_few_images_of_a_class_is_fatal(tmp_path, tiny_vit, cache_dir, capsys):
    train = write_image_folder(tmp_path / "train", 10, 1)
    for f in list((train / "blue").iterdir())[1:]:
        f.unlink()
    p = _find(_fatal(tmp_path, tiny_vit, cache_dir, train, None, capsys), "too_few_examples")[0]
    assert "'blue' has 1 training example" in p.message


def test_warnings_duplicates_leakage_modes_sizes_imbalance(tmp_path, tiny_vit, cache_dir):
    train = write_image_folder(tmp_path / "train", 12, 1)
    val = write_image_folder(tmp_path / "val", 4, 2)
    shutil.copy(train / "red" / "0.png", train / "red" / "copy-of-0.png")  # duplicate within train
    Image.open(train / "green" / "0.png").save(val / "green" / "leaked.jpg", quality=100)
    Image.fromarray(make_image("green", 5)).convert("L").save(train / "green" / "grey.png")
    Image.fromarray(make_image("green", 6)).convert("RGBA").save(train / "green" / "alpha.png")
    Image.fromarray(make_image("blue", 7, (6, 6))).save(train / "blue" / "tiny.png")
    for i in range(12, 70):
        Image.fromarray(make_image("red", 500 + i)).save(train / "red" / f"{i}.png")
    report = api.validate(_cfg(tmp_path, tiny_vit, train, val))
    by = {p.check: p for p in report.warnings}
    assert "1 exact duplicate" in by["duplicates"].message
    # The JPEG re-encoding of a training image is not identical bytes; its decoded pixels differ too, so only
    # exact pixel copies count as leakage: put one in and it is found.
    shutil.copy(train / "blue" / "1.png", val / "blue" / "same-pixels.png")
    report = api.validate(_cfg(tmp_path, tiny_vit, train, val))
    by = {p.check: p for p in report.warnings}
    assert by["leakage"].file == str(val) and "1 validation example" in by["leakage"].message
    assert "converted to RGB: 1 L, 1 RGBA" in by["image_mode"].message
    assert "under a quarter of the model's 32px input" in by["small_images"].message
    assert "imbalanced" in by["imbalance"].message
    stats = report.stats["images"]["train"]
    assert stats["modes"] == {"RGB": 3 * 12 + 58 + 2, "L": 1, "RGBA": 1}


def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    path.write_bytes(gzip.compress(header + arr.astype(np.uint8).tobytes()))


def test_idx_and_npz_arrays_read_with_label_names(tmp_path, tiny_vit, cache_dir):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 12)
    images = np.stack([make_image(("red", "green", "blue")[y], i)[:, :, 0] for i, y in enumerate(labels)])
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    report = api.validate(
        _cfg(tmp_path, tiny_vit, tmp_path / "train-images-idx3-ubyte.gz", None, data__label_names=["a", "b", "c"])
    )
    assert report.stats["class_counts"] == {"a": 10, "b": 10, "c": 10}  # 20% held out, stratified
    assert "converted to RGB: 30 L" in next(p for p in report.warnings if p.check == "image_mode").message
    np.savez(tmp_path / "train.npz", images=rng.integers(0, 255, (30, 32, 32, 3), dtype=np.uint8),
             labels=np.repeat(["x", "y", "z"], 10))  # fmt: skip
    assert api.validate(_cfg(tmp_path, tiny_vit, tmp_path / "train.npz", None)).stats["class_counts"]["x"] == 8
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: file not found"):
        api.validate(_cfg(tmp_path, tiny_vit, tmp_path / "train-images-idx3-ubyte.gz", None))


def test_label_names_keep_the_users_ids(tmp_path, tiny_vit, cache_dir):
    """IDX labels 0..2 named by data.label_names: the saved id 0 is the dataset's 0, not the alphabetically first
    name (Fashion-MNIST's 0 is t-shirt, which must not become ankle-boot)."""
    names = ["t-shirt", "trouser", "ankle-boot"]
    labels = np.repeat(np.arange(3), 12)
    images = np.stack([make_image(("red", "green", "blue")[y], i)[:, :, 0] for i, y in enumerate(labels)])
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    cfg = _cfg(tmp_path, tiny_vit, tmp_path / "train-images-idx3-ubyte.gz", None, data__label_names=names,
               method="head", head__epochs=2)  # fmt: skip
    assert list(api.validate(cfg).stats["class_counts"]) == names
    run = api.finetune(cfg)
    saved = json.loads((run.path / "manifest.json").read_text())["label_map"]
    assert saved == {"0": "t-shirt", "1": "trouser", "2": "ankle-boot"}
    pred = api.load(run.path)
    assert pred.labels == names
    preds = [json.loads(x) for x in (run.path / "validation_predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 6  # 20% held out, stratified
    assert all(p["label"] == names[labels[p["line"] - 1]] for p in preds), "row n's label is the name of its id"
