"""Mid-roll breaks: where the context changes, never in the first or last 10 s."""

from __future__ import annotations

import pytest

from ml.segments.breaks import ad_breaks
from ml.segments.scenes import tile


def _scenes(cuts, duration):
    return tile(cuts, [], duration)


def test_breaks_sit_where_the_categories_change():
    scenes = _scenes([20, 40, 60], 90)
    assert ad_breaks(scenes, [{"533"}, {"533"}, {"216"}, {"216", "217"}]) == [40, 60]


def test_a_scene_given_nothing_is_a_change_of_context():
    scenes = _scenes([20, 40], 60)
    assert ad_breaks(scenes, [{"533"}, set(), {"533"}]) == [20, 40]


def test_no_break_in_the_first_or_last_ten_seconds():
    scenes = _scenes([5, 10, 30, 52], 60)
    assert ad_breaks(scenes, [{"a"}, {"b"}, {"c"}, {"d"}, {"e"}]) == [10, 30]
    assert ad_breaks(scenes, [{"a"}, {"b"}, {"c"}, {"d"}, {"e"}], margin_s=0) == [5, 10, 30, 52]


def test_one_scene_or_one_context_gives_no_break():
    assert ad_breaks(_scenes([], 60), [{"a"}]) == []
    assert ad_breaks(_scenes([20, 40], 60), [{"a", "b"}, {"b", "a"}, {"a", "b"}]) == []
    with pytest.raises(ValueError, match="category sets"):
        ad_breaks(_scenes([20], 60), [{"a"}])
