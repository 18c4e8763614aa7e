"""The library arm of the scene boundaries (bench/scene_library.py): cut placement, the sweep, the skip.

PySceneDetect itself is not installed by any extra (its OpenCV wheel is 64 MB), so nothing here calls
it; docs/benchmarks.md says how to install it and run the library arm.
"""

from __future__ import annotations

import numpy as np

from bench import scene_library
from bench.scene_library import cut_boundaries, sweep


def test_a_cut_lies_between_the_frame_before_it_and_its_own():
    ts = [0.0, 1.0, 2.0, 3.02, 4.0, 5.0]
    assert cut_boundaries([3, 1], ts) == [0.5, 2.51]
    # at the first frame or past the last there is no gap to place a boundary in; duplicates count once
    assert cut_boundaries([0, 6, 9, 2, 2], ts) == [1.5]
    assert cut_boundaries([], ts) == []


def test_the_library_is_reported_missing_not_failed(monkeypatch):
    monkeypatch.setattr(scene_library, "library", lambda: None)
    assert scene_library.run() == {"skipped": scene_library.MISSING}


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
