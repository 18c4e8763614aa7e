"""Label readings: one label set's judgements and exhaustive videos, pseudo-labelled videos, review candidates."""

from __future__ import annotations

import datetime as dt

from ml.catalog.labels import exhaustive_ids, judgements, pseudo_labelled_ids, review_candidates
from ml.catalog.store import insert_rows
from tests.conftest import registry_rows


def _labels(catalog):
    now = dt.datetime(2026, 5, 1)
    with catalog.transaction() as con:
        insert_rows(
            con,
            "human_labels",
            ["video_id", "category_id", "label_set", "is_positive", "created_at"],
            [
                ("v1", "483", "editor", True, now),
                ("v2", "483", "gold", False, now),
                ("v3", "483", "gold", True, now),
            ],
        )
        insert_rows(
            con,
            "label_coverage",
            ["video_id", "label_set", "exhaustive"],
            [("v1", "editor", True), ("v2", "gold", False), ("v3", "gold", True)],
        )


def test_judgements_and_exhaustive_videos_of_one_set(catalog):
    _labels(catalog)
    assert judgements(catalog, "editor") == [("v1", "483", True)]
    assert sorted(judgements(catalog, "gold")) == [("v2", "483", False), ("v3", "483", True)]
    assert judgements(catalog, "gold", ["v2", "v1"]) == [("v2", "483", False)]
    assert exhaustive_ids(catalog, "editor") == ["v1"]
    assert exhaustive_ids(catalog, "gold") == ["v3"]
    assert exhaustive_ids(catalog, "gold", ["v2"]) == []


def test_pseudo_labelled_videos_and_review_candidates(catalog):
    registry_rows(catalog, 3)
    _labels(catalog)
    with catalog.transaction() as con:
        insert_rows(
            con, "batch_members", ["video_id", "batch_id", "seq"], [(f"v{i}", "b00000001", i) for i in (1, 2, 3)]
        )
        insert_rows(
            con,
            "pseudo_labels",
            ["video_id", "category_id", "model_version", "target", "weight", "kind"],
            [
                ("v3", "483", "t1", 1.0, 1.0, "positive"),
                ("v1", "483", "t1", 1.0, 1.0, "positive"),  # editor-labelled: never a gold candidate
                ("v2", "483", "t1", 0.0, 1.0, "negative"),
                ("v2", "483", "t2", 1.0, 1.0, "positive"),
            ],
        )
    assert pseudo_labelled_ids(catalog, "t1") == ["v1", "v2", "v3"]
    assert pseudo_labelled_ids(catalog, None) == []
    rows = review_candidates(catalog, "t1", "483")
    assert [(r[0], r[4], r[5]) for r in rows] == [("v3", "/m/v3.mp4", "b00000001")]
