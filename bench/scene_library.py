"""Scene boundaries from a maintained library (PySceneDetect) against the embedding detector, on the segment benchmark.

Issue 23 asked for boundaries from the stored 1 fps frame embeddings or from a maintained
scene-detection library fed the frames the sampler already decodes, whichever measures better at the
same cost. This benchmark measures the library arm on the same 1 fps frames the encoder sees:

1. Every benchmark video is decoded once by the project's sampler (``sample_frames`` with the frame
   stage's ``SampleOptions.from_settings``: one frame a second, 224 px squares), converted to the
   24-bit BGR the library's detectors expect, and fed frame by frame to each detector through its
   documented API (``process_frame`` with a ``FrameTimecode`` at 1 fps, then ``post_process``, as
   ``SceneManager`` drives them), ``VIDCAT_BENCH_SCENE_WORKERS`` videos at a time (default 2).
2. A detector's cut at frame ``k`` (the first frame of the new scene) becomes a boundary between frames
   ``k - 1`` and ``k``, at the midpoint of their timestamps, as the embedding detector places its own.
3. **Gold chooses**: each detector's threshold (a grid around its documented default) and minimum scene
   length (2, 3, 4, 6 frames: seconds at 1 fps) are swept on the gold share only; gold's best by
   boundary F1 at +-1 s (``ml.evaluation.segments.best_boundary_settings``, as the embedding detector's
   own sweep chooses) is each detector's choice.
4. **Locked reports**: each detector's gold choice, and the embedding detector's ``DEFAULT_DETECTOR``
   on the stored embeddings of the same videos, with precision, recall, F1 and CPU seconds per video.

Cost, and what each arm excludes. The library's CPU is its detector over the decoded frames (the BGR
conversion included), the decode excluded: it needs pixels, which the frame stage holds only for a
moment and does not keep, so in production it would have to run inside the frame stage, beside the
encoder, or pay a second decode (the sampler's decode CPU per video is reported for that case). The
embedding detector's CPU is ``detect_scenes`` on embeddings already read (the shard read and the
encoder excluded: the frame stage pays them anyway).

The library is optional and no dependency of the project: without ``scenedetect`` (``MISSING`` says how
to install it) the benchmark says so and measures nothing. The benchmark is rendered and embedded on first use, as
for ``segments`` (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import concurrent.futures
import inspect
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

MISSING = (
    "scenedetect is not installed (pip install opencv-python-headless, then pip install --no-deps scenedetect: "
    "it declares opencv-python, the GUI build of the same cv2): the library arm of the scene boundaries is skipped"
)
# Each detector's swept parameter and its grid, around the documented default (the installed
# version's default is reported beside it). ThresholdDetector (fades to and from black) and the
# TransNetV2 detector (a network whose weights are not shipped) are not candidates.
DETECTORS: dict[str, tuple[str, tuple[float, ...]]] = {
    "ContentDetector": ("threshold", (9.0, 12.0, 15.0, 18.0, 21.0, 24.0, 27.0, 30.0, 33.0, 36.0, 42.0, 48.0, 54.0)),
    "AdaptiveDetector": ("adaptive_threshold", (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0)),
    "HistogramDetector": ("threshold", (0.02, 0.05, 0.08, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)),
    "HashDetector": ("threshold", (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6)),
}
MIN_SCENE_FRAMES = (2, 3, 4, 6)
Config = tuple[str, float, int]  # (detector, swept parameter's value, min_scene_len in frames)


def library() -> Any | None:
    """The ``scenedetect`` module, or None when it is not installed."""
    try:
        import scenedetect
    except ImportError:
        return None
    return scenedetect


def available_detectors(sd: Any) -> dict[str, tuple[str, tuple[float, ...]]]:
    """The candidate detectors this version of the library has."""
    return {name: spec for name, spec in DETECTORS.items() if hasattr(sd, name)}


def documented_default(sd: Any, name: str) -> float:
    """The installed version's default of a detector's swept parameter."""
    param = DETECTORS[name][0]
    return float(inspect.signature(getattr(sd, name)).parameters[param].default)


def grid(detectors: dict[str, tuple[str, tuple[float, ...]]]) -> list[Config]:
    return [(name, value, m) for name, (_, values) in detectors.items() for value in values for m in MIN_SCENE_FRAMES]


def make_detector(sd: Any, config: Config) -> Any:
    name, value, min_frames = config
    return getattr(sd, name)(**{DETECTORS[name][0]: value, "min_scene_len": int(min_frames)})


def detect_cuts(detector: Any, frames_bgr: np.ndarray, fps: float = 1.0) -> list[int]:
    """The frame indices a library detector cuts at (each the first frame of a new scene), sorted.

    Frame ``i`` is passed as ``FrameTimecode(i, fps)``: at 1 fps a frame number is a second, and a
    minimum scene length given in frames is one in seconds.
    """
    from scenedetect import FrameTimecode

    cuts: list[Any] = []
    for i, frame in enumerate(frames_bgr):
        cuts += detector.process_frame(FrameTimecode(i, fps=fps), frame)
    if len(frames_bgr):
        cuts += detector.post_process(FrameTimecode(len(frames_bgr) - 1, fps=fps))
    return sorted({int(c.frame_num) for c in cuts})


def cut_boundaries(cut_frames: Sequence[int], timestamps: Sequence[float]) -> list[float]:
    """Boundary times from cut frames: a cut at frame ``k`` lies between frames ``k - 1`` and ``k``.

    Placed at the midpoint of the two frames' timestamps, as ``ml.segments.detect`` places its own; a
    cut at the first frame or past the last is no boundary.
    """
    ts = np.asarray(timestamps, dtype=np.float64)
    return sorted({float((ts[k - 1] + ts[k]) / 2.0) for k in cut_frames if 0 < k < len(ts)})


def _video_cuts(job: tuple[str, str, Any, list[Config]]) -> dict[str, Any]:
    """One video: decoded once by the sampler, every configuration run on its frames (worker process)."""
    from ml.frames.sampler import sample_frames

    video_id, uri, options, configs = job
    sd = library()
    sampled = sample_frames(uri, options)
    started = time.process_time()
    bgr = np.ascontiguousarray(sampled.frames[..., ::-1])  # the sampler gives RGB; the detectors want BGR
    convert_s = time.process_time() - started
    cuts: dict[Config, list[int]] = {}
    cpu: dict[Config, float] = {}
    for config in configs:
        started = time.process_time()
        cuts[config] = detect_cuts(make_detector(sd, config), bgr, sampled.fps)
        cpu[config] = time.process_time() - started + convert_s
    return {
        "video_id": video_id,
        "timestamps": sampled.timestamps.astype(np.float64),
        "decode_cpu_s": float(sampled.info.get("decode_cpu_s", float("nan"))),
        "cuts": cuts,
        "cpu_s": cpu,
    }


def run_library(
    rows: Sequence[dict[str, Any]], options: Any, configs: list[Config], workers: int, label: str
) -> dict[str, dict[str, Any]]:
    """Every row's video through ``_video_cuts``, ``workers`` processes at a time (spawned)."""
    jobs = [(r["video_id"], r["uri"], options, configs) for r in rows]
    out: dict[str, dict[str, Any]] = {}
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
        for res in pool.map(_video_cuts, jobs, chunksize=1):
            out[res["video_id"]] = res
            if len(out) % 18 == 0 or len(out) == len(jobs):
                print(f"bench: scene_library, {label} {len(out)}/{len(jobs)}", file=sys.stderr, flush=True)
    return out


