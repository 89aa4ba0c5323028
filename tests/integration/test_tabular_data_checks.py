"""Every data check of tabular classification, each with a failing case: fatal problems stop everything before a
file is written (exit 2), warnings are said with file, line and column."""

from __future__ import annotations

from pathlib import Path

import yaml

import tunesmith
from tests.conftest import fatal_problems, make_transactions, problems_named, table_config, write_csv


def _rows(n: int = 300, seed: int = 11) -> list[dict]:
    return make_transactions(n, seed)


def _config(tmp_path: Path, train: list[dict] | Path, val: list[dict] | Path | None = None, **overrides) -> Path:
    t = train if isinstance(train, Path) else write_csv(tmp_path / "train.csv", train)
    v = val if isinstance(val, Path) or val is None else write_csv(tmp_path / "val.csv", val)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(table_config(t, v, tmp_path / "runs", **overrides)))
    return path


def _warnings(cfg: Path) -> dict[str, list]:
    report = tunesmith.validate(cfg)
    out: dict[str, list] = {}
    for p in report.warnings:
        out.setdefault(p.check, []).append(p)
    return out


# --- fatal ----------------------------------------------------------------------------------------------------
def test_an_unreadable_file_and_a_missing_label_column_are_fatal_together(tmp_path, cache_dir, capsys):
    bad = tmp_path / "train.csv"
    bad.write_bytes(b"amount,fraud\n1,\xff\xfe\n")
    val = write_csv(tmp_path / "val.csv", [{k: v for k, v in r.items() if k != "fraud"} for r in _rows(50)])
    problems = fatal_problems(_config(tmp_path, bad, val), tmp_path / "runs", cache_dir, capsys)
    (enc,) = problems_named(problems, "encoding")
    assert enc.file == str(bad) and enc.line == 2
    (col,) = problems_named(problems, "missing_column")
    assert col.file == str(val) and col.field == "fraud" and "data.label_column" in col.message


def test_a_single_class_is_fatal(tmp_path, cache_dir, capsys):
    rows = [{**r, "fraud": "no"} for r in _rows()]
    problems = fatal_problems(_config(tmp_path, rows), tmp_path / "runs", cache_dir, capsys)
    assert problems_named(problems, "single_class")[0].field == "label"


def test_a_time_that_is_not_a_time_is_fatal_with_its_line(tmp_path, cache_dir, capsys):
    rows = _rows()
    rows[4]["when"] = "next tuesday"
    problems = fatal_problems(_config(tmp_path, rows, data__time_column="when"), tmp_path / "runs", cache_dir, capsys)
    (p,) = problems_named(problems, "bad_time")
    assert (p.line, p.field) == (6, "when") and "next tuesday" in p.message


def test_an_unknown_positive_label_is_fatal(tmp_path, cache_dir, capsys):
    problems = fatal_problems(
        _config(tmp_path, _rows(), data__positive_label="fraudulent"), tmp_path / "runs", cache_dir, capsys
    )
    assert "yes" in problems_named(problems, "unknown_positive")[0].message


# --- warnings ---------------------------------------------------------------------------------------------------
def test_constant_and_id_columns_are_said_and_left_out(tmp_path, cache_dir):
    rows = [{**r, "currency": "EUR", "txn_id": f"T{1000 + i}"} for i, r in enumerate(_rows())]
    cfg = _config(tmp_path, rows)
    w = _warnings(cfg)
    assert w["constant_column"][0].field == "currency" and w["id_column"][0].field == "txn_id"
    kinds = tunesmith.validate(cfg).stats["column_kinds"]
    assert "currency" not in kinds and "txn_id" not in kinds
    assert kinds == {
        "amount": "numeric",
        "merchant": "categorical",
        "hour": "numeric",
        "online": "boolean",
        "when": "datetime",
    }


def test_data_categorical_overrides_the_detected_kinds(tmp_path, cache_dir):
    kinds = tunesmith.validate(_config(tmp_path, _rows(), data__categorical=["hour", "merchant"])).stats["column_kinds"]
    assert kinds["hour"] == "categorical" and kinds["merchant"] == "categorical" and kinds["amount"] == "numeric"


def test_a_column_that_gives_the_label_away_is_warned(tmp_path, cache_dir):
    rows = [{**r, "chargeback": "filed" if r["fraud"] == "yes" else "none"} for r in _rows()]
    (p,) = _warnings(_config(tmp_path, rows))["target_leakage"]
    assert p.field == "chargeback" and "data.ignore" in p.message
    assert "target_leakage" not in _warnings(_config(tmp_path, rows, data__ignore=["chargeback"]))


def test_missing_values_are_counted_per_column_and_imputed(tmp_path, cache_dir):
    rows = _rows()
    for r in rows[:60]:
        r["merchant"] = ""
    cfg = _config(tmp_path, rows)
    (p,) = _warnings(cfg)["missing_values"]
    assert "merchant 2" in p.message and "median" in p.message
    assert tunesmith.validate(cfg).stats["missing_values"]["merchant"].startswith("2")


def test_unseen_categories_at_validation_are_warned_with_lines(tmp_path, cache_dir):
    val = _rows(80, 12)
    val[3]["merchant"] = "casino"
    (p,) = _warnings(_config(tmp_path, _rows(), val))["unseen_category"]
    assert p.field == "merchant" and p.line == 5 and "'casino'" in p.message


def test_extreme_imbalance_says_what_the_metrics_do(tmp_path, cache_dir):
    (p,) = _warnings(_config(tmp_path, _rows(600)))["extreme_imbalance"]
    assert "'yes'" in p.message and "average precision" in p.message and "eval.cost" in p.message


def test_duplicate_rows_and_train_validation_overlap_are_warned(tmp_path, cache_dir):
    rows = _rows()
    rows[10] = dict(rows[9])
    val = _rows(60, 13)
    val[0] = dict(rows[20])
    w = _warnings(_config(tmp_path, rows, val))
    assert w["duplicates"][0].line == 12
    assert w["leakage"][0].line == 2 and w["leakage"][0].file.endswith("val.csv")


def test_unlabelled_rows_are_kept_for_pre_training(tmp_path, cache_dir):
    rows = make_transactions(300, 11, unlabelled=120)
    report = tunesmith.validate(_config(tmp_path, rows))
    assert report.stats["unlabelled_rows"] == "120 (pre-training only)"
    assert report.stats["train_examples"] + report.stats["validation_examples"] == 180  # labelled rows only


def test_parquet_types_are_read_as_their_kinds(tmp_path, cache_dir):
    """Parquet keeps decimals, dates, booleans and nulls as values of their own type."""
    import datetime
    from decimal import Decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _rows(200)
    table = pa.table({
        "amount": pa.array([Decimal(str(r["amount"] or "1.5")) for r in rows], pa.decimal128(12, 2)),
        "opened": [datetime.date(2024, 1, 1 + i % 28) for i in range(len(rows))],
        "online": [r["online"] == "yes" for r in rows],
        "merchant": [r["merchant"] if i % 10 else None for i, r in enumerate(rows)],
        "fraud": [r["fraud"] for r in rows],
    })  # fmt: skip
    pq.write_table(table, tmp_path / "rows.parquet")
    report = tunesmith.validate(_config(tmp_path, tmp_path / "rows.parquet"))
    assert report.stats["column_kinds"] == {"amount": "numeric", "opened": "datetime", "online": "boolean",
                                            "merchant": "categorical"}  # fmt: skip
    assert list(report.stats["missing_values"]) == ["merchant"]  # about 10% of the training rows
