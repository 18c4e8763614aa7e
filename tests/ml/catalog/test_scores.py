"""The stored scores fusion reads: a model version's rows only, abstentions kept apart from scores."""

from __future__ import annotations

import datetime as dt

import pytest

from ml.catalog.scores import all_text_scores, score_rows, scored_count, text_chars, unplayable, with_text_scores
from ml.catalog.store import insert_rows


def test_scores_of_one_version_and_abstentions(catalog):
    now = dt.datetime(2026, 5, 1)
    with catalog.transaction() as con:
        insert_rows(
            con,
            "text_predictions",
            ["video_id", "model_version", "has_text", "text_chars", "scores", "predicted_at"],
            [
                ("a", "t1", True, 40, [0.1, 0.9], now),
                ("b", "t1", False, None, None, now),  # no usable text: a row, no scores
                ("a", "t2", True, 40, [0.5, 0.5], now),
            ],
        )
    rows = dict(score_rows(catalog, "text_predictions", "t1", ["a", "b", "c"]))
    assert list(rows) == ["a"] and list(rows["a"]) == pytest.approx([0.1, 0.9])
    assert scored_count(catalog, "text_predictions", "t1", ["a", "b", "c"]) == 2
    assert text_chars(catalog, "t1", ["a", "b"]) == {"a": 40, "b": 0}
    assert unplayable(catalog, ["a"]) == set()
    with pytest.raises(ValueError, match="unknown score table"):
        score_rows(catalog, "videos; DROP TABLE videos", "t1", ["a"])
    assert [v for v, _ in with_text_scores(catalog, "t1", ["b", "a"])] == ["a"]  # b had no text
    assert [v for v, _ in all_text_scores(catalog, "t2")] == ["a"]
