"""Verified scene ranges through `import_labels`: stored when they hold, else the row is rejected saying what to fix."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ml.catalog.gold_scenes import parse_scene_ranges, scene_range_count, scene_ranges
from ml.catalog.labels import import_labels, read_label_file
from ml.catalog.store import insert_rows
from tests.conftest import registry_rows


def _probed(catalog, durations: dict[str, float]) -> None:
    now = dt.datetime(2026, 5, 1)
    with catalog.transaction() as con:
        insert_rows(
            con, "video_probe", ["video_id", "duration_s", "probed_at"], [(v, d, now) for v, d in durations.items()]
        )


def _jsonl(tmp_path, rows) -> list:
    path = tmp_path / "gold.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return read_label_file(path)


def test_scene_ranges_are_stored_replaced_and_left_alone(catalog, ws, tmp_path):
    registry_rows(catalog, 3)
    _probed(catalog, {"v1": 30.0, "v2": 20.0})
    rows = [
        {
            "video_id": "v1",
            "labels": ["216", "217"],
            "exhaustive": True,
            "scenes": [
                {"start_s": 0, "end_s": 12.5, "category": "216"},
                {"start_s": 12.5, "end_s": 30, "category": "217"},
            ],
        },
        # not probed yet: checked for order and category now, against the duration when certified
        {"video_id": "v3", "labels": ["216"], "scenes": [{"start_s": 0, "end_s": 8, "category": "216"}]},
        {"video_id": "v2", "labels": ["216"]},
    ]
    report = import_labels(catalog, _jsonl(tmp_path, rows), ws, "gold")
    assert not report.rejected
    assert (report.scene_videos, report.scene_ranges, report.scenes_unchecked_duration) == (2, 3, 1)
    assert scene_ranges(catalog) == {
        "v1": [(0.0, 12.5, "216"), (12.5, 30.0, "217")],
        "v3": [(0.0, 8.0, "216")],
    }
    # Re-importing is idempotent; an answer with scenes replaces the video's, one without keeps them.
    import_labels(catalog, _jsonl(tmp_path, rows), ws, "gold")
    assert scene_range_count(catalog) == (2, 3)
    again = [
        {"video_id": "v1", "labels": ["216"], "scenes": [{"start_s": 0, "end_s": 30, "category": "216"}]},
        {"video_id": "v3", "labels": ["216"]},
    ]
    import_labels(catalog, _jsonl(tmp_path, again), ws, "gold")
    assert scene_ranges(catalog) == {"v1": [(0.0, 30.0, "216")], "v3": [(0.0, 8.0, "216")]}
    assert scene_ranges(catalog, exclude={"v1"}) == {"v3": [(0.0, 8.0, "216")]}


@pytest.mark.parametrize(
    ("scenes", "message"),
    [
        ([{"start_s": 5, "end_s": 5, "category": "216"}], "not before end_s 5; write start < end"),
        ([{"start_s": -1, "end_s": 5, "category": "216"}], "negative; a video starts at 0"),
        ([{"start_s": 0, "end_s": 45, "category": "216"}], "past the video's end (30.0 s as probed)"),
        ([{"start_s": 0, "end_s": 5, "category": "nope"}], "not an IAB Content Taxonomy 3.1 id"),
        ([{"start_s": 0, "end_s": 5, "category": "217"}], "not among the video's labels ['216']"),
        ([{"start_s": "a", "end_s": 5, "category": "216"}], "must be numbers of seconds"),
        ([{"start_s": 0, "end_s": 5}], "no category"),
        ("0-5", "write each range as start-end=category"),
        ({"start_s": 0}, "must be a list"),
    ],
)
def test_a_bad_range_rejects_its_row_with_what_to_fix(catalog, ws, tmp_path, scenes, message):
    registry_rows(catalog, 2)
    _probed(catalog, {"v1": 30.0})
    rows = [
        {"video_id": "v1", "labels": ["216"], "scenes": scenes},
        {"video_id": "v2", "labels": ["216"], "scenes": [{"start_s": 0, "end_s": 4, "category": "216"}]},
    ]
    report = import_labels(catalog, _jsonl(tmp_path, rows), ws, "gold")
    assert len(report.rejected) == 1
    line, reason = report.rejected[0]
    assert line == 1 and message in reason, reason
    # The rejected row wrote nothing at all (neither labels nor ranges); the good row went in.
    assert scene_ranges(catalog) == {"v2": [(0.0, 4.0, "216")]}
    assert catalog.scalar("SELECT count(*) FROM human_labels WHERE video_id = 'v1'") == 0


def test_csv_scenes_column_and_editor_labels_refuse_ranges(catalog, ws, tmp_path):
    registry_rows(catalog, 2)
    path = tmp_path / "answers.csv"
    path.write_text('video_id,category_id,verdict,scenes\nv1,216,yes,"0-12.5=216; 12.5-30=217"\nv2,216,no,\n')
    report = import_labels(catalog, read_label_file(path), ws, "gold")
    assert not report.rejected
    assert scene_ranges(catalog) == {"v1": [(0.0, 12.5, "216"), (12.5, 30.0, "217")]}
    editor = import_labels(catalog, read_label_file(path), ws, "editor")
    assert [r for _, r in editor.rejected] == [
        "scene ranges certify scene thresholds: import them with --label-set gold"
    ]


def test_the_csv_cell_syntax():
    assert parse_scene_ranges(" 0-1.5=216 ;1.5-3=217; ") == [("0", "1.5", "216"), ("1.5", "3", "217")]
    assert parse_scene_ranges("") == [] and parse_scene_ranges(None) == []
