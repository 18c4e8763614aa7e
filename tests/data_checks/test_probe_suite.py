"""The probe suite: structural defects block, implausible values warn."""

from __future__ import annotations

import pandas as pd

from data_checks.probe_suite import validate_probe


def clean() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "video_id": ["a", "b", "c", "d"],
            "batch_id": ["b00000001"] * 4,
            "video_codec": ["h264", "vp9", "gif", "libdav1d"],
            "width": [1280, 640, 320, 96],
            "height": [720, 360, 240, 64],
            "fps": [30.0, 25.0, None, 10.0],  # GIF: no rate
            "duration_s": [12.5, 600.0, 3.0, None],  # live-muxed WebM: no duration
            "n_frames": [375, 15000, 30, 10],
            "bit_rate": [2_000_000, 800_000, None, 16_792],
            "size_bytes": [3_000_000, 60_000_000, 40_000, 2_100],
        }
    )


def failed(outcome) -> dict[tuple[str, str | None], str]:
    return {(f.name, f.column): f.severity for f in outcome.failed}


def test_clean_batch_passes():
    outcome = validate_probe(clean(), batch_ids=["b00000001"], expected_rows=4)
    assert outcome.passed, outcome.summary()


def test_negative_duration_warns_without_blocking():
    df = clean()
    df.loc[1, "duration_s"] = -4.0
    outcome = validate_probe(df, batch_ids=["b00000001"], expected_rows=4)
    assert failed(outcome) == {("expect_column_values_to_be_between", "duration_s"): "warning"}
    assert not outcome.blocking_failed
    assert [r["video_id"] for r in outcome.examples] == ["b"]


def test_implausible_values_warn():
    df = clean()
    df.loc[0, "fps"] = 1000.0
    df.loc[1, "video_codec"] = "weirdcodec"
    df.loc[2, "width"] = 9000
    df.loc[3, "duration_s"] = 30 * 3600.0
    outcome = validate_probe(df)
    assert outcome.severity == "warning"
    assert set(failed(outcome)) == {
        ("expect_column_values_to_be_between", "fps"),
        ("expect_column_values_to_be_in_set", "video_codec"),
        ("expect_column_values_to_be_between", "width"),
        ("expect_column_values_to_be_between", "duration_s"),
    }


def test_structural_defects_block():
    df = clean()
    df.loc[0, "width"] = 0
    df.loc[1, "batch_id"] = "b00000002"
    df.loc[2, "size_bytes"] = None
    outcome = validate_probe(df, batch_ids=["b00000001"], expected_rows=4)
    assert outcome.blocking_failed
    assert failed(outcome) == {
        ("expect_column_values_to_be_between", "width"): "critical",
        ("expect_column_values_to_be_in_set", "batch_id"): "critical",
        ("expect_column_values_to_not_be_null", "size_bytes"): "critical",
    }


def test_a_silently_dropped_video_blocks():
    outcome = validate_probe(clean().iloc[:3], batch_ids=["b00000001"], expected_rows=4)
    (f,) = outcome.failed
    assert (f.name, f.severity, f.observed["observed_value"]) == ("expect_table_row_count_to_equal", "critical", 3)


def test_empty_batch_with_nothing_expected_passes():
    outcome = validate_probe(clean().iloc[:0], batch_ids=["b00000001"], expected_rows=0)
    assert outcome.passed and outcome.n_rows == 0


def test_a_missing_column_fails_with_the_error():
    outcome = validate_probe(clean().drop(columns=["video_codec"]))
    assert not outcome.passed
    codec = next(f for f in outcome.failed if f.column == "video_codec")
    assert codec.error
