"""Scenes tile the video: no gap, no overlap, every frame in exactly one scene."""

from __future__ import annotations

import numpy as np
import pytest

from ml.segments.scenes import Scene, boundaries_of, check_tiling, tile, video_duration


@pytest.mark.parametrize("seed", range(20))
def test_any_boundaries_tile_the_video(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200))
    ts = np.arange(n, dtype=np.float32)
    duration = n + float(rng.random())
    cuts = list(rng.uniform(-5, duration + 5, size=int(rng.integers(0, 8))))
    scenes = tile(cuts, ts, duration)
    check_tiling(scenes, duration, n)
    assert boundaries_of(scenes) == sorted({c for c in cuts if 0 < c < duration})
    for s in scenes:  # a frame belongs to the scene whose range holds its time
        assert all(s.start_s <= t < s.end_s for t in ts[s.first_frame : s.end_frame])


def test_check_tiling_refuses_gaps_overlaps_and_short_spans():
    ok = [Scene(0, 5, 0, 5), Scene(5, 10, 5, 10)]
    check_tiling(ok, 10, 10)
    with pytest.raises(ValueError, match="do not meet"):
        check_tiling([Scene(0, 5, 0, 5), Scene(6, 10, 5, 10)], 10)
    with pytest.raises(ValueError, match="do not meet"):
        check_tiling([Scene(0, 5, 0, 5), Scene(4, 10, 5, 10)], 10)
    with pytest.raises(ValueError, match="not \\[0, 12"):
        check_tiling(ok, 12)
    with pytest.raises(ValueError, match="at least one"):
        check_tiling([], 10)


def test_duration_is_the_probed_one_unless_frames_lie_past_it():
    ts = np.arange(10, dtype=np.float32)
    assert video_duration(ts) == 10.0
    assert video_duration(ts, duration_s=12.5) == 12.5
    # A header that claims less than the frames: one step past the last frame, so the last is in a scene.
    assert video_duration(ts, duration_s=4.0) == 10.0
    assert video_duration(ts, duration_s=9.0) == 10.0
    assert video_duration(ts, duration_s=9.5) == 9.5  # the last frame lies inside: the probe stands
    assert video_duration(ts, duration_s=float("nan")) == 10.0
