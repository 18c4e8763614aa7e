"""The serving store on a real PostgreSQL server: idempotent, newer wins, atomic, never a mix for a reader."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from ml.catalog.store import insert_rows
from ml.serving.export import (
    BatchPayload,
    VideoRecord,
    batch_payload,
    connect,
    ensure_schema,
    export_batch,
    read_video,
    withdraw,
)
from tests.conftest import registry_rows

T0 = dt.datetime(2026, 5, 1, 12, 0, 0)
CATS = {"v1": ["533", "547"], "v2": ["216"], "v3": [], "v4": ["425"]}


def _fuse(catalog, version: str, at: dt.datetime, cats: dict[str, list[str]], failed=(), batch="b00000001"):
    """What fused_predictions writes for one fusion version: video_results and predictions rows."""
    with catalog.transaction() as con:
        insert_rows(
            con,
            "video_results",
            [
                "video_id",
                "model_version",
                "batch_id",
                "status",
                "n_categories",
                "has_text",
                "has_visual",
                "classified_at",
            ],
            [
                (v, version, batch, "failed" if v in failed else "classified", len(c), True, True, at)
                for v, c in cats.items()
            ],
        )
        insert_rows(
            con,
            "predictions",
            ["video_id", "category_id", "model_version", "score", "source", "predicted_at", "tier", "path"],
            [
                (v, c, version, 0.9, "visual", at, 2, f"Parent > {c}")
                for v, cs in cats.items()
                if v not in failed
                for c in cs
            ],
        )


def _batch(catalog):
    from ml.catalog.batching import create_batches

    registry_rows(catalog, 4)
    (b,) = create_batches(catalog, 10, "backfill", close_partial=True)
    return b.batch_id


def _export_killed_midway(store, catalog, batch) -> None:
    """Export the batch on a connection that another session terminates between the two statements."""
    import psycopg

    victim = connect(store)
    pid = victim.info.backend_pid

    def kill() -> None:
        with connect(store, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])

    with pytest.raises(psycopg.OperationalError):
        export_batch(victim, batch_payload(catalog, batch), between=kill)


def _state(dsn):
    with connect(dsn) as conn:
        return (
            conn.execute("SELECT * FROM video_classification ORDER BY video_id").fetchall(),
            conn.execute("SELECT * FROM video_category ORDER BY video_id, category_id").fetchall(),
        )


@pytest.fixture
def store(serving_dsn):
    with connect(serving_dsn) as conn:
        ensure_schema(conn)
    return serving_dsn


def test_a_batch_exported_twice_gives_the_same_rows(catalog, store):
    batch = _batch(catalog)
    _fuse(catalog, "f1", T0, CATS)
    with connect(store) as conn:
        first = export_batch(conn, batch_payload(catalog, batch))
        assert first.updated == 4 and first.categories == 4
        rows = _state(store)
        again = export_batch(conn, batch_payload(catalog, batch))
    assert again.updated == 4 and _state(store) == rows  # same classified_at: rewritten to the same values
    assert [r[0] for r in rows[0]] == ["v1", "v2", "v3", "v4"]
    with connect(store) as conn:
        assert read_video(conn, "v3")["categories"] == []  # classified with no category: still served
        assert {c["category_id"] for c in read_video(conn, "v1")["categories"]} == {"533", "547"}
        assert {(c["tier"], c["path"]) for c in read_video(conn, "v1")["categories"]} == {
            (2, "Parent > 533"),
            (2, "Parent > 547"),
        }


def test_a_rescore_wins_and_an_old_batch_rerun_changes_nothing(catalog, store):
    batch = _batch(catalog)
    _fuse(catalog, "f1", T0, CATS)
    old = batch_payload(catalog, batch)
    with connect(store) as conn:
        export_batch(conn, old)
        _fuse(catalog, "f2", T0 + dt.timedelta(hours=1), {"v1": ["641"], "v2": [], "v3": ["338"], "v4": ["425"]})
        new = export_batch(conn, batch_payload(catalog, batch))
        assert new.updated == 4
        after = _state(store)
        stale = export_batch(conn, old)  # an old batch's export run again after the rescore
        assert stale.updated == 0 and stale.unchanged == 4
        assert _state(store) == after
        assert read_video(conn, "v1")["model_version"] == "f2"
        assert [c["category_id"] for c in read_video(conn, "v1")["categories"]] == ["641"]
        rerun = export_batch(conn, batch_payload(catalog, batch))  # re-running the batch itself: no change
    assert rerun.updated == 4 and _state(store) == after


def test_a_connection_killed_between_the_two_statements_leaves_the_old_state(catalog, store):

    batch = _batch(catalog)
    _fuse(catalog, "f1", T0, CATS)
    with connect(store) as conn:
        export_batch(conn, batch_payload(catalog, batch))
    before = _state(store)
    _fuse(catalog, "f2", T0 + dt.timedelta(hours=1), {"v1": ["641"], "v2": ["217"], "v3": [], "v4": []})
    _export_killed_midway(store, catalog, batch)
    assert _state(store) == before  # the upsert of the killed transaction never landed
    with connect(store) as conn:
        assert export_batch(conn, batch_payload(catalog, batch)).updated == 4  # re-running the partition redoes it


def test_a_reader_sees_old_or_new_categories_never_a_mix(store):
    """While batches are exported, an ad server reads the same video: each read is one consistent version."""
    sets = {
        0: [("533", 0.9, "visual", 2, "Sports > Soccer"), ("547", 0.8, "text", 2, "Sports > Basketball")],
        1: [("216", 0.7, "both", 2, "Food & Drink > Cooking")],
    }
    with connect(store) as conn:
        export_batch(conn, BatchPayload("b", [VideoRecord("v1", "m0", T0.replace(tzinfo=dt.UTC), sets[0])]))
    seen: list[tuple[str, frozenset]] = []
    stop = threading.Event()

    def reader() -> None:
        with connect(store, autocommit=True) as conn:
            while not stop.is_set():
                got = read_video(conn, "v1")
                seen.append((got["model_version"], frozenset(c["category_id"] for c in got["categories"])))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        with connect(store) as conn:
            for k in range(1, 60):
                at = (T0 + dt.timedelta(seconds=k)).replace(tzinfo=dt.UTC)
                export_batch(conn, BatchPayload("b", [VideoRecord("v1", f"m{k}", at, sets[k % 2])]))
    finally:
        stop.set()
        thread.join(timeout=30)
    expected = {k: frozenset(c[0] for c in v) for k, v in sets.items()}
    assert len(seen) > 20
    for version, cats in seen:
        assert cats == expected[int(version[1:]) % 2], (version, cats)


def test_taken_down_and_unplayable_videos_are_withdrawn(catalog, store):
    batch = _batch(catalog)
    _fuse(catalog, "f1", T0, CATS)
    with connect(store) as conn:
        export_batch(conn, batch_payload(catalog, batch))
        with catalog.transaction() as con:
            con.execute("UPDATE videos SET taken_down_at = now(), taken_down_reason = 'legal' WHERE video_id = 'v2'")
        _fuse(catalog, "f2", T0 + dt.timedelta(hours=1), CATS, failed=("v4",))
        result = export_batch(conn, batch_payload(catalog, batch))
        assert result.withdrawn == 2
        assert read_video(conn, "v2") is None and read_video(conn, "v4") is None
        assert conn.execute("SELECT count(*) FROM video_category WHERE video_id IN ('v2', 'v4')").fetchone()[0] == 0
        assert withdraw(conn, ["v1"]) == 1 and read_video(conn, "v1") is None
    served = {r[0] for r in catalog.query("SELECT DISTINCT video_id FROM current_predictions")}
    assert "v2" not in served  # the catalog's own view stops serving a taken-down video too


def _segment(catalog, version: str, at: dt.datetime, scenes: dict[str, list[tuple[float, float, list[str]]]]):
    """What segment_predictions writes: scenes per video for one student version."""
    from ml.catalog.segments import SEGMENT_COLUMNS, replace_batch_segments

    rows = [
        (v, version, k, s, e, 3, [0.5], c, [0.9] * len(c), k > 0, None, "s1", "b00000001", at)
        for v, ss in scenes.items()
        for k, (s, e, c) in enumerate(ss)
    ]
    assert len(rows[0]) == len(SEGMENT_COLUMNS)
    with catalog.transaction() as con:
        replace_batch_segments(con, list(scenes), version, rows)


def _segments(dsn):
    with connect(dsn) as conn:
        return conn.execute(
            "SELECT video_id, scene_index, start_s, end_s, categories, break_before FROM video_segments "
            "ORDER BY video_id, scene_index"
        ).fetchall()


def test_scenes_go_with_the_categories_in_one_transaction(catalog, store):

    batch = _batch(catalog)
    _fuse(catalog, "f1", T0, CATS)
    _segment(catalog, "m1", T0, {"v1": [(0, 12.5, ["533"]), (12.5, 30, ["547"])], "v2": [(0, 20, [])]})
    with connect(store) as conn:
        first = export_batch(conn, batch_payload(catalog, batch))
        again = export_batch(conn, batch_payload(catalog, batch))  # re-exported: replaced, not duplicated
        got = read_video(conn, "v1")
    assert first.segments == again.segments == 3
    assert _segments(store) == [
        ("v1", 0, 0.0, 12.5, ["533"], False),
        ("v1", 1, 12.5, 30.0, ["547"], True),
        ("v2", 0, 0.0, 20.0, [], False),
    ]
    assert [(s["start_s"], s["end_s"], s["categories"]) for s in got["segments"]] == [
        (0.0, 12.5, ["533"]),
        (12.5, 30.0, ["547"]),
    ]
    assert got["breaks"] == [12.5]
    before = _segments(store)
    # A new classification with new scenes: a killed connection leaves the old scenes with the old categories.
    _fuse(catalog, "f2", T0 + dt.timedelta(hours=1), CATS)
    _segment(catalog, "m2", T0 + dt.timedelta(hours=1), {"v1": [(0, 30, ["533"])]})
    _export_killed_midway(store, catalog, batch)
    assert _segments(store) == before
    with connect(store) as conn:
        export_batch(conn, batch_payload(catalog, batch))
        assert [s["end_s"] for s in read_video(conn, "v1")["segments"]] == [30.0]
        # Taken down or withdrawn: the scenes go with the video.
        assert withdraw(conn, ["v1"]) == 1
    assert [r[0] for r in _segments(store)] == ["v2"]
