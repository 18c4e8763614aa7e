"""The frame sampler: right frames at the right times, for every kind of file, or a clear error."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from ml.frames.errors import (
    DecodeError,
    DecoderCrashed,
    DecodeTimeout,
    EmptyFile,
    FrameTooLarge,
    MissingFile,
    NoVideoStream,
    VideoError,
)
from ml.frames.sampler import SampleOptions, SamplerPool, _plan, sample_frames
from tests.conftest import REAL_CLIPS, needs_real_clips
from tests.videogen import PALETTE, second_of_colour, write_audio_only, write_video


def assert_on_grid(result, fps: float = 1.0) -> None:
    """Each sample is within half a step of its grid point and shows the second its timestamp names."""
    assert result.frames.dtype == np.uint8 and result.frames.shape[1:] == (224, 224, 3)
    grid = np.arange(len(result)) / fps
    assert np.all(np.abs(result.timestamps - grid) <= 0.5 / fps + 1e-4), (result.timestamps, grid)
    start = result.info["start_s"]
    for ts, frame in zip(result.timestamps, result.frames, strict=True):
        assert second_of_colour(frame) == int(np.floor(ts + start + 1e-4)) % len(PALETTE), (ts, start)


CASES = {
    "h264-cfr.mp4": {},
    "h264-yuv444.mp4": {"pix_fmt": "yuv444p"},
    "h264-yuv422-10bit.mkv": {"pix_fmt": "yuv422p10le"},
    "png-pal8.mov": {"codec": "png", "pix_fmt": "pal8"},
    "png-rgb.mov": {"codec": "png", "pix_fmt": "rgb24"},
    "anim.gif": {"codec": "gif", "pix_fmt": "pal8", "fps": 5},
    "mpeg4.avi": {"codec": "mpeg4"},
    "vp9-live-no-duration.webm": {"codec": "libvpx-vp9", "fmt": "webm", "container_options": {"live": "1"}},
    "keyframe-every-half-second.mp4": {"gop": 5},
    "start-offset.mkv": {"times": [1.3 + k / 10 for k in range(40)]},
    "vfr.mkv": {"times": [round(float(t), 3) for t in np.cumsum(np.random.default_rng(0).uniform(0.02, 0.45, 30))]},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_kind_of_file_samples_the_right_second(tmp_path, name):
    kwargs = CASES[name]
    path = write_video(tmp_path / name, **kwargs)
    result = sample_frames(path)
    assert_on_grid(result)
    times = kwargs.get("times") or [k / kwargs.get("fps", 10) for k in range(int(4 * kwargs.get("fps", 10)))]
    span = times[-1] - times[0] + (times[-1] - times[-2])
    assert len(result) == int(np.ceil(span - 1e-6))


def test_webm_without_duration_really_has_none(tmp_path):
    import av

    path = write_video(tmp_path / "live.webm", codec="libvpx-vp9", fmt="webm", container_options={"live": "1"})
    with av.open(str(path)) as c:
        assert c.duration is None
    assert len(sample_frames(path)) == 4


def test_dense_keyframes_decode_one_keyframe_per_second(tmp_path):
    path = write_video(tmp_path / "gop.mp4", seconds=6, gop=5)
    result = sample_frames(path)
    assert result.info["strategy"] == "keyframes"
    assert result.info["frames_decoded"] == 6 < result.info["packets"]
    assert_on_grid(result)


def test_long_runs_of_non_reference_frames_fall_back_to_a_full_decode(tmp_path):
    # 16 non-reference B-frames between references at 10 fps: skipping them leaves 1.7 s holes
    x264 = {"preset": "medium", "x264-params": "bframes=16:b-pyramid=none:b-adapt=0:keyint=100:scenecut=0"}
    result = sample_frames(write_video(tmp_path / "b.mp4", seconds=6, codec_options=x264))
    assert result.info["refetched_without_nonref_skip"] is True
    assert_on_grid(result)
    assert result.grid_error_s < 0.05


def test_frame_held_on_screen_is_used_across_a_gap(tmp_path):
    path = write_video(tmp_path / "gap.mkv", times=[0, 0.5, 1.0, 1.5, 4.2, 4.5, 5.0, 5.5])
    result = sample_frames(path)
    assert result.timestamps.tolist() == pytest.approx([0, 1, 1.5, 1.5, 4.2, 5.0])
    assert result.info["held"] == 1  # grid point 3 s: nothing within 0.5 s, the 1.5 s frame is on screen


def test_fps_and_max_frames(tmp_path):
    path = write_video(tmp_path / "a.mp4", seconds=5)
    two = sample_frames(path, fps=2.0)
    assert len(two) == 10
    assert_on_grid(two, fps=2.0)
    assert len(sample_frames(path, max_frames=3)) == 3


@pytest.mark.parametrize("rotation", [90, 180, -90])
def test_display_rotation_is_applied(tmp_path, rotation):
    def image(t):
        a = np.zeros((48, 64, 3), dtype=np.uint8)
        a[:, :32] = 255  # left half white
        a[:8] = (255, 0, 0)  # red band on top
        return a

    plain = sample_frames(write_video(tmp_path / "plain.mp4", seconds=2, image=image, size=(64, 48)))
    rotated = sample_frames(write_video(tmp_path / "rot.mp4", seconds=2, image=image, size=(64, 48), rotation=rotation))
    assert rotated.info["rotation"] == rotation % 360
    # FFmpeg's convention (ffmpeg -autorotate agrees): turn the picture counter-clockwise by `rotation`
    np.testing.assert_array_equal(rotated.frames, np.rot90(plain.frames, k=rotation // 90, axes=(1, 2)))


def test_portrait_keeps_the_centre(tmp_path):
    def image(t):
        a = np.zeros((128, 64, 3), dtype=np.uint8)
        a[:32] = (255, 0, 0)
        a[32:96] = (0, 255, 0)
        a[96:] = (0, 0, 255)
        return a

    result = sample_frames(write_video(tmp_path / "tall.mp4", seconds=1, image=image, size=(64, 128)))
    centre = result.frames[0].reshape(-1, 3).mean(0)
    assert centre[1] > 200 and centre[0] < 60 and centre[2] < 60


def test_missing_empty_audio_only_and_garbage(tmp_path):
    with pytest.raises(MissingFile):
        sample_frames(tmp_path / "nope.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(EmptyFile):
        sample_frames(tmp_path / "empty.mp4")
    with pytest.raises(NoVideoStream, match="audio"):
        sample_frames(write_audio_only(tmp_path / "sound.m4a"))
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(50_000))
    with pytest.raises(DecodeError):
        sample_frames(tmp_path / "noise.mp4")


def test_truncated_files(tmp_path):
    # moov at the end and cut off: nothing can be located
    whole = write_video(tmp_path / "whole.mp4", seconds=4).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DecodeError):
        sample_frames(tmp_path / "cut.mp4")
    # a stream format cut in the middle: the readable part is sampled
    whole = write_video(
        tmp_path / "whole.mkv",
        seconds=6,
        size=(160, 120),
        image=lambda t: np.random.default_rng(int(t * 10)).integers(0, 255, (120, 160, 3), dtype=np.uint8),
    ).read_bytes()
    (tmp_path / "cut.mkv").write_bytes(whole[: len(whole) // 2])
    part = sample_frames(tmp_path / "cut.mkv")
    assert 1 <= len(part) < 6


def test_huge_resolution_is_refused_before_decoding(tmp_path):
    path = write_video(tmp_path / "a.mp4", seconds=1, size=(64, 48))
    with pytest.raises(FrameTooLarge, match="max_pixels"):
        sample_frames(path, max_pixels=64 * 48 - 1)


def test_deadline_inside_the_sampler(tmp_path):
    path = write_video(tmp_path / "a.mp4", seconds=2)
    with pytest.raises(DecodeTimeout):
        sample_frames(path, timeout_s=1e-9)


def test_options_from_settings(settings):
    opts = SampleOptions.from_settings(settings)
    assert (opts.fps, opts.max_frames, opts.size, opts.timeout_s) == (
        settings.fps,
        settings.max_frames,
        settings.frame_size,
        settings.decode_timeout_s,
    )


def test_plan_prefers_keyframes_and_merges_spans():
    # 10 fps, 4 s; keyframes every 2 s: grid points 0 and 2 take keyframes, 1 and 3 decode spans
    pts = np.arange(40) / 10
    key = np.zeros(40, dtype=bool)
    key[[0, 20]] = True
    plan = _plan(pts, key, np.ones(40, dtype=bool), SampleOptions())
    assert plan is not None and plan.n == 4
    assert plan.ranges == [(0, 15), (20, 35)]
    dense = np.zeros(40, dtype=bool)
    dense[::5] = True
    plan = _plan(pts, dense, np.ones(40, dtype=bool), SampleOptions())
    assert plan.ranges == [(0, 0), (10, 10), (20, 20), (30, 30)] and plan.strategy == "keyframes"


def test_plan_with_a_keyframe_window_decodes_keyframes_only():
    # keyframes every 2 s: with a 1 s window each grid point takes the nearest keyframe (ties: the earlier)
    pts = np.arange(60) / 10
    key = np.zeros(60, dtype=bool)
    key[[0, 20, 40]] = True
    plan = _plan(pts, key, np.ones(60, dtype=bool), SampleOptions(keyframe_window_s=1.0))
    assert plan.ranges == [(0, 0), (20, 20), (40, 40)] and plan.strategy == "keyframes"
    # a keyframe farther than the window still leaves a span to decode
    plan = _plan(pts, key, np.ones(60, dtype=bool), SampleOptions(keyframe_window_s=0.7))
    assert plan.strategy == "spans" and (0, 15) in plan.ranges


def test_keyframe_window_stands_in_for_grid_points(tmp_path):
    path = write_video(tmp_path / "gop2s.mp4", seconds=6, gop=20)
    exact = sample_frames(path)
    windowed = sample_frames(path, keyframe_window_s=1.0)
    assert windowed.info["strategy"] == "keyframes"
    assert windowed.info["frames_decoded"] == 3 < exact.info["frames_decoded"]
    assert len(windowed) == len(exact) == 6
    grid = np.arange(6)
    assert np.all(np.abs(windowed.timestamps - grid) <= 1.0 + 1e-4)
    assert windowed.timestamps.tolist() == pytest.approx([0, 0, 2, 2, 4, 4])
    for ts, frame in zip(windowed.timestamps, windowed.frames, strict=True):  # each shows its own second
        assert second_of_colour(frame) == int(np.floor(ts + 1e-4)) % len(PALETTE)
    assert windowed.info["held"] == 0  # within the window is not holding a frame


def test_keyframe_window_is_a_validated_setting(tmp_path):
    from ml.config import ConfigError, load_settings

    assert SampleOptions.from_settings(load_settings(data_root=tmp_path, keyframe_window_s=1.0)).keyframe_window_s == 1
    with pytest.raises(ConfigError, match="keyframe_window_s"):
        load_settings(data_root=tmp_path, keyframe_window_s=2.5)


def test_pool_returns_frames_and_errors_by_key(tmp_path):
    good = write_video(tmp_path / "a.mp4", seconds=3)
    (tmp_path / "empty.mp4").write_bytes(b"")
    audio = write_audio_only(tmp_path / "sound.m4a")
    with SamplerPool(SampleOptions(), workers=2) as pool:
        out = dict(pool.imap([("good", good), ("empty", tmp_path / "empty.mp4"), ("audio", audio)]))
    assert len(out["good"]) == 3
    assert isinstance(out["empty"], EmptyFile) and isinstance(out["audio"], NoVideoStream)


def hang_in_c(path, options):
    """Stands for a decoder stuck inside C: no Python-level deadline check can interrupt it."""
    if "hang" in str(path):
        time.sleep(3600)
    return sample_frames(path, options)


def crash(path, options):
    """Stands for a worker killed by a crash in FFmpeg or by the kernel for memory."""
    os.kill(os.getpid(), 9)


def test_pool_kills_a_hung_decoder_and_goes_on(tmp_path):
    hang = write_video(tmp_path / "hang.mp4", seconds=1)
    good = write_video(tmp_path / "a.mp4", seconds=2)
    started = time.monotonic()
    with SamplerPool(SampleOptions(timeout_s=0.5), workers=1, grace_s=0.5, sample_fn=hang_in_c) as pool:
        out = dict(pool.imap([("hang", hang), ("good", good)]))
    assert isinstance(out["hang"], DecodeTimeout) and "killed" in str(out["hang"])
    assert len(out["good"]) == 2  # a fresh worker took the next video
    assert time.monotonic() - started < 20


def test_pool_reports_a_dead_worker(tmp_path):
    path = write_video(tmp_path / "a.mp4", seconds=1)
    with SamplerPool(SampleOptions(), workers=1, sample_fn=crash) as pool:
        out = dict(pool.imap([("x", path)]))
    assert isinstance(out["x"], DecoderCrashed)


def test_a_fifo_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    with pytest.raises(MissingFile, match="not a regular file"):
        sample_frames(fifo)


@pytest.mark.slow
@needs_real_clips
def test_every_real_clip_gives_frames_or_a_clear_error():
    files = sorted(p for p in REAL_CLIPS.iterdir() if p.suffix != ".tsv")
    with SamplerPool(SampleOptions()) as pool:
        out = dict(pool.imap((p.name, p) for p in files))
    for name, res in out.items():
        if isinstance(res, VideoError):
            assert str(res), name
            continue
        assert len(res) >= 1 and res.frames.shape[1:] == (224, 224, 3), name
        assert res.grid_error_s <= 0.5 + 1e-4, name
    assert sum(not isinstance(r, VideoError) for r in out.values()) >= 28
    portrait = out["Video-LLaMA__skateboarding_dog.mp4"]
    assert portrait.info["width"] < portrait.info["height"] and len(portrait) == 15
