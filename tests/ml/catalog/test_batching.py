"""Batches: consecutive, immutable, never double-booked; the sensor's closing rule."""

from __future__ import annotations

import datetime as dt

from ml.catalog.batching import batch_video_ids, create_batches, pending, probed_videos
from ml.catalog.store import insert_rows
from ml.catalog.upload_batching import plan_tick
from tests.conftest import registry_rows


def test_backfill_batching_is_idempotent(catalog):
    registry_rows(catalog, 10)
    first = create_batches(catalog, 4, "backfill")
    assert [(b.batch_id, b.n_videos) for b in first] == [("b00000001", 4), ("b00000002", 4), ("b00000003", 2)]
    assert create_batches(catalog, 4, "backfill") == []
    assert batch_video_ids(catalog, "b00000002") == ["v5", "v6", "v7", "v8"]
    assert catalog.scalar("SELECT count(*) FROM batch_members") == 10
    registry_rows(catalog, 3, start=11)
    later = create_batches(catalog, 4, "backfill")
    assert [(b.batch_id, b.first_seq, b.last_seq) for b in later] == [("b00000004", 11, 13)]


def test_probed_videos_are_the_members_the_probe_read(catalog):
    registry_rows(catalog, 4)
    create_batches(catalog, 4, "backfill")
    with catalog.transaction() as con:
        insert_rows(con, "video_probe", ["video_id", "probed_at"], [(v, dt.datetime(2026, 5, 1)) for v in ("v3", "v1")])
    assert probed_videos(catalog, "b00000001") == [("v1", "/m/v1.mp4"), ("v3", "/m/v3.mp4")]


def test_partial_batch_waits_unless_closed(catalog):
    registry_rows(catalog, 6)
    made = create_batches(catalog, 4, "sensor", close_partial=False)
    assert [b.n_videos for b in made] == [4]
    p = pending(catalog)
    assert (p.count, p.cursor_seq) == (2, 4)
    assert create_batches(catalog, 4, "sensor", close_partial=False) == []
    assert [b.n_videos for b in create_batches(catalog, 4, "sensor", close_partial=True)] == [2]


def test_max_batches_caps_one_call(catalog):
    registry_rows(catalog, 20)
    assert len(create_batches(catalog, 2, "sensor", max_batches=3)) == 3
    assert pending(catalog).count == 14


def test_plan_tick_by_size_age_and_cursor(catalog):
    old = dt.datetime(2026, 1, 1)
    registry_rows(catalog, 3, registered_at=old)
    now = old + dt.timedelta(seconds=10)
    plan = plan_tick(catalog, 0, batch_size=4, max_wait_s=60, max_batches=5, now=now)
    assert plan.new_batches == [] and plan.to_request == [] and "fewer than 4" in plan.reason
    later = old + dt.timedelta(seconds=61)
    plan = plan_tick(catalog, 0, batch_size=4, max_wait_s=60, max_batches=5, now=later)
    assert [b.n_videos for b in plan.new_batches] == [3]
    assert plan.to_request == ["b00000001"] and plan.cursor == 1
    # Next tick with the advanced cursor requests nothing again.
    again = plan_tick(catalog, plan.cursor, batch_size=4, max_wait_s=60, max_batches=5, now=later)
    assert again.to_request == [] and again.cursor == 1
    # A lost tick result (cursor not saved) re-requests the same batch; run keys dedupe it.
    assert plan_tick(catalog, 0, batch_size=4, max_wait_s=60, max_batches=5, now=later).to_request == ["b00000001"]


def test_sensor_ignores_backfill_batches(catalog):
    registry_rows(catalog, 4)
    create_batches(catalog, 4, "backfill")
    registry_rows(catalog, 4, start=5)
    plan = plan_tick(catalog, 0, batch_size=4, max_wait_s=60, max_batches=5)
    assert plan.to_request == ["b00000002"]
