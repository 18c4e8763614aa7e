"""The rows the drift report compares: every asked video's text facts, probed ones' container facts."""

from __future__ import annotations

import datetime as dt

from ml.catalog.drift_inputs import category_pairs, container_facts, text_facts
from ml.catalog.store import insert_rows
from tests.conftest import registry_rows


def test_text_container_and_category_facts(catalog):
    registry_rows(catalog, 3)
    now = dt.datetime(2026, 5, 1)
    with catalog.transaction() as con:
        con.execute("UPDATE videos SET language = 'de'")
        insert_rows(
            con,
            "text_predictions",
            ["video_id", "model_version", "has_text", "language", "text_chars", "predicted_at"],
            [("v1", "t1", True, "en", 40, now), ("v2", "t2", True, "fr", 10, now)],
        )
        insert_rows(con, "video_probe", ["video_id", "duration_s", "fps", "probed_at"], [("v1", 10.0, 25.0, now)])
        insert_rows(
            con,
            "predictions",
            ["video_id", "category_id", "model_version", "score", "source", "predicted_at"],
            [("v1", "483", "f1", 0.9, "text", now), ("v2", "483", "f2", 0.9, "text", now)],
        )
    text = text_facts(catalog, ["v1", "v2", "v3"], "t1").set_index("video_id").sort_index()
    assert list(text["language"]) == ["en", "de", "de"]  # another version's text does not count
    assert list(text["has_text"]) == [True, False, False] and list(text["text_chars"]) == [40, 0, 0]
    probe = container_facts(catalog, ["v1", "v2"])
    assert list(probe["video_id"]) == ["v1"] and list(probe.columns)[1:] == [
        "duration_s",
        "fps",
        "width",
        "height",
        "bit_rate",
    ]
    assert category_pairs(catalog, ["v1", "v2"], "f1").values.tolist() == [["v1", "483"]]
