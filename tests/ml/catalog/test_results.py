"""One video's stored classification: a classified result only, its categories of one fusion version."""

from __future__ import annotations

import datetime as dt

from ml.catalog.results import classified_result, video_categories, video_failures
from ml.catalog.store import insert_rows


def test_a_video_result_its_categories_and_failures(catalog):
    now = dt.datetime(2026, 5, 1)
    with catalog.transaction() as con:
        insert_rows(
            con,
            "video_results",
            ["video_id", "model_version", "batch_id", "status", "n_categories", "classified_at"],
            [("a", "f1", "b00000001", "classified", 1, now), ("b", "f1", "b00000001", "failed", 0, now)],
        )
        insert_rows(
            con,
            "predictions",
            ["video_id", "category_id", "model_version", "score", "source", "predicted_at"],
            [("a", "483", "f1", 0.9, "text", now), ("a", "483", "f2", 0.8, "visual", now)],
        )
        insert_rows(
            con,
            "failures",
            ["video_id", "stage", "error_class", "message", "failed_at"],
            [("b", "probe", "Unreadable", "no moov atom", now)],
        )
    assert classified_result(catalog, "a", "f1")[0] == "b00000001"
    assert classified_result(catalog, "b", "f1") is None  # failed: nothing to explain
    assert classified_result(catalog, "a", "f2") is None
    cats = video_categories(catalog, "a", "f1")
    assert list(cats) == ["483"] and cats["483"][1:3] == (0.9, "text")
    assert video_failures(catalog, "b") == [("probe", "Unreadable", "no moov atom")]
    assert video_failures(catalog, "a") == []
