"""What the data checks read: the rows of the batches asked for, and nothing of other batches."""

from __future__ import annotations

import datetime as dt

from ml.catalog import check_inputs
from ml.catalog.batching import create_batches
from ml.catalog.store import insert_rows
from tests.conftest import registry_rows

NOW = dt.datetime(2024, 1, 1)


def test_batch_reads_cover_only_the_batches_asked_for(catalog):
    registry_rows(catalog, 6)
    create_batches(catalog, 3, "backfill", close_partial=True)  # b00000001: v1-v3, b00000002: v4-v6
    with catalog.transaction() as con:
        insert_rows(
            con,
            "video_probe",
            ["video_id", "batch_id", "duration_s", "probed_at"],
            [("v1", "b00000001", 10.0, NOW), ("v2", "b00000001", 12.5, NOW), ("v4", "b00000002", 3.0, NOW)],
        )
        insert_rows(
            con,
            "failures",
            ["video_id", "stage", "batch_id", "error_class", "message", "failed_at"],
            [
                ("v3", "probe", "b00000001", "EmptyFile", "0 bytes", NOW),
                ("v5", "frames", "b00000002", "NoFrames", "", NOW),
            ],
        )
    first = ["b00000001"]
    assert check_inputs.member_count(catalog, first) == 3
    assert check_inputs.member_count(catalog, ["b00000001", "b00000002"]) == 6
    assert list(check_inputs.probe_rows(catalog, first)["video_id"]) == ["v1", "v2"]
    assert check_inputs.probed_count(catalog, first) == 2
    assert check_inputs.failure_count(catalog, first, stage="probe") == 1
    assert check_inputs.failure_count(catalog, ["b00000002"], stage="probe") == 0


def test_a_member_probed_under_another_batch_fails_the_probe_suite(catalog):
    """The probe rows are read by membership, so a row naming another batch reaches the suite."""
    from data_checks.probe_suite import validate_probe

    registry_rows(catalog, 2)
    create_batches(catalog, 2, "backfill", close_partial=True)  # b00000001: v1, v2
    facts = ["width", "height", "n_frames", "size_bytes", "video_codec", "probed_at"]
    with catalog.transaction() as con:
        insert_rows(
            con,
            "video_probe",
            ["video_id", "batch_id", *facts],
            [("v1", "b00000001", 64, 64, 10, 100, "h264", NOW), ("v2", "b00000009", 64, 64, 10, 100, "h264", NOW)],
        )
    rows = check_inputs.probe_rows(catalog, ["b00000001"])
    assert list(rows["video_id"]) == ["v1", "v2"]
    # The embeddings check's count agrees with the rows: both members were probed, none of b00000009's.
    assert check_inputs.probed_count(catalog, ["b00000001"]) == len(rows) == 2
    assert check_inputs.probed_count(catalog, ["b00000009"]) == 0
    outcome = validate_probe(rows, batch_ids=["b00000001"], expected_rows=2)
    assert not outcome.passed
    assert [(f.name, f.column, f.severity) for f in outcome.failed] == [
        ("expect_column_values_to_be_in_set", "batch_id", "critical")
    ]


def test_registry_reads_count_all_and_return_the_newest(catalog):
    registry_rows(catalog, 5)
    assert check_inputs.count_videos(catalog) == 5
    newest = check_inputs.newest_videos(catalog, 2)
    assert list(newest["video_id"]) == ["v5", "v4"]
    assert "title" not in newest.columns and "title_len" in newest.columns


def test_prediction_reads_keep_one_fusion_version_and_its_thresholds(catalog):
    cols = ["video_id", "category_id", "model_version", "score", "source", "thresholds_version", "batch_id"]
    with catalog.transaction() as con:
        insert_rows(
            con,
            "predictions",
            [*cols, "predicted_at"],
            [
                ("v1", "483", "f1", 0.9, "text", "t1", "b00000001", NOW),
                ("v1", "483", "f0", 0.8, "text", "t0", "b00000001", NOW),
                ("v2", "483", "f1", 0.7, "visual", "t1", "b00000002", NOW),
            ],
        )
        insert_rows(
            con,
            "thresholds",
            ["version", "category_id", "source", "threshold", "enabled", "created_at"],
            [("t1", "483", "text", 0.5, True, NOW), ("t0", "483", "text", 0.4, True, NOW)],
        )
    rows = check_inputs.prediction_rows(catalog, ["b00000001"], "f1")
    assert list(zip(rows["video_id"], rows["model_version"], strict=True)) == [("v1", "f1")]
    assert list(check_inputs.threshold_rows(catalog, ["t1"])["version"]) == ["t1"]
    assert check_inputs.threshold_rows(catalog, []).empty
