"""Boundaries from frame embeddings: on drawn embeddings, and on rendered videos through the real sampler
and encoder (within +-1 s of the true cuts and fades)."""

from __future__ import annotations

import numpy as np
import pytest

from ml.segments.detect import DEFAULT_DETECTOR, DetectorParams, boundary_signal, detect_scenes, pick_boundaries
from ml.segments.scenes import boundaries_of, check_tiling


def _piecewise(lengths, dim=64, noise=0.05, seed=0, fade_at=None):
    rng = np.random.default_rng(seed)
    centres = rng.random((len(lengths), dim)) * 2
    rows = []
    for k, n in enumerate(lengths):
        rows += [centres[k] + noise * rng.standard_normal(dim) for _ in range(n)]
    e = np.abs(np.array(rows, dtype=np.float32))
    if fade_at is not None:  # a two-frame cross-fade around the first boundary
        b = lengths[0]
        e[b - 1] = 0.7 * e[b - 2] + 0.3 * e[b + 1]
        e[b] = 0.3 * e[b - 2] + 0.7 * e[b + 1]
    return np.arange(len(e), dtype=np.float32), e


@pytest.mark.parametrize("method", ["consecutive", "window"])
def test_cuts_between_distinct_scenes_are_found(method):
    ts, e = _piecewise([12, 20, 9, 15])
    scenes = detect_scenes(ts, e, None, DetectorParams(method=method, threshold=0.1, min_scene_s=3))
    check_tiling(scenes, 56.0, 56)
    assert boundaries_of(scenes) == [11.5, 31.5, 40.5]


def test_the_window_signal_peaks_once_inside_a_fade():
    ts, e = _piecewise([15, 15], fade_at=0)
    signal = boundary_signal(e, DetectorParams(method="window", window=2))
    assert abs((ts[int(np.argmax(signal))] + 0.5) - 14.5) <= 1.0
    found = pick_boundaries(signal, ts, 30.0, DetectorParams(method="window", threshold=0.1, min_scene_s=3))
    assert len(found) == 1 and abs(found[0] - 14.5) <= 1.0


def test_min_scene_length_and_the_edges():
    ts, e = _piecewise([2, 20, 2])
    params = DetectorParams(method="consecutive", threshold=0.1, min_scene_s=3)
    assert boundaries_of(detect_scenes(ts, e, None, params)) == []
    assert boundaries_of(
        detect_scenes(ts, e, None, DetectorParams(method="consecutive", threshold=0.1, min_scene_s=1))
    ) == [
        1.5,
        21.5,
    ]


def test_one_scene_for_a_still_or_a_single_frame():
    ts, e = _piecewise([30], noise=0.0)
    assert len(detect_scenes(ts, e, 30.0)) == 1
    assert len(detect_scenes(np.zeros(1, np.float32), e[:1], 0.5)) == 1
    with pytest.raises(ValueError):
        DetectorParams(method="pyscenedetect")


def test_rendered_cuts_and_fades_are_found_within_a_second(tmp_path):
    """Two drawn videos (hard cuts, cross-fades, a new shot inside a scene) through the real sampler and
    encoder: the default detector finds every boundary within +-1 s, and nothing else."""
    from ml.demo.segments import BenchVideo, render_bench_video
    from ml.frames.sampler import sample_frames
    from tests.videogen import shared_encoder

    def video(vid, scenes, fades, shot_changes, size):
        n = len(scenes) + len(shot_changes)
        return BenchVideo(vid, "gold", sorted({c for *_, c in scenes}), scenes, fades, shot_changes, "en",
                          None, None, "none", *size, style_seeds=list(range(n)))  # fmt: skip

    videos = [
        video("t-0", [(0.0, 12.0, "533"), (12.0, 25.5, "472"), (25.5, 36.0, "216")], [0.0, 2.0], [], (160, 120)),
        # a new shot of the dogs at 9 s: the same category in a new style, not a boundary
        video("t-1", [(0.0, 20.25, "425"), (20.25, 32.0, "338"), (32.0, 44.0, "425")], [1.0, 0.0], [9.0], (176, 144)),
    ]
    encoder = shared_encoder()
    for v in videos:
        path = tmp_path / f"{v.video_id}.mp4"
        render_bench_video(v, path)
        sampled = sample_frames(path)
        scenes = detect_scenes(sampled.timestamps, encoder.encode(sampled.frames), v.duration_s, DEFAULT_DETECTOR)
        check_tiling(scenes, v.duration_s, len(sampled))
        found = boundaries_of(scenes)
        assert len(found) == len(v.boundaries), (v.video_id, found, v.boundaries)
        for f, b in zip(found, v.boundaries, strict=True):
            assert abs(f - b) <= 1.0, (v.video_id, found, v.boundaries)


def test_a_header_shorter_than_the_packets_leaves_no_frame_outside_the_scenes(tmp_path):
    """10 s of packets under a header that declares 4 s, through probe, sampler, detector and the
    blocking segment check: the last frame is in the last scene and no scene passes the duration."""
    import pandas as pd

    from data_checks.segments_suite import validate_segments
    from ml.frames.probe import probe
    from ml.frames.sampler import sample_frames
    from tests.conftest import make_video
    from tests.videogen import declare_shorter_duration

    full = make_video(tmp_path / "full.mkv", duration_s=10.0, fps=10, container=".mkv")
    path = declare_shorter_duration(full, tmp_path / "short.mkv", 4.0)
    duration = probe(path).duration_s
    sampled = sample_frames(path)
    assert len(sampled.timestamps) == 10
    ts = np.asarray(sampled.timestamps, dtype=np.float64)
    scenes = detect_scenes(ts, np.random.default_rng(0).random((len(ts), 8), dtype=np.float32), duration)
    check_tiling(scenes, scenes[-1].end_s, n_frames=len(ts))
    assert scenes[-1].end_s > ts[-1]
    rows = pd.DataFrame(
        {
            "video_id": "v",
            "scene_index": range(len(scenes)),
            "start_s": [s.start_s for s in scenes],
            "end_s": [s.end_s for s in scenes],
            "duration_s": duration,
        }
    )
    outcome = validate_segments(rows)
    assert outcome.passed, outcome.summary()
