"""Prediction records and files: labels with probabilities, endings checked before any work, atomic writes."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tunesmith.errors import InputError
from tunesmith.inference.outputs import check_output, prediction_record, predictions, write_records


def test_predictions_take_the_most_likely_label():
    preds = predictions(np.array([[0.2, 0.8], [0.9, 0.1]]), ["no", "yes"])
    assert [p.label for p in preds] == ["yes", "no"] and preds[0].score == pytest.approx(0.8)
    assert prediction_record(preds[0]) == {"label": "yes", "score": 0.8, "p_no": 0.2, "p_yes": 0.8}


def test_output_endings_are_checked(tmp_path):
    with pytest.raises(InputError, match="allowed endings are .jsonl and .csv"):
        check_output(tmp_path / "out.txt")
    with pytest.raises(InputError, match="generation writes JSONL"):
        check_output(tmp_path / "out.csv", (".jsonl",))


def test_records_are_written_as_jsonl_or_csv(tmp_path):
    rows = [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]
    write_records(tmp_path / "p.jsonl", rows)
    write_records(tmp_path / "p.csv", rows)
    lines = (tmp_path / "p.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == rows
    with (tmp_path / "p.csv").open() as fh:
        assert list(csv.DictReader(fh)) == rows
    assert not list(tmp_path.glob(".*.tmp"))
