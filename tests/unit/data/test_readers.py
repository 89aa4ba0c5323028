import json
from pathlib import Path

import pytest

from tunesmith.data.readers import read_table
from tunesmith.errors import DataError


def test_csv_rows_remember_their_starting_line(tmp_path: Path):
    p = tmp_path / "d.csv"
    p.write_text('text,label\n"two\nlines",a\nplain,b\n\nlast,a\n', encoding="utf-8")
    t = read_table(p)
    assert [r["text"] for r in t.rows] == ["two\nlines", "plain", "last"]
    assert t.lines == [2, 4, 6]
    assert t.columns == ["text", "label"]


def test_csv_wrong_field_count_names_the_line(tmp_path: Path):
    p = tmp_path / "d.csv"
    p.write_text("text,label\nok,a\nx,y,z\n")
    with pytest.raises(DataError) as exc:
        read_table(p)
    (problem,) = exc.value.problems
    assert problem.line == 3 and problem.check == "malformed_row"


def test_encoding_error_names_the_line(tmp_path: Path):
    p = tmp_path / "d.csv"
    p.write_bytes(b"text,label\nfine,a\ncaf\xe9,b\n")
    with pytest.raises(DataError) as exc:
        read_table(p)
    (problem,) = exc.value.problems
    assert problem.check == "encoding" and problem.line == 3 and "UTF-8" in problem.message


def test_jsonl_reports_every_bad_line(tmp_path: Path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "a", "label": 1}\nnot json\n[1, 2]\n{"text": "b", "label": 0}\n')
    with pytest.raises(DataError) as exc:
        read_table(p)
    assert [(x.check, x.line) for x in exc.value.problems] == [("not_json", 2), ("not_object", 3)]


def test_parquet_and_int_labels(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["x", "y"], "label": [0, 1]}), p)
    t = read_table(p)
    assert t.rows == [{"text": "x", "label": 0}, {"text": "y", "label": 1}] and t.unit == "row"


@pytest.mark.parametrize(
    ("name", "data", "check"),
    [("d.txt", b"x", "format"), ("d.csv", b"", "empty_file"), ("d.parquet", b"nope", "unreadable")],
)
def test_unusable_files(tmp_path: Path, name: str, data: bytes, check: str):
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(DataError) as exc:
        read_table(p)
    assert exc.value.problems[0].check == check


def test_missing_file():
    with pytest.raises(DataError, match="file not found"):
        read_table("/nonexistent/x.jsonl")


def test_fingerprint_follows_content(tmp_path: Path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(json.dumps({"text": "x", "label": 1}) + "\n")
    b.write_text(json.dumps({"text": "x", "label": 1}) + "\n")
    assert read_table(a).fingerprint == read_table(b).fingerprint
    b.write_text(json.dumps({"text": "y", "label": 1}) + "\n")
    assert read_table(a).fingerprint != read_table(b).fingerprint


def test_a_hub_dataset_id_is_read_through_datasets_and_refused_clearly_offline(monkeypatch):
    from tunesmith.data.readers import read_hub_dataset, read_table

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError) as exc:
        read_table("hf://tunesmith-nobody/no-such-set#validation")
    (p,) = exc.value.problems
    assert p.file == "hf://tunesmith-nobody/no-such-set#validation" and "split 'validation'" in p.message
    assert "downloads are off" in p.message and "save_to_disk" in p.message
    (bad,) = read_hub_dataset("hf://just-a-name")[3]
    assert "hf://OWNER/NAME" in bad.message