def sweep(
    results: dict[str, dict[str, Any]], truth: dict[str, list[float]], configs: list[Config]
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Each detector's best configuration by boundary F1 at +-1 s over ``results`` (gold), and the best of
    them; ties: first in grid order (``ml.evaluation.segments.best_boundary_settings``, as the embedding
    detector's sweep)."""
    from ml.evaluation.segments import best_boundary_settings

    ids = sorted(results)

    def candidates() -> Iterator[tuple[str, dict[str, Any], list[list[float]]]]:
        for config in configs:
            name, value, min_frames = config
            setting = {"detector": name, "param": DETECTORS[name][0], "value": value, "min_scene_frames": min_frames}
            yield name, setting, [cut_boundaries(results[v]["cuts"][config], results[v]["timestamps"]) for v in ids]

    return best_boundary_settings(candidates(), [truth[v] for v in ids])


def _rounded(s: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in s.items()}


def embedding_arm(shards: Sequence[Any], rows: Sequence[dict[str, Any]], repeats: int = 5) -> dict[str, dict[str, Any]]:
    """``DEFAULT_DETECTOR`` on each video's stored embeddings: its boundaries and CPU seconds (best of ``repeats``)."""
    from ml.frames.embedding_store import iter_videos
    from ml.segments.detect import DEFAULT_DETECTOR, detect_scenes
    from ml.segments.scenes import boundaries_of

    meta = {r["video_id"]: r for r in rows}
    out: dict[str, dict[str, Any]] = {}
    for v in iter_videos(list(shards)):
        duration = float(meta[v.video_id]["duration_s"])
        times = []
        for _ in range(repeats):
            started = time.process_time()
            scenes = detect_scenes(v.timestamps, v.embeddings, duration, DEFAULT_DETECTOR)
            times.append(time.process_time() - started)
        out[v.video_id] = {
            "boundaries": boundaries_of(scenes),
            "timestamps": np.asarray(v.timestamps, dtype=np.float64),
            "cpu_s": min(times),
        }
    return out


def run() -> dict[str, Any]:
    sd = library()
    if sd is None:
        print(f"bench: {MISSING}", file=sys.stderr, flush=True)
        return {"skipped": MISSING}
    import cv2

    from ml.config import load_settings
    from ml.demo.segments import DEFAULT_SEED, build_benchmark, load_benchmark
    from ml.evaluation.segments import TOLERANCE_S, boundary_scores, embed_benchmark
    from ml.frames.sampler import SampleOptions
    from ml.segments.detect import DEFAULT_DETECTOR

    settings = load_settings().ensure_dirs()
    workers = int(os.environ.get("VIDCAT_BENCH_SCENE_WORKERS", "2"))
    folder = build_benchmark(settings.data_root, DEFAULT_SEED)
    rows = load_benchmark(folder)
    shards = embed_benchmark(folder, settings)
    options = SampleOptions.from_settings(settings)
    detectors = available_detectors(sd)
    configs = grid(detectors)
    truth = {r["video_id"]: [s[0] for s in r["scenes"][1:]] for r in rows}
    gold = [r for r in rows if r["split"] == "gold"]
    locked = [r for r in rows if r["split"] == "locked"]

    # Gold: every configuration of every detector; each detector's best; the best of them.
    gold_res = run_library(gold, options, configs, workers, f"gold sweep ({len(configs)} configurations)")
    best, choice = sweep(gold_res, truth, configs)
    emb = embedding_arm(shards, rows)
    emb_gold = boundary_scores([emb[r["video_id"]]["boundaries"] for r in gold], [truth[r["video_id"]] for r in gold])

    # Locked: each detector's gold choice (chosen above, on gold only), and the embedding detector.
    chosen = [(b["detector"], b["value"], b["min_scene_frames"]) for b in best.values()]
    locked_res = run_library(locked, options, chosen, workers, "locked")
    ids = [r["video_id"] for r in locked]
    locked_truth = [truth[v] for v in ids]
    locked_lib = {}
    for config in chosen:
        pred = [cut_boundaries(locked_res[v]["cuts"][config], locked_res[v]["timestamps"]) for v in ids]
        cpu = float(np.mean([locked_res[v]["cpu_s"][config] for v in ids]))
        locked_lib[config[0]] = {**_rounded(boundary_scores(pred, locked_truth)), "cpu_s_per_video": round(cpu, 5)}
    emb_locked = boundary_scores([emb[v]["boundaries"] for v in ids], locked_truth)
    emb_cpu = float(np.mean([emb[v]["cpu_s"] for v in ids]))

    # The two arms saw the same frames: as many samples, at the same times, as the stored embeddings.
    sampled = {**gold_res, **locked_res}
    same = sum(
        len(sampled[v]["timestamps"]) == len(emb[v]["timestamps"])
        and bool(np.allclose(sampled[v]["timestamps"], emb[v]["timestamps"], atol=1e-3))
        for v in sampled
    )
    head = locked_lib[choice["detector"]]
    return {
        "scenedetect_version": sd.__version__,
        "opencv_version": cv2.__version__,
        "bench": str(folder),
        "gold_videos": len(gold),
        "locked_videos": len(locked),
        "tolerance_s": TOLERANCE_S,
        "videos_with_the_embeddings_frames": f"{same} of {len(sampled)}",
        "gold_configurations": len(configs),
        "gold_best_library_detector": choice["detector"],
        "gold_best_library_f1": round(choice["f1"], 4),
        "gold_embedding_default_f1": round(emb_gold["f1"], 4),
        "locked_library_precision": head["precision"],
        "locked_library_recall": head["recall"],
        "locked_library_f1": head["f1"],
        "locked_embedding_precision": round(emb_locked["precision"], 4),
        "locked_embedding_recall": round(emb_locked["recall"], 4),
        "locked_embedding_f1": round(emb_locked["f1"], 4),
        "library_cpu_s_per_video": head["cpu_s_per_video"],
        "embedding_cpu_s_per_video": round(emb_cpu, 5),
        "decode_cpu_s_per_video": round(float(np.mean([sampled[v]["decode_cpu_s"] for v in sampled])), 4),
        "library_cost_covers": "detector on decoded 1 fps frames, RGB to BGR included; decode excluded",
        "embedding_cost_covers": "detect_scenes on stored embeddings; shard read and encoder excluded",
        "gold_sweep_best": {
            name: {**_rounded(b), "documented_default": documented_default(sd, name)} for name, b in best.items()
        },
        "gold_embedding_default": {**_rounded(emb_gold), **DEFAULT_DETECTOR.__dict__},
        "locked_gold_choices": locked_lib,
        "locked_embedding_default": _rounded(emb_locked),
    }
