"""The segment benchmark's measures: boundary matching at +-1 s, per-second micro scores, segment MAP."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from ml.evaluation.segments import (
    _video_level,
    best_boundary_settings,
    boundary_scores,
    match_boundaries,
    micro_scores,
    second_sets,
    second_truth,
    segment_map,
)
from ml.fusion.rules import FusionModel
from ml.segments.scenes import tile
from ml.thresholds import Threshold


def test_boundaries_match_one_to_one_within_the_tolerance():
    assert match_boundaries([10.4, 30.0], [10.0, 31.0]) == 2
    assert match_boundaries([10.0, 10.5], [10.2]) == 1  # one true boundary cannot be found twice
    assert match_boundaries([12.1], [10.0, 13.0]) == 1
    assert match_boundaries([11.5], [10.0]) == 0
    # the closest pair is matched first: 20.9 goes with 21.0, leaving 20.0 for 19.6
    assert match_boundaries([19.6, 20.9], [20.0, 21.0]) == 2


def test_boundary_scores_are_micro_over_videos():
    s = boundary_scores([[10.0, 50.0], [5.0]], [[10.3], [5.0, 40.0]])
    assert (s["matched"], s["predicted"], s["true"]) == (2, 3, 3)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3)
    assert boundary_scores([[]], [[]])["f1"] == 1.0  # a one-scene video found as one scene


def test_gold_keeps_each_groups_best_setting_and_the_first_of_equals():
    true = [[10.0], [5.0, 20.0]]
    candidates = [
        ("a", {"t": 0.1}, [[10.0, 30.0], [5.0, 20.0]]),  # P 3/4, R 1
        ("a", {"t": 0.2}, [[10.0], [5.0, 20.0]]),  # perfect
        ("a", {"t": 0.3}, [[10.4], [5.0, 19.2]]),  # perfect too, later: not kept
        ("b", {"t": 0.5}, [[], [5.0]]),  # P 1, R 1/3
    ]
    best, choice = best_boundary_settings(iter(candidates), true)
    assert list(best) == ["a", "b"]
    assert best["a"] == {"t": 0.2, **boundary_scores(candidates[1][2], true)} and best["a"]["f1"] == 1.0
    assert best["b"]["t"] == 0.5 and best["b"]["recall"] == pytest.approx(1 / 3)
    assert choice is best["a"]
    assert best_boundary_settings([("a", {}, [[11.5], []])], true, tol=2.0)[1]["matched"] == 1
    with pytest.raises(ValueError):
        best_boundary_settings([], true)


def test_each_second_is_judged_at_its_midpoint():
    truth = [(0.0, 2.4, "a"), (2.4, 5.0, "b")]
    assert second_truth(truth, 5.0) == ["a", "a", "b", "b", "b"]
    assert second_truth(truth, 4.9) == ["a", "a", "b", "b"]  # a last partial second is not judged
    scenes = tile([1.7], [], 5.0)
    assert second_sets(scenes, [{"a"}, {"b", "c"}], 5.0) == [{"a"}, {"a"}, {"b", "c"}, {"b", "c"}, {"b", "c"}]


def test_micro_scores_count_second_category_pairs():
    s = micro_scores([{"a"}, {"a", "b"}, set(), {"b"}], ["a", "b", "a", "a"])
    assert (s["correct"], s["given"], s["seconds"]) == (2, 4, 4)
    assert s["precision"] == 0.5 and s["recall"] == 0.5
    assert math.isnan(micro_scores([set()], ["a"])["precision"])


def test_segment_map_ranks_every_scene_per_category():
    truth = np.array([[1, 0], [0, 1], [1, 0], [0, 0]], bool)
    perfect = np.array([[0.9, 0.1], [0.1, 0.8], [0.8, 0.2], [0.2, 0.3]])
    assert segment_map(perfect, truth) == {"map": 1.0, "categories": 2}
    worst = 1 - perfect
    assert segment_map(worst, truth)["map"] < 0.6
    unscored = perfect.copy()
    unscored[0] = np.nan  # an unscored scene ranks last
    assert segment_map(unscored, truth)["map"] < 1.0
    assert segment_map(perfect, np.zeros_like(truth))["categories"] == 0


def test_the_video_copied_baseline_is_fusions_frames_alone_decision_on_the_students_categories():
    def th(t: float | None) -> Threshold:
        return Threshold(t, None, None, 0, 0, 0, None, enabled=t is not None, reason="" if t else "too few gold")

    model = FusionModel(
        rule="union",
        text_thresholds=[th(0.5)] * 3,
        visual_thresholds=[th(0.6), th(0.6), th(None)],
        is_visual=[True, False, True],
    )
    fusion = SimpleNamespace(categories=["a", "b", "c"], model=model)
    # The student's columns in its own order, one category fusion does not know ("z").
    scores = np.array([[0.9, 0.9, 0.9, 0.9], [0.1, 0.5, 0.9, 0.2], [0.9, np.nan, 0.9, 0.9]])
    fired = _video_level(fusion, ["c", "a", "z", "b"], scores)
    # c: no threshold in force; b: not visual; z: unknown to fusion; a: fires at 0.9, not at 0.5 nor unscored.
    assert fired.tolist() == [[False, True, False, False], [False] * 4, [False] * 4]
    full = np.array([[0.9, 0.9, 0.9], [0.5, 0.2, 0.1], [np.nan, 0.9, 0.9]])  # the same scores in fusion's order
    assert np.array_equal(fired[:, [1, 3, 0]], model.visual_fired(full))
