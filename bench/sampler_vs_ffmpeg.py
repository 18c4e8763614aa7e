"""Frame sampling (decode + 224 px RGB) on the real clips: vidcat's sampler against the ffmpeg CLI.

Baseline, per file and one file after the other (ffmpeg threads itself over the cores):
``ffmpeg -i FILE -vf fps=1,scale=224:224 -f rawvideo -pix_fmt rgb24 -``. Ours: ``SamplerPool`` with one
worker per core, pool start included. Both read the same files from the page cache (a warm-up pass
reads them first) and run in alternation ``VIDCAT_BENCH_REPEATS`` times (default 3), so a noisy machine
affects both; the best wall time of each is kept and the per-round ratios are reported too. Ours is
timed twice per round: with the pool's start (two interpreters importing PyAV) and with a pool
already started, as in a pipeline run where one pool serves a batch of thousands of videos.

CPU seconds (user + system, ffmpeg's and our workers' included) are reported beside wall time: they
move much less than wall time when other work shares the machine. Also measured: ffmpeg with two
files at a time (a stronger baseline on two cores), our sampler with the decoder shortcuts off and
with the loop-filter skip on, and how much each shortcut changes the embeddings: cosine between
EfficientNet-Lite0 features of frames sampled with and without it.

The same comparison on the HD clips alone (at least 1280x720), where decoding dominates, and both
with a keyframe standing in for every grid point within ``KEYFRAME_WINDOW_S`` (``keyframe_window_s``;
its embedding change is measured per video, since the frames it picks differ from the grid's).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# The wider stand-in window measured beside the default (SampleOptions.keyframe_window_s).
KEYFRAME_WINDOW_S = 1.0
VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".gif", ".m4v", ".ts"}


def clips_dir() -> Path:
    return Path(os.environ.get("VIDCAT_BENCH_CLIPS", REPO.parent / "shared" / "data" / "real_clips"))


def video_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)


def find_ffmpeg() -> tuple[str | None, str]:
    """The ffmpeg binary on PATH, else why the baseline is skipped.

    Never installed here: a benchmark that changes the machine it measures is not reproducible, and
    the machines reach a package mirror only at setup (docs/benchmarks.md, "Setup").
    """
    found = shutil.which("ffmpeg")
    if found:
        return found, "found"
    return None, "ffmpeg is not on PATH; the baseline is skipped (install it at setup: apt-get install ffmpeg)"


def ffmpeg_one(ffmpeg: str, path: Path) -> int:
    out = subprocess.run(
        [
            ffmpeg,
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            str(path),
            "-vf",
            "fps=1,scale=224:224",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        capture_output=True,
        check=False,
    )
    return len(out.stdout) // (224 * 224 * 3)


def run_ffmpeg(ffmpeg: str, files: list[Path], parallel: int = 1) -> tuple[float, int]:
    started = time.perf_counter()
    if parallel == 1:
        frames = sum(ffmpeg_one(ffmpeg, p) for p in files)
    else:
        with ThreadPoolExecutor(parallel) as ex:
            frames = sum(ex.map(lambda p: ffmpeg_one(ffmpeg, p), files))
    return time.perf_counter() - started, frames


def _peak_rss_mb(pid: int | str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _rss_mb() -> float:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def run_ours(files: list[Path], warm: bool = False, **overrides: Any) -> dict[str, Any]:
    """Our sampler over ``files``; ``warm``: the pool's workers have started before the clock does,
    as in a pipeline run where one pool serves a whole batch of thousands of videos."""
    from ml.frames.errors import VideoError
    from ml.frames.sampler import SampleOptions, SamplerPool

    rss_before = _rss_mb()
    frames, video_s, grid_err, failures, worker_rss, parent_rss = 0, 0.0, 0.0, [], 0.0, 0.0
    strategies: dict[str, int] = {}
    pool = SamplerPool(SampleOptions(**overrides))
    if warm:
        smallest = min(files, key=lambda p: p.stat().st_size)
        list(pool.imap([(smallest, smallest)] * pool.workers))
    started = time.perf_counter()
    with pool:
        for path, res in pool.imap((p, p) for p in files):
            if isinstance(res, VideoError):
                failures.append(f"{path.name}: {type(res).__name__}: {res}")
                continue
            frames += len(res)
            video_s += res.info.get("duration_s") or 0.0
            grid_err = max(grid_err, res.grid_error_s)
            strategies[res.info["strategy"]] = strategies.get(res.info["strategy"], 0) + 1
            parent_rss = max(parent_rss, _rss_mb() - rss_before)
        worker_rss = max(_peak_rss_mb(pid) for pid in pool.worker_pids)
    return {
        "wall_s": time.perf_counter() - started,
        "frames": frames,
        "video_s": video_s,
        "max_grid_error_s": grid_err,
        "failures": failures,
        "strategies": strategies,
        "worker_peak_rss_mb": worker_rss,
        "parent_rss_growth_mb": parent_rss,
    }


def shortcut_cosines(files: list[Path]) -> dict[str, float]:
    """Embedding change caused by each decoder shortcut against a full decode, on every clip.

    Per frame: frames at equal timestamps (same source frame, so only decoding differs). Per video:
    cosine of the mean embeddings (also counts a different choice of frame near a grid point).
    """
    import numpy as np

    from ml.config import load_settings
    from ml.frames.errors import VideoError
    from ml.frames.image_encoder import load_encoder
    from ml.frames.sampler import SampleOptions, sample_frames

    encoder = load_encoder("efficientnet-lite0", load_settings().models_dir)
    exact = SampleOptions(skip_nonref=False, skip_loop_filter=False)
    variants = {
        "nonref": SampleOptions(skip_nonref=True, skip_loop_filter=False),
        "nonref_and_loop_filter": SampleOptions(skip_nonref=True, skip_loop_filter=True),
        f"keyframe_window_{KEYFRAME_WINDOW_S:g}s": SampleOptions(skip_nonref=True, keyframe_window_s=KEYFRAME_WINDOW_S),
    }

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)

    out: dict[str, float] = {}
    reference = {}
    for path in files:
        try:
            ref = sample_frames(path, exact)
        except VideoError:
            continue
        reference[path] = (ref.timestamps, encoder.encode(ref.frames))
    for label, opts in variants.items():
        frame_cos, video_cos = [], []
        for path, (ref_ts, ref_emb) in reference.items():
            got = sample_frames(path, opts)
            emb = encoder.encode(got.frames)
            video_cos.append(float(unit(emb.mean(0)) @ unit(ref_emb.mean(0))))
            same = {round(float(t), 4): i for i, t in enumerate(ref_ts)}
            for i, t in enumerate(got.timestamps):
                j = same.get(round(float(t), 4))
                if j is not None:
                    frame_cos.append(float(unit(emb[i]) @ unit(ref_emb[j])))
        out.update(
            {
                f"{label}_frame_cosine_mean": float(np.mean(frame_cos)),
                f"{label}_frame_cosine_min": float(np.min(frame_cos)),
                f"{label}_video_cosine_mean": float(np.mean(video_cos)),
                f"{label}_video_cosine_min": float(np.min(video_cos)),
            }
        )
    return out


def hd_files(files: list[Path]) -> list[Path]:
    """The clips of at least 1280x720 (either orientation)."""
    import av

    out = []
    for path in files:
        try:
            with av.open(str(path)) as c:
                cc = c.streams.video[0].codec_context
                if min(cc.width, cc.height) >= 720:
                    out.append(path)
        except (av.FFmpegError, IndexError):
            continue
    return out


def hd_subset(ffmpeg: str | None, files: list[Path], repeats: int) -> dict[str, Any]:
    """Ours against ffmpeg on the HD clips alone, where decoding dominates, best of ``repeats``; and
    with a keyframe standing in for grid points within KEYFRAME_WINDOW_S."""
    hd = hd_files(files)
    if not hd:
        return {}
    ours, window, ff = [], [], []
    for _ in range(repeats):
        ours.append(run_ours(hd)["wall_s"])
        window.append(run_ours(hd, keyframe_window_s=KEYFRAME_WINDOW_S)["wall_s"])
        if ffmpeg:
            ff.append(run_ffmpeg(ffmpeg, hd)[0])
    out: dict[str, Any] = {"hd_files": len(hd), "hd_ours_wall_s": round(min(ours), 3)}
    out[f"hd_ours_keyframe_window_{KEYFRAME_WINDOW_S:g}s_wall_s"] = round(min(window), 3)
    if ff:
        out["hd_ffmpeg_wall_s"] = round(min(ff), 3)
        out["hd_throughput_ratio_vs_ffmpeg"] = round(min(ff) / min(ours), 2)
        out[f"hd_throughput_ratio_vs_ffmpeg_keyframe_window_{KEYFRAME_WINDOW_S:g}s"] = round(min(ff) / min(window), 2)
    return out


def _cpu_s(who: int) -> float:
    import resource

    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def run() -> dict[str, Any]:
    folder = clips_dir()
    if not folder.is_dir():
        return {"skipped": f"{folder} is absent (set VIDCAT_BENCH_CLIPS to a folder of videos)"}
    files = video_files(folder)
    for p in files:  # page cache warm for both contenders
        p.read_bytes()
    ffmpeg, ffmpeg_note = find_ffmpeg()
    repeats = int(os.environ.get("VIDCAT_BENCH_REPEATS", "3"))
    ours_runs, ff_runs = [], []
    import resource

    ours_cpu, ff_cpu, warm_runs = [], [], []
    for r in range(repeats):
        order = ("ours", "warm", "ffmpeg") if r % 2 == 0 else ("ffmpeg", "warm", "ours")
        for who in order:
            before = _cpu_s(resource.RUSAGE_SELF) + _cpu_s(resource.RUSAGE_CHILDREN)
            if who == "ours":
                ours_runs.append(run_ours(files))
                ours_cpu.append(_cpu_s(resource.RUSAGE_SELF) + _cpu_s(resource.RUSAGE_CHILDREN) - before)
            elif who == "warm":
                warm_runs.append(run_ours(files, warm=True)["wall_s"])
            elif ffmpeg:
                ff_runs.append(run_ffmpeg(ffmpeg, files))
                ff_cpu.append(_cpu_s(resource.RUSAGE_SELF) + _cpu_s(resource.RUSAGE_CHILDREN) - before)
    best = min(ours_runs, key=lambda r: r["wall_s"])
    result: dict[str, Any] = {
        "files": len(files),
        "video_s": round(best["video_s"], 1),
        "frames": best["frames"],
        "cores": len(os.sched_getaffinity(0)),
        "ours_wall_s": round(best["wall_s"], 3),
        "ours_cpu_s": round(min(ours_cpu), 3),
        "ours_video_s_per_s": round(best["video_s"] / best["wall_s"], 1),
        "ours_worker_peak_rss_mb": round(best["worker_peak_rss_mb"], 1),
        "ours_parent_rss_growth_mb": round(best["parent_rss_growth_mb"], 1),
        "max_grid_error_s": round(best["max_grid_error_s"], 4),
        "strategies": best["strategies"],
        "failures": best["failures"],
        "ffmpeg": ffmpeg_note,
    }
    if ff_runs:
        ff_best = min(w for w, _ in ff_runs)
        result.update(
            {
                "ffmpeg_wall_s": round(ff_best, 3),
                "ffmpeg_cpu_s": round(min(ff_cpu), 3),
                "cpu_ratio_ffmpeg_vs_ours": round(min(ff_cpu) / min(ours_cpu), 2),
                "ffmpeg_frames": ff_runs[0][1],
                "ffmpeg_video_s_per_s": round(best["video_s"] / ff_best, 1),
                "throughput_ratio_vs_ffmpeg": round(ff_best / best["wall_s"], 2),
                "throughput_ratio_per_round": [
                    round(f / o["wall_s"], 2) for (f, _), o in zip(ff_runs, ours_runs, strict=False)
                ],
            }
        )
        ff2, _ = run_ffmpeg(ffmpeg, files, parallel=2)
        result["ffmpeg_2_files_at_once_wall_s"] = round(ff2, 3)
        result["throughput_ratio_vs_ffmpeg_2_at_once"] = round(ff2 / best["wall_s"], 2)
    result["ours_warm_pool_wall_s"] = round(min(warm_runs), 3)
    if ff_runs:
        result["throughput_ratio_vs_ffmpeg_warm_pool"] = round(min(w for w, _ in ff_runs) / min(warm_runs), 2)
    exact = run_ours(files, skip_nonref=False, skip_loop_filter=False)
    result["ours_without_shortcuts_wall_s"] = round(exact["wall_s"], 3)
    result["ours_with_loop_filter_skip_wall_s"] = round(run_ours(files, skip_loop_filter=True)["wall_s"], 3)
    windowed = min(run_ours(files, keyframe_window_s=KEYFRAME_WINDOW_S)["wall_s"] for _ in range(repeats))
    result[f"ours_keyframe_window_{KEYFRAME_WINDOW_S:g}s_wall_s"] = round(windowed, 3)
    if ff_runs:
        ratio = min(w for w, _ in ff_runs) / windowed
        result[f"throughput_ratio_vs_ffmpeg_keyframe_window_{KEYFRAME_WINDOW_S:g}s"] = round(ratio, 2)
    result.update(hd_subset(ffmpeg, files, repeats))
    result.update({k: round(v, 5) if isinstance(v, float) else v for k, v in shortcut_cosines(files).items()})
    result["repeats"] = repeats
    result["median_ratio"] = round(statistics.median(result["throughput_ratio_per_round"]), 2) if ff_runs else None
    return result
