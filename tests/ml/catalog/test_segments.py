"""`segment_predictions` and `current_segments`: round trip, re-runs replace, the newest segmentation is
current, take-downs are not served, and a catalog of the previous schema upgrades in place."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from ml.catalog.segments import (
    SEGMENT_COLUMNS,
    current_batch_segments,
    current_segments,
    replace_batch_segments,
    scene_threshold_rows,
    segment_rows,
    segment_summary,
    write_scene_thresholds,
)
from ml.catalog.store import SCHEMA_MIGRATIONS, SCHEMA_VERSION, Catalog, insert_rows
from ml.catalog.takedown import take_down
from tests.conftest import registry_rows

T0 = dt.datetime(2026, 5, 1, 12)


def _scenes(video: str, version: str, edges: list[float], cats: list[list[str]], at=T0, batch="b00000001"):
    return [
        (video, version, k, edges[k], edges[k + 1], 3, [0.1, 0.9], c, [0.9] * len(c), k > 0, None, "s1", batch, at)
        for k, c in enumerate(cats)
    ]


def _batch(catalog, n: int = 2) -> None:
    registry_rows(catalog, n)
    with catalog.transaction() as con:
        insert_rows(
            con, "batch_members", ["video_id", "batch_id", "seq"], [(f"v{i}", "b00000001", i) for i in range(1, n + 1)]
        )


def test_round_trip_and_a_rerun_replaces(catalog):
    _batch(catalog)
    rows = _scenes("v1", "m1", [0, 12.5, 30], [["216"], ["217"]]) + _scenes("v2", "m1", [0, 8], [[]])
    for _ in range(2):  # the same batch twice: the same rows, never twice as many
        with catalog.transaction() as con:
            replace_batch_segments(con, ["v1", "v2"], "m1", rows)
    got = current_segments(catalog, ["v1", "v2", "v9"])
    assert [(s["start_s"], s["end_s"], s["categories"], s["break_before"]) for s in got["v1"]] == [
        (0.0, 12.5, ["216"], False),
        (12.5, 30.0, ["217"], True),
    ]
    assert got["v2"][0]["categories"] == [] and "v9" not in got
    assert [pytest.approx(sc["scores"]) for sc in got["v1"]] == [[0.1, 0.9], [0.1, 0.9]]  # every category's score
    assert catalog.scalar("SELECT count(*) FROM segment_predictions") == 3
    # A re-run that finds other scenes replaces the video's rows for that version.
    with catalog.transaction() as con:
        replace_batch_segments(con, ["v1", "v2"], "m1", _scenes("v1", "m1", [0, 30], [["216"]]))
    assert len(current_segments(catalog, ["v1"])["v1"]) == 1
    assert current_segments(catalog, ["v2"]) == {}
    assert set(segment_rows(catalog, ["b00000001"], "m1").columns) >= {"video_id", "start_s", "end_s", "duration_s"}
    assert segment_summary(catalog) == {"videos": 1, "scenes": 1, "with_category": 1}


def test_the_newest_segmentation_is_current_and_taken_down_videos_are_not(catalog):
    _batch(catalog)
    with catalog.transaction() as con:
        replace_batch_segments(con, ["v1"], "old", _scenes("v1", "old", [0, 10, 30], [["216"], ["217"]]))
        replace_batch_segments(
            con, ["v1"], "new", _scenes("v1", "new", [0, 30], [["216"]], at=T0 + dt.timedelta(hours=1))
        )
        replace_batch_segments(con, ["v2"], "old", _scenes("v2", "old", [0, 5], [[]]))
    assert [s["model_version"] for s in current_segments(catalog, ["v1"])["v1"]] == ["new"]
    assert [r[0] for r in current_batch_segments(catalog, "b00000001")] == ["v1", "v2"]
    take_down(catalog, ["v2"], "test")
    assert [r[0] for r in current_batch_segments(catalog, "b00000001")] == ["v1"]


def test_scene_thresholds_live_in_the_thresholds_table(catalog):
    with catalog.transaction() as con:
        write_scene_thresholds(
            con, "s1", [("216", 0.7, 0.9, 0.5, 20, 0.82, True), ("217", None, None, None, 3, None, False)]
        )
        write_scene_thresholds(
            con, "s1", [("216", 0.7, 0.9, 0.5, 20, 0.82, True), ("217", None, None, None, 3, None, False)]
        )
    assert scene_threshold_rows(catalog, "s1") == [
        ("216", 0.7, 0.9, 0.5, 20, 0.82, True),
        ("217", None, None, None, 3, None, False),
    ]
    assert catalog.scalar("SELECT count(*) FROM thresholds WHERE source = 'scene'") == 2


def test_a_catalog_of_the_previous_schema_upgrades_in_place(settings):
    path = settings.catalog_path
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMP)")
    for version, description, sql in SCHEMA_MIGRATIONS:
        if version < 6:
            con.execute(sql)
            con.execute("INSERT INTO schema_version VALUES (?, ?, now())", [version, description])
    con.execute(
        "INSERT INTO videos (video_id, seq, uri, registered_at, origin) VALUES ('v1', 1, '/m/v1.mp4', now(), 't')"
    )
    con.close()
    catalog = Catalog(path)
    assert catalog.schema_version() == 5
    assert catalog.ensure_schema() == SCHEMA_VERSION
    assert catalog.scalar("SELECT count(*) FROM videos") == 1  # nothing lost
    with catalog.transaction() as con:
        insert_rows(con, "segment_predictions", list(SEGMENT_COLUMNS), _scenes("v1", "m1", [0, 4], [["216"]]))
    assert current_segments(catalog, ["v1"])["v1"][0]["categories"] == ["216"]
    assert catalog.scalar("SELECT count(*) FROM gold_scenes") == 0
