"""Scene thresholds: the video policy of ml/thresholds applied to detected gold scenes."""

from __future__ import annotations

import numpy as np

from ml.segments.certify import best_category, certify_scene_thresholds, emitted, scene_categories, scene_truth
from ml.segments.scenes import tile
from ml.thresholds import DEFAULT_POLICY, select_threshold


def test_a_scene_is_a_positive_for_the_category_covering_most_of_it():
    scenes = tile([10, 25], [], 40)  # [0,10) [10,25) [25,40)
    ranges = [(0, 12, "a"), (12, 40, "b")]
    truth = scene_truth(scenes, ranges, ["a", "b", "c"])
    assert truth.tolist() == [[True, False, False], [False, True, False], [False, True, False]]
    # a scene split 50/50 is a positive for both at the default share, for neither above it
    halves = scene_truth(tile([], [], 20), [(0, 10, "a"), (10, 20, "b")], ["a", "b"])
    assert halves.tolist() == [[True, True]]
    assert not scene_truth(tile([], [], 20), [(0, 10, "a"), (10, 20, "b")], ["a", "b"], min_share=0.6).any()


def test_certification_is_the_video_policy_on_scenes():
    rng = np.random.default_rng(0)
    truth = rng.random((300, 3)) < 0.3
    scores = np.where(truth, rng.uniform(0.4, 1.0, truth.shape), rng.uniform(0.0, 0.6, truth.shape))
    scores[:, 2] = rng.random(300)  # a category the scores cannot rank
    got = certify_scene_thresholds(scores, truth, DEFAULT_POLICY)
    for j in range(3):
        assert got[j] == select_threshold(scores[:, j], truth[:, j], DEFAULT_POLICY)
    assert got[0].enabled and got[1].enabled and not got[2].enabled
    fired = emitted(scores, got)
    assert not fired[:, 2].any()
    assert fired[:, 0].tolist() == (scores[:, 0] >= got[0].threshold).tolist()
    names = scene_categories(scores[:5], got, ["a", "b", "c"])
    for row, s, cats in zip(fired[:5], scores[:5], names, strict=True):
        assert sorted(cats) == sorted(c for c, f in zip("abc", row, strict=True) if f)
        assert [s["abc".index(c)] for c in cats] == sorted((s["abc".index(c)] for c in cats), reverse=True)


def test_unscored_scenes_are_not_judgements():
    truth = np.array([[True]] * 20 + [[False]] * 5)
    scores = np.r_[np.full(20, 0.9), np.full(5, 0.1)][:, None]
    with_nan = np.vstack([scores, [[np.nan]] * 10])
    got = certify_scene_thresholds(with_nan, np.vstack([truth, [[True]] * 10]))
    assert got[0] == certify_scene_thresholds(scores, truth)[0]
    assert not emitted(with_nan, got)[-10:].any()


def test_a_scenes_best_category_says_whether_it_had_a_threshold_to_pass():
    cats = ["a", "b", "c"]
    assert best_category(np.array([0.2, 0.7, np.nan]), cats, {"b"}) == ("b", 0.7, True)
    assert best_category(np.array([0.9, 0.7, 0.1]), cats, {"b"}) == ("a", 0.9, False)
    assert best_category(np.array([np.nan] * 3), cats, {"a"}) is None  # no frame, no score


def test_docs_state_the_scene_promise_as_the_code_does():
    """The scene sentence, with its independence assumption, reads in docs/segments.md word for word."""
    from pathlib import Path

    from ml.thresholds import ThresholdPolicy

    sentence = ThresholdPolicy().promise("scenes")
    assert "scenes taken as independent" in sentence
    root = Path(__file__).resolve().parents[3]
    text = " ".join((root / "docs/segments.md").read_text(encoding="utf-8").split()).replace("*", "")
    assert sentence in text
