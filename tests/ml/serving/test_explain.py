"""`vidcat explain`'s stored scenes: the shape `classify --segments` gives, the best category included."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ml.catalog.model_registry import register_model
from ml.catalog.segments import SEGMENT_COLUMNS, replace_batch_segments, write_scene_thresholds
from ml.segments.certification import NO_THRESHOLD
from ml.serving.explain import _segments
from tests.conftest import registry_rows

T0 = dt.datetime(2026, 5, 1, 12)


def test_stored_scenes_carry_their_best_category_and_whether_it_had_a_certified_threshold(catalog):
    registry_rows(catalog, 2)
    register_model(catalog, "visual_model", "m1", Path("/nowhere"), ["216", "217", "218"])
    rows = [
        # given 216 under its certified threshold; the top is the same category
        ("v1", "m1", 0, 0.0, 12.0, 12, [0.8, 0.3, 0.1], ["216"], [0.8], False, None, "s1", "b1", T0),
        # given nothing: 217 scored best, and 217 has no certified threshold
        ("v1", "m1", 1, 12.0, 30.0, 18, [0.2, 0.6, 0.1], [], [], True, None, "s1", "b1", T0),
        # given nothing: 216 scored best, below its certified threshold
        ("v1", "m1", 2, 30.0, 41.5, 11, [0.5, 0.1, 0.1], [], [], False, None, "s1", "b1", T0),
        # no frame: no score, no top
        (
            "v1",
            "m1",
            3,
            41.5,
            42.0,
            0,
            None,
            [],
            [],
            False,
            "no_frames: no sampled frame in this scene",
            "s1",
            "b1",
            T0,
        ),
        # segmented before any scene threshold was certified: nothing counts as certified
        ("v2", "m1", 0, 0.0, 9.0, 9, [0.9, 0.05, 0.05], [], [], False, NO_THRESHOLD, None, "b1", T0),
    ]
    assert len(rows[0]) == len(SEGMENT_COLUMNS)
    with catalog.transaction() as con:
        replace_batch_segments(con, ["v1", "v2"], "m1", rows)
        write_scene_thresholds(
            con,
            "s1",
            [
                ("216", 0.7, 0.9, 0.5, 20, 0.82, True),
                ("217", None, None, None, 3, None, False),
                ("218", 0.5, 0.9, 0.5, 20, 0.82, True),
            ],
        )
    seg = _segments(catalog, "v1")
    assert [s["top"] for s in seg["scenes"]] == [
        {"id": "216", "score": 0.8, "certified": True},
        {"id": "217", "score": 0.6, "certified": False},
        {"id": "216", "score": 0.5, "certified": True},
        None,
    ]
    assert [s["categories"] for s in seg["scenes"]] == [[{"id": "216", "score": 0.8}], [], [], []]
    assert seg["breaks"] == [12.0] and seg["scene_thresholds_version"] == "s1"
    (only,) = _segments(catalog, "v2")["scenes"]
    assert only["top"] == {"id": "216", "score": 0.9, "certified": False} and only["abstained"] == NO_THRESHOLD
    assert _segments(catalog, "v9")["scenes"] == []
