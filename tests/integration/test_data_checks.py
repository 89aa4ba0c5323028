"""Every data check has a failing case: the right message, file, line and field, and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import make_rows, tiny_config, write_csv
from tunesmith import api
from tunesmith.cli import main
from tunesmith.errors import DataError


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config_file(tmp_path: Path, tiny_model: Path, train: Path, val: Path | None, **kw) -> Path:
    cfg = tiny_config(tiny_model, train, val, tmp_path / "runs", **kw)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _fatal(tmp_path: Path, tiny_model: Path, cache_dir: Path, train: Path, val: Path | None, capsys, **kw):
    cfg = _config_file(tmp_path, tiny_model, train, val, **kw)
    for cmd in ("validate", "train"):
        assert main([cmd, str(cfg)]) == 2
        err = capsys.readouterr().err
        assert "nothing was written" in err
    assert not (tmp_path / "runs").exists(), "no run directory on a fatal problem"
    assert not cache_dir.exists(), "no cache on a fatal problem"
    with pytest.raises(DataError) as exc:
        api.validate(cfg)
    return exc.value.problems, err


def _one(problems, check):
    found = [p for p in problems if p.check == check]
    assert found, f"expected a {check} problem, got {[p.check for p in problems]}"
    return found[0]


def test_row_problems_are_all_reported_together(tmp_path, tiny_model, cache_dir, capsys):
    rows = make_rows(40, 0)
    rows[3]["text"] = "   "
    rows[7]["label"] = ""
    train = write_csv(tmp_path / "train.csv", rows)
    problems, err = _fatal(tmp_path, tiny_model, cache_dir, train, None, capsys)
    empty, missing = _one(problems, "empty_text"), _one(problems, "missing_label")
    assert (empty.file, empty.line, empty.field) == (str(train), 5, "text")
    assert (missing.line, missing.field) == (9, "label")
    assert f"{train}:line 5 [text]" in err and f"{train}:line 9 [label]" in err


def test_missing_column_names_the_config_key(tmp_path, tiny_model, cache_dir, capsys):
    train = write_csv(tmp_path / "train.csv", make_rows(20, 0))
    problems, err = _fatal(tmp_path, tiny_model, cache_dir, train, None, capsys, data__text_column="review")
    p = _one(problems, "missing_column")
    assert "'review' (set by data.text_column) not found; columns: text, label, group" in p.message


def test_group_column_is_checked_and_keeps_groups_together(tmp_path, tiny_model, cache_dir, capsys):
    rows = make_rows(120, 0)  # its group column is "a" or "b" for either label: too few groups to hold out
    problems, _ = _fatal(tmp_path, tiny_model, cache_dir, write_csv(tmp_path / "t.csv", rows), None, capsys,
                         data__group_column="page")  # fmt: skip
    assert "'page' (set by data.group_column) not found" in _one(problems, "missing_column").message
    problems, _ = _fatal(tmp_path, tiny_model, cache_dir, write_csv(tmp_path / "t.csv", rows), None, capsys,
                         data__group_column="group")  # fmt: skip
    assert "2 groups cannot hold out whole groups of every class" in _one(problems, "too_few_groups").message
    for i, r in enumerate(rows):
        r["group"] = f"page{i // 4 * 2 + i % 2}"  # 60 pages of two rows, one label each
    train = write_csv(tmp_path / "train.csv", rows)
    cfg = _config_file(tmp_path, tiny_model, train, None, data__group_column="group")
    report = api.validate(cfg)
    assert "grouped by data.group_column (60 groups)" in report.stats["split"]
    from tunesmith import config
    from tunesmith.tasks import get_task

    data = get_task("text-classification")(config.load(cfg)).read()
    assert not set(data.train.groups) & set(data.val.groups), "each group on one side of the held-out split"


def test_classes_too_small_to_hold_out_are_named_without_groups(tmp_path, tiny_model, cache_dir, capsys):
    rows = make_rows(40, 0) + [{"text": "a rare one", "label": "rare", "group": "a"},
                               {"text": "two of a kind", "label": "pair", "group": "a"},
                               {"text": "two of a kind again", "label": "pair", "group": "a"}]  # fmt: skip
    problems, err = _fatal(tmp_path, tiny_model, cache_dir, write_csv(tmp_path / "t.csv", rows), None, capsys)
    p = _one(problems, "too_few_to_hold_out")
    assert (p.line, p.field) == (42, "label"), "the first small class's first example (line 1 is the header)"
    assert "2 class(es) have too few examples to hold any out for validation: 'rare' (line 42), 'pair' (line 43)" \
        in p.message and "at least 3 examples of every class" in p.message  # fmt: skip
    assert "groups" not in p.message, "no group column was named"
    assert [q.check for q in problems].count("too_few_to_hold_out") == 1
    pair = [q for q in problems if "'pair' has" in q.message and q.severity == "error"]
    assert not pair, "a class of two stays whole in training (it fails the hold-out, not the training minimum)"


def test_non_text_value(tmp_path, tiny_model, cache_dir, capsys):
    rows = [{"text": r["text"], "label": r["label"]} for r in make_rows(30, 0)]
    rows[2]["text"] = 12345
    train = _write_jsonl(tmp_path / "train.jsonl", rows)
    problems, _ = _fatal(tmp_path, tiny_model, cache_dir, train, None, capsys)
    p = _one(problems, "non_text")
    assert (p.line, p.field) == (3, "text") and "not text (int)" in p.message


def test_unseen_validation_label(tmp_path, tiny_model, cache_dir, capsys):
    train = write_csv(tmp_path / "train.csv", make_rows(30, 0))
    val_rows = make_rows(10, 5)
    val_rows[4]["label"] = "meh"
    val = write_csv(tmp_path / "val.csv", val_rows)
    problems, _ = _fatal(tmp_path, tiny_model, cache_dir, train, val, capsys)
    p = _one(problems, "unseen_label")
    assert (p.file, p.line) == (str(val), 6) and "'meh'" in p.message and "pos, neg" in p.message


def test_single_class(tmp_path, tiny_model, cache_dir, capsys):
    rows = [r for r in make_rows(40, 0) if r["label"] == "pos"]
    train = write_csv(tmp_path / "train.csv", rows)
    problems, _ = _fatal(tmp_path, tiny_model, cache_dir, train, None, capsys)
    assert "only one class ('pos')" in _one(problems, "single_class").message


def test_too_few_examples(tmp_path, tiny_model, cache_dir, capsys):
    rows = make_rows(30, 0)
    rows[10]["label"] = "rare"
    train = write_csv(tmp_path / "train.csv", rows)
    val = write_csv(tmp_path / "val.csv", make_rows(10, 3))
    problems, _ = _fatal(tmp_path, tiny_model, cache_dir, train, val, capsys)
    p = _one(problems, "too_few_examples")
    assert "class 'rare' has 1 training example(s); at least 2 needed (lines 12)" in p.message


def test_unreadable_and_wrongly_encoded_files_are_reported_together(tmp_path, tiny_model, cache_dir, capsys):
    train = tmp_path / "train.csv"
    train.write_bytes(b"text,label\nok,pos\n\xff\xfe,neg\n")
    problems, _ = _fatal(tmp_path, tiny_model, cache_dir, train, tmp_path / "missing.csv", capsys)
    assert _one(problems, "encoding").line == 3
    assert _one(problems, "unreadable").file == str(tmp_path / "missing.csv")


def test_warnings_do_not_stop_and_reach_the_report(tmp_path, tiny_model, cache_dir):
    rows = make_rows(120, 0)
    rows += [dict(rows[0]), dict(rows[1], label="pos")]  # an exact duplicate and a conflicting label
    rows += [dict(r, label="pos") for r in make_rows(300, 9)[::2]]  # imbalance: many more 'pos'
    train = write_csv(tmp_path / "train.csv", rows)
    val_rows = make_rows(20, 4) + [rows[5]]  # leakage: a training row in validation
    val = write_csv(tmp_path / "val.csv", val_rows)
    report = api.validate(
        tiny_config(tiny_model, train, val, tmp_path / "runs", data__imbalance_warn_ratio=2.0, train__max_length=8)
    )
    checks = {p.check for p in report.warnings}
    assert {"duplicates", "conflicting_labels", "leakage", "imbalance", "truncation"} <= checks
    leak = _one(report.warnings, "leakage")
    assert leak.file == str(val) and leak.line == 22
    dup = _one(report.warnings, "duplicates")
    assert dup.line == 122
    assert report.stats["tokens"]["train"]["share_truncated"] > 0.5
    assert report.stats["train_validation_overlap"] == 1
    assert not (tmp_path / "runs").exists(), "validate never writes a run"


def test_max_length_is_chosen_from_the_data_when_not_set(tmp_path, tiny_model, cache_dir):
    train = write_csv(tmp_path / "train.csv", make_rows(60, 0))
    report = api.validate(tiny_config(tiny_model, train, None, tmp_path / "runs", train__max_length=None))
    chosen = report.stats["tokens"]["train"]["max_length"]
    assert chosen % 8 == 0 and chosen >= report.stats["tokens"]["train"]["p95"]
    assert "chosen" in report.stats["max_length"]
    assert "held out" in report.stats["split"]
