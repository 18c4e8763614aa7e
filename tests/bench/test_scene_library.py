"""The library arm of the scene boundaries (bench/scene_library.py): cut placement, the sweep, the skip."""

from __future__ import annotations

import numpy as np
import pytest

from bench import scene_library
from bench.scene_library import cut_boundaries, detect_cuts, make_detector, sweep


def test_a_cut_lies_between_the_frame_before_it_and_its_own():
    ts = [0.0, 1.0, 2.0, 3.02, 4.0, 5.0]
    assert cut_boundaries([3, 1], ts) == [0.5, 2.51]
    # at the first frame or past the last there is no gap to place a boundary in; duplicates count once
    assert cut_boundaries([0, 6, 9, 2, 2], ts) == [1.5]
    assert cut_boundaries([], ts) == []


def test_the_library_is_reported_missing_not_failed(monkeypatch):
    monkeypatch.setattr(scene_library, "library", lambda: None)
    assert scene_library.run() == {"skipped": scene_library.MISSING}


def _two_cuts() -> np.ndarray:
    """Ten frames of a textured scene, ten of another, ten of the first: cuts at frames 10 and 20."""
    rng = np.random.default_rng(3)
    a = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    b = np.zeros_like(a)
    b[:, :32] = 200
    b[:, 32:, 2] = 255
    return np.stack([a] * 10 + [b] * 10 + [a] * 10)


@pytest.mark.parametrize("name", sorted(scene_library.DETECTORS))
def test_each_detector_finds_generated_cuts_at_the_new_scenes_first_frame(name):
    sd = pytest.importorskip("scenedetect", reason="scenedetect is optional: the library arm is skipped")
    if not hasattr(sd, name):
        pytest.skip(f"scenedetect {sd.__version__} has no {name}")
    value = scene_library.documented_default(sd, name)
    cuts = detect_cuts(make_detector(sd, (name, value, 3)), _two_cuts())
    assert cuts == [10, 20]
    assert cut_boundaries(cuts, np.arange(30.0)) == [9.5, 19.5]


def test_the_sweep_keeps_each_detectors_best_on_the_videos_it_is_given():
    truth = {"v1": [9.5], "v2": [4.5, 12.5]}
    good, flood = ("ContentDetector", 27.0, 3), ("ContentDetector", 9.0, 2)
    results = {
        "v1": {"timestamps": np.arange(20.0), "cuts": {good: [10], flood: [3, 10, 15]}},
        "v2": {"timestamps": np.arange(20.0), "cuts": {good: [5, 13], flood: [5, 9, 13]}},
    }
    best, choice = sweep(results, truth, [flood, good])
    assert set(best) == {"ContentDetector"}
    b = best["ContentDetector"]
    assert (b["detector"], b["param"], b["value"], b["min_scene_frames"]) == ("ContentDetector", "threshold", 27.0, 3)
    assert (b["precision"], b["recall"], b["f1"], b["matched"], b["predicted"], b["true"]) == (1.0, 1.0, 1.0, 3, 3, 3)
    assert choice == b
