"""Data and config a careless user or an attacker writes: each is refused with a clear error and exit 2 before
anything is written, or read as the user meant it. One test per case found against an earlier version."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import make_rows, tiny_config, write_csv
from tunesmith import api
from tunesmith import config as cfgmod
from tunesmith.cli import main
from tunesmith.data.images import decode_file
from tunesmith.data.readers import MAX_ROW_CHARS, read_table
from tunesmith.errors import ConfigError, DataError


def _jsonl(path: Path, rows: list[dict], ensure_ascii: bool = True) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=ensure_ascii) + "\n" for r in rows), encoding="utf-8")
    return path


def _rows(n: int = 60) -> list[dict]:
    return [{"text": r["text"], "label": r["label"]} for r in make_rows(n, 0)]


def _refused(tmp_path: Path, tiny_model: Path, train: Path, capsys, **kw) -> tuple[list, str]:
    """validate and train exit 2, nothing is written; returns the problems and what train printed."""
    cfg = tiny_config(tiny_model, train, None, tmp_path / "runs", **kw)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    for cmd in ("validate", "train"):
        assert main([cmd, str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "nothing was written" in err
    assert not (tmp_path / "runs").exists()
    with pytest.raises(DataError) as exc:
        api.validate(path)
    return exc.value.problems, err


def _only(problems: list, check: str):
    found = [p for p in problems if p.check == check]
    assert found, [p.check for p in problems]
    return found[0]


# --- text and chat data -------------------------------------------------------------------------------------------
def test_a_lone_surrogate_in_text_is_refused_with_its_line(tmp_path, tiny_model, cache_dir, capsys):
    rows = _rows()
    rows[4]["text"] = "fine words \ud800 then more"
    problems, _ = _refused(tmp_path, tiny_model, _jsonl(tmp_path / "t.jsonl", rows), capsys)
    p = _only(problems, "invalid_text")
    assert p.line == 5 and "'text'" in p.message and "surrogate" in p.message


def test_a_lone_surrogate_in_chat_data_is_refused(tmp_path, tiny_llama, cache_dir, capsys):
    from tests.conftest import llm_config, make_chats

    chats = make_chats(30, 0)
    chats[2]["messages"][1]["content"] = "\udfff"
    train = _jsonl(tmp_path / "chat.jsonl", chats)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(llm_config(tiny_llama, train, None, tmp_path / "runs")))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "chat.jsonl:line 3" in err and "surrogate" in err and "Traceback" not in err


def test_raw_line_separators_inside_json_strings_are_text_not_line_ends(tmp_path):
    rows = _rows(6)
    rows[2]["text"] = "one\u2028two\u0085three\u2029four"
    table = read_table(_jsonl(tmp_path / "t.jsonl", rows, ensure_ascii=False))
    assert table.rows[2]["text"] == "one\u2028two\u0085three\u2029four" and table.lines == [1, 2, 3, 4, 5, 6]


def test_a_duplicated_csv_header_is_refused(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("text,label,label\ngood film,pos,neg\n", encoding="utf-8")
    with pytest.raises(DataError) as exc:
        read_table(p)
    (problem,) = exc.value.problems
    assert problem.check == "duplicate_column" and problem.line == 1 and "'label'" in problem.message


def test_a_200_kb_csv_field_is_read_and_a_huge_row_is_refused(tmp_path):
    long = "word " * 40_000  # 200,000 characters: over the csv module's default field limit
    p = write_csv(tmp_path / "d.csv", [{"text": long, "label": "a"}, {"text": "short", "label": "b"}])
    assert read_table(p).rows[0]["text"] == long
    huge = _jsonl(
        tmp_path / "h.jsonl", [{"text": "ok", "label": "a"}, {"text": "x" * (MAX_ROW_CHARS + 1), "label": "b"}]
    )
    with pytest.raises(DataError) as exc:
        read_table(huge)
    (problem,) = exc.value.problems
    assert problem.check == "row_too_large" and problem.line == 2
    wide = write_csv(tmp_path / "w.csv", [{"text": "y" * (MAX_ROW_CHARS + 1), "label": "a"}])
    with pytest.raises(DataError) as exc:
        read_table(wide)
    assert "longer than" in exc.value.problems[0].message and exc.value.problems[0].line == 2


def test_the_same_number_spelled_two_ways_is_refused(tmp_path, tiny_model, cache_dir, capsys):
    rows = _rows()
    for i, r in enumerate(rows):
        r["label"] = ("1" if i % 4 == 0 else "1.0") if r["label"] == "pos" else "0"
    problems, _ = _refused(tmp_path, tiny_model, write_csv(tmp_path / "t.csv", rows), capsys)
    p = _only(problems, "label_spelling")
    assert "'1'" in p.message and "'1.0'" in p.message and p.line == 2


def test_a_list_label_is_refused_and_booleans_are_classes(tmp_path, tiny_model, cache_dir, capsys):
    rows = _rows()
    rows[6]["label"] = ["pos"]
    problems, _ = _refused(tmp_path, tiny_model, _jsonl(tmp_path / "t.jsonl", rows), capsys)
    p = _only(problems, "label_type")
    assert p.line == 7 and p.field == "label" and "list" in p.message
    flags = [{"text": r["text"], "label": r["label"] == "pos"} for r in _rows()]
    report = api.validate(tiny_config(tiny_model, _jsonl(tmp_path / "b.jsonl", flags), None, tmp_path / "r2"))
    assert report.stats["class_counts"] == {"true": 24, "false": 24}  # 48 of 60 after the held-out split


# --- images ----------------------------------------------------------------------------------------------------
def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path):
    from PIL import Image

    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    pixels, mode = decode_file(tmp_path / "g16.png")
    assert mode.startswith("I") and pixels.dtype == np.uint8 and pixels.shape == (64, 64, 3)
    assert pixels[0, 0, 0] == 0 and pixels[-1, -1, 0] == 255 and pixels[32, 0, 0] == pytest.approx(128, abs=2)
    assert len(np.unique(pixels)) > 200, "clipping at 255 would leave almost every pixel white"


def test_an_image_declaring_a_huge_canvas_is_refused_before_decoding(tmp_path):
    from PIL import Image

    Image.new("L", (9000, 9000)).save(tmp_path / "big.png")  # ~80 KB on disk, 81 M pixels declared
    assert (tmp_path / "big.png").stat().st_size < 200_000
    with pytest.raises(ValueError, match="at most"):
        decode_file(tmp_path / "big.png")


def test_a_link_out_of_the_image_folder_is_refused(tmp_path, cache_dir, capsys):
    from tests.conftest import image_config, write_image_folder

    root = write_image_folder(tmp_path / "imgs", per_class=6, seed=0)
    outside = tmp_path / "secret.png"
    next((root / "red").iterdir()).rename(outside)
    os.symlink(outside, root / "red" / "link.png")
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(image_config("efficientnet-lite0", root, None, tmp_path / "runs")))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "link.png is a link to" in err and "outside" in err


# --- config ----------------------------------------------------------------------------------------------------
BASE = {"data": {"train": "x.csv"}}


@pytest.mark.parametrize(
    "override, says",
    [
        ("train.learning_rate=.nan", "finite"),
        ("train.learning_rate=.inf", "finite"),
        ("train.learning_rate=0", "> 0"),
        ("data.validation_split=.nan", "finite"),
        ("eval.confidence=.nan", "finite"),
        ("train.warmup_ratio=.inf", "finite"),
        ("train.max_grad_norm=.inf", "finite"),
        ("train.max_grad_norm=.nan", "finite"),
        ("train.seed=-1", ">= 0"),
        (f"train.seed={2**70}", "<= 4294967295"),
        ("train.epochs=1000000000", "<= 10000"),
        (f"train.batch_size={2**40}", "between"),
        ("train.epochs=[1", "not valid YAML"),
        ("train.epochs=&a 3", "ok"),  # an anchor alone is harmless
    ],
)
def test_config_values_that_cannot_be_honoured_are_refused(override, says):
    if says == "ok":
        assert cfgmod.from_dict(BASE, [override]).train.epochs == 3
        return
    with pytest.raises(ConfigError) as exc:
        cfgmod.from_dict(BASE, [override])
    key = override.split("=")[0]
    assert key in str(exc.value) and says in str(exc.value)


@pytest.mark.parametrize(
    "text, says",
    [
        ("a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\ndata: {train: x.csv}\n", "aliases"),
        ("data: &d {train: x.csv, again: *d}\n", "aliases"),
        ("data: {train: x.csv}\ntrain: {epochs: 1}\ntrain: {epochs: 2}\n", "'train' is given twice (first on line 2)"),
        ("data: {train: x.csv, train: y.csv}\n", "'train' is given twice"),
    ],
)
def test_yaml_aliases_and_repeated_keys_are_refused(tmp_path, capsys, text, says):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert says in err and str(path) in err and "Traceback" not in err


def test_a_config_path_that_is_a_folder_is_refused(tmp_path, capsys):
    assert main(["validate", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_an_output_dir_that_cannot_hold_runs_is_refused_before_anything_is_written(
    tmp_path, tiny_model, toy_data, cache_dir, capsys
):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for out, says in ((blocker, "is a file"), (blocker / "sub", "is a file"), (Path("/proc/tunesmith-runs"), "")):
        path = tmp_path / "cfg.yaml"
        path.write_text(yaml.safe_dump(tiny_config(tiny_model, *toy_data, out)))
        assert main(["train", str(path)]) == 2
        err = capsys.readouterr().err
        assert "output_dir" in err and says in err and "Traceback" not in err
        assert not cache_dir.exists()


def test_models_that_cannot_load_are_refused_before_anything_is_written(tmp_path, tiny_model, toy_data, cache_dir,
                                                                        capsys, monkeypatch):  # fmt: skip
    import shutil

    import torch
    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_model, pickled)
    weights = next(pickled.glob("*.safetensors"))
    torch.save(load_file(weights), pickled / "pytorch_model.bin")
    weights.unlink()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for model, says in ((pickled, "pickled weights are refused"), ("nobody/no-such-model", "not in the local")):
        path = tmp_path / "cfg.yaml"
        path.write_text(yaml.safe_dump(tiny_config(model, *toy_data, tmp_path / "runs")))
        assert main(["train", str(path)]) == 2
        assert says in capsys.readouterr().err
        assert not (tmp_path / "runs").exists() and not cache_dir.exists()
