"""Outcome metadata is plain JSON, and importing data_checks turns both libraries' telemetry off."""

from __future__ import annotations

import datetime as dt
import json
import math
import os

import numpy as np
import pandas as pd

from data_checks.outcome import CheckOutcome, FailedExpectation, jsonable, outcome_metadata


def test_telemetry_switches_are_set_by_the_package():
    import data_checks  # noqa: F401

    assert os.environ["GX_ANALYTICS_ENABLED"] == "false"
    assert os.environ["DO_NOT_TRACK"] == "1"


def test_jsonable_handles_numpy_pandas_and_missing():
    value = {
        "i": np.int64(3),
        "f": np.float32(0.5),
        "nan": math.nan,
        "b": np.bool_(True),
        "ts": pd.Timestamp("2024-01-02 03:04:05"),
        "nat": pd.NaT,
        "na": pd.NA,
        "d": dt.date(2024, 1, 2),
        "arr": np.arange(2),
        "t": ("x" * 300,),
    }
    out = jsonable(value, max_str=10)
    assert out == {
        "i": 3,
        "f": 0.5,
        "nan": None,
        "b": True,
        "ts": "2024-01-02T03:04:05",
        "nat": None,
        "na": None,
        "d": "2024-01-02",
        "arr": [0, 1],
        "t": ["x" * 10 + "…"],
    }
    json.dumps(out)


def test_metadata_of_a_warning_outcome():
    failed = FailedExpectation(
        name="expect_column_values_to_be_between",
        severity="warning",
        kwargs={"column": "fps", "max_value": 240},
        observed={"unexpected_count": 1, "unexpected_values": [1000.0]},
        why="implausible rate",
    )
    outcome = CheckOutcome("probe", False, 10, 12, (failed,), ({"video_id": "a", "_failed": ["x"]},))
    assert outcome.severity == "warning" and not outcome.blocking_failed
    meta = outcome_metadata(outcome)
    assert meta["failed_expectations"][0]["kwargs"]["column"] == "fps"
    assert "| expect_column_values_to_be_between | fps | warning | 1 | 1000.0 |" in meta["summary_md"]
    json.dumps(meta)
