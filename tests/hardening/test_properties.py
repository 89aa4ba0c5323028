"""Property-based checks (Hypothesis) of the readers and the config: whatever bytes or values arrive, the answer is
the data as written or a clear refusal (DataError / ConfigError), never another exception."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunesmith import config as cfgmod
from tunesmith.data.readers import read_table
from tunesmith.data.validate import LabelTypeError, normalise_label
from tunesmith.errors import ConfigError, DataError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Text a user's file can hold: any character but the halves of surrogate pairs (UTF-8 cannot encode them).
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _read(tmp_path: Path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    try:
        return read_table(path)
    except DataError as exc:
        assert exc.problems and all(p.file == str(path) for p in exc.problems)
        return None


@SETTINGS
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".csv", ".jsonl", ".json"]))
def test_any_bytes_are_read_or_refused_with_the_file_named(tmp_path, data, suffix):
    _read(tmp_path, "any" + suffix, data)


@SETTINGS
@given(rows=st.lists(st.tuples(TEXT.filter(lambda t: t.strip()), TEXT.filter(lambda t: t.strip())), min_size=1,
                     max_size=8))  # fmt: skip
def test_csv_round_trips_whatever_the_cells_hold(tmp_path, rows):
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["text", "label"])
    w.writerows(rows)
    table = _read(tmp_path, "r.csv", out.getvalue().encode("utf-8"))
    assert table is not None
    assert [(r["text"], r["label"]) for r in table.rows] == rows


@SETTINGS
@given(rows=st.lists(st.fixed_dictionaries({"text": TEXT, "label": JSON_VALUES}), min_size=1, max_size=8),
       ascii_only=st.booleans())  # fmt: skip
def test_jsonl_round_trips_and_counts_lines(tmp_path, rows, ascii_only):
    text = "".join(json.dumps(r, ensure_ascii=ascii_only) + "\n" for r in rows)
    table = _read(tmp_path, "r.jsonl", text.encode("utf-8"))
    assert table is not None
    assert table.lines == list(range(1, len(rows) + 1))
    assert json.dumps(table.rows, sort_keys=True) == json.dumps(rows, sort_keys=True)


@SETTINGS
@given(value=JSON_VALUES)
def test_a_label_is_a_class_name_missing_or_refused(value):
    try:
        label = normalise_label(value)
    except LabelTypeError as exc:
        assert isinstance(value, list | dict) and "allowed" in str(exc)
        return
    assert label is None or (isinstance(label, str) and label == label.strip() and label)


@SETTINGS
@given(raw=st.dictionaries(st.sampled_from(["task", "model", "method", "train", "data", "eval", "lora", "junk"]),
                           JSON_VALUES, max_size=5))  # fmt: skip
def test_any_config_mapping_loads_or_is_refused_by_key(raw):
    try:
        cfgmod.from_dict(raw)
    except ConfigError as exc:
        assert str(exc).strip()


KEYS = [row[0] for row in cfgmod.describe()]


@SETTINGS
@given(key=st.sampled_from(KEYS), value=st.text(max_size=30))
def test_any_set_override_loads_and_is_honoured_or_is_refused(key, value):
    try:
        cfg = cfgmod.from_dict({"data": {"train": "x.csv"}}, [f"{key}={value}"])
    except ConfigError as exc:
        assert key.split(".")[0] in str(exc) or "--set" in str(exc) or "method" in str(exc) or "metric" in str(exc)
        return
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    if isinstance(node, float):  # a float the config accepts is a finite one
        assert node == node and abs(node) != float("inf")
