"""`vidcat eval-visual` on the locked test: a true category no editor labelled is a miss, as in the report."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from ml.catalog.store import insert_rows
from ml.evaluation.locked import LockedTest, locked_labels


def _catalog_with_editor_labels(catalog) -> None:
    now = dt.datetime(2026, 1, 1)
    ids = ["e1", "e2", "t1", "t2"]
    with catalog.transaction() as con:
        insert_rows(
            con,
            "videos",
            ["video_id", "seq", "uri", "registered_at", "origin", "language", "uploaded_at"],
            [(v, i, f"/m/{v}.mp4", now, "test", "en", now) for i, v in enumerate(ids)],
        )
        insert_rows(con, "label_coverage", ["video_id", "label_set", "exhaustive"], [("e1", "editor", True)])
        insert_rows(
            con,
            "human_labels",
            ["video_id", "category_id", "label_set", "is_positive", "annotator", "created_at"],
            [("e1", "a", "editor", True, "test", now)],
        )


def test_eval_visual_counts_true_categories_no_editor_labelled_as_misses(catalog, settings):
    from ml.evaluation.student import _figures, _widen, eval_context

    _catalog_with_editor_labels(catalog)
    # t1 shows a and z; nobody labelled z for training, so no student can say it: a miss all the same.
    test = LockedTest(["t1", "t2"], {"t1": ["a", "z"], "t2": ["a"]}, {"t1": "none", "t2": "text"}, "test")
    ctx = eval_context(catalog, settings, test, ["a", "b", "z"])
    assert ctx.categories == ["a"]
    _, expected = locked_labels(test, ctx.categories)
    np.testing.assert_array_equal(ctx.test_y, expected)
    assert ctx.test_y.sum() == 3
    # a system that finds every a and nothing else
    emitted, score = _widen(ctx, np.array([[True], [True]]), np.array([[0.9], [0.8]]))
    figures = _figures(ctx, emitted, score)
    assert figures["precision"] == 1.0
    assert figures["recall"] == pytest.approx(2 / 3)
    assert figures["no_text"]["recall"] == pytest.approx(1 / 2)
