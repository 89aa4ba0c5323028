"""Column kinds and the schema that encodes rows: fitted on training rows, applied unchanged to new ones."""

from __future__ import annotations

import numpy as np
import pytest

from tunesmith.tasks.tabular_classification.columns import Schema, detect_kind, fit_column


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (["1.5", "2", "", "3e2"], "numeric"),
        ([str(i) for i in range(50)], "numeric"),
        (["1", "2", "3", "2", "NA"], "categorical"),  # few whole numbers: codes
        (["yes", "no", "Yes", None], "boolean"),
        ([0, 1, 1, 0], "boolean"),
        ([True, False], "boolean"),
        (["2024-01-02", "2024-02-03T10:00", ""], "datetime"),
        (["red", "blue", "12"], "categorical"),
        (["1_000", "2"], "categorical"),  # not a number in a data file
    ],
)
def test_kinds_are_detected_from_the_values(values, kind):
    assert detect_kind(values) == kind


def test_the_schema_encodes_missing_and_unseen_values_and_survives_a_round_trip():
    rows = [{"amount": a, "shop": s} for a, s in [(10, "a"), (20, "b"), ("", "a"), (40, None), (1000, "c")]]
    schema = Schema(
        [
            fit_column("amount", "numeric", [r["amount"] for r in rows]),
            fit_column("shop", "categorical", [r["shop"] for r in rows]),
        ],
        "label",
        ["no", "yes"],
    )
    num, cat = schema.encode(rows + [{"amount": 20, "shop": "zzz"}])
    assert num.shape == (6, 2) and cat.shape == (6, 1)  # the value and its missing flag
    assert num[2, 1] == 1 and num[2, 0] == 0  # missing: the median, flagged
    assert schema.columns[0].center == 30 and num[1, 0] < 0  # centred on the median of 10, 20, 40, 1000
    assert schema.encode([{"amount": 1e15, "shop": "a"}])[0][0, 0] == 10  # extreme values are clipped
    assert list(cat[:, 0]) == [2, 3, 2, 1, 4, 0]  # a, b, a, missing, c, unseen
    again = Schema.from_dict(schema.to_dict())
    assert np.array_equal(again.encode(rows)[0], schema.encode(rows)[0])
    assert schema.unseen([{"amount": 1, "shop": "zzz"}]) == {"shop": [0]}
