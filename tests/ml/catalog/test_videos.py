"""The registry's rows the stages read: text fields in registration order, facts with or without a probe,
probed durations by video or by batch."""

from __future__ import annotations

import datetime as dt

from ml.catalog.batching import create_batches
from ml.catalog.store import insert_rows
from ml.catalog.videos import (
    probed_durations,
    probed_durations_of_batches,
    registered_ids,
    video_facts,
    video_rows,
    video_uri,
)
from tests.conftest import registry_rows


def test_video_rows_in_registration_order_optionally_editor_covered(catalog):
    registry_rows(catalog, 3)
    with catalog.transaction() as con:
        con.execute("UPDATE videos SET title = 'match', language = 'en' WHERE video_id = 'v2'")
        insert_rows(con, "label_coverage", ["video_id", "label_set", "exhaustive"], [("v3", "editor", True)])
        insert_rows(con, "label_coverage", ["video_id", "label_set", "exhaustive"], [("v1", "gold", True)])
    assert [r["video_id"] for r in video_rows(catalog)] == ["v1", "v2", "v3"]
    (v2,) = video_rows(catalog, ["v2", "unknown"])
    assert v2 == {"video_id": "v2", "title": "match", "description": None, "tags": None, "language": "en"}
    assert [r["video_id"] for r in video_rows(catalog, editor_covered=True)] == ["v3"]
    assert video_rows(catalog, ["v1", "v2"], editor_covered=True) == []


def test_video_facts_with_and_without_a_probe(catalog):
    registry_rows(catalog, 2)
    with catalog.transaction() as con:
        insert_rows(
            con,
            "video_probe",
            ["video_id", "duration_s", "fps", "width", "height", "rotation", "has_audio", "probed_at"],
            [("v1", 12.5, 25.0, 640, 360, 0, True, dt.datetime(2026, 5, 1))],
        )
    facts = {r[0]: r for r in video_facts(catalog)}
    assert facts["v1"][3:] == (12.5, 25.0, 640, 360, 0, True)
    assert facts["v2"][3:] == (None,) * 6
    assert [r[0] for r in video_facts(catalog, ["v2"])] == ["v2"]


def test_uri_and_registered_ids(catalog):
    registry_rows(catalog, 2)
    assert video_uri(catalog, "v2") == "/m/v2.mp4"
    assert video_uri(catalog, "nope") is None
    assert registered_ids(catalog) == {"v1", "v2"}


def test_probed_durations_by_video_and_by_batch_leave_out_unmeasured_videos(catalog):
    registry_rows(catalog, 6)
    create_batches(catalog, 3, "backfill", close_partial=True)  # b00000001: v1-v3, b00000002: v4-v6
    now = dt.datetime(2024, 1, 1)
    with catalog.transaction() as con:
        insert_rows(
            con,
            "video_probe",
            ["video_id", "batch_id", "duration_s", "probed_at"],
            [
                ("v1", "b00000001", 10.0, now),
                ("v2", "b00000001", 12.5, now),
                ("v3", "b00000001", None, now),
                ("v4", "b00000002", 3.0, now),
            ],
        )
    assert probed_durations_of_batches(catalog, ["b00000001"]) == {"v1": 10.0, "v2": 12.5}
    assert probed_durations_of_batches(catalog, ["b00000001", "b00000002"]) == {"v1": 10.0, "v2": 12.5, "v4": 3.0}
    assert probed_durations_of_batches(catalog, []) == {}
    assert probed_durations(catalog, ["v2", "v3", "v4", "v5", "nope"]) == {"v2": 12.5, "v4": 3.0}
    assert probed_durations(catalog, []) == {}
