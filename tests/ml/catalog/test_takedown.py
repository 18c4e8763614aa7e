"""Taking videos down marks them in the catalog; the view ad serving reads drops their categories."""

from __future__ import annotations

from ml.catalog.takedown import registered, take_down
from tests.conftest import registry_rows


def test_take_down_marks_only_the_named_videos(catalog):
    registry_rows(catalog, 3)
    assert registered(catalog, ["v1", "v3", "nope"]) == {"v1", "v3"}
    take_down(catalog, ["v1", "v3"], "copyright claim")
    rows = catalog.query("SELECT video_id, taken_down_at IS NOT NULL, taken_down_reason FROM videos ORDER BY seq")
    assert rows == [("v1", True, "copyright claim"), ("v2", False, None), ("v3", True, "copyright claim")]
