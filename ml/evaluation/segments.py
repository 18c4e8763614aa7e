"""The scene stage on the segment benchmark: boundaries, per-second categories, segment MAP (`vidcat eval-segments`).

On a trained data root: the benchmark (``ml/demo/segments.py``) is rendered once and reused, its frames
are sampled and embedded by the project's own sampler and encoder into shards beside it (once, then
reused), and every video goes through what production runs on stored embeddings: ``detect_scenes``,
``score_scenes``. Gold chooses, locked reports:

* gold: the detector sweep (boundary F1 at +-1 s per method and parameters: how ``DEFAULT_DETECTOR``
  was chosen) and the scene thresholds, certified on the gold videos' detected scenes;
* locked: boundary precision, recall and F1 at +-1 s; per-second categories (micro precision and
  recall) of our scenes against the baseline that copies the video's categories (the student over all
  frames at the catalog's certified video-level visual thresholds) to every second; segment MAP.

Definitions (docs/segments.md): a second ``[k, k+1)`` is judged at its midpoint; its truth is the
category of the true scene holding ``k + 0.5``. A detected scene is a positive for a category when the
category covers at least half of it (``scene_truth``): the unit of certification and of segment MAP.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ml.demo.segments import DEFAULT_SEED, GOLD_VIDEOS, LOCKED_VIDEOS, build_benchmark, load_benchmark
from ml.errors import MissingPrerequisite
from ml.segments.breaks import ad_breaks
from ml.segments.certify import certify_scene_thresholds, emitted, scene_truth
from ml.segments.detect import DEFAULT_DETECTOR, DetectorParams, boundary_signal, detect_scenes, pick_boundaries
from ml.segments.scenes import Scene, boundaries_of
from ml.segments.score import score_scenes

TOLERANCE_S = 1.0
CHUNK_VIDEOS = 24  # videos per embeddings shard: the unit of progress and of resuming
# The detectors the gold sweep compares: (method, window, metric). Thresholds and minimum scene
# lengths are swept for each.
SIGNALS: tuple[tuple[str, int, str], ...] = tuple(
    (method, window, metric)
    for method, window in (("consecutive", 1), ("window", 2), ("window", 3))
    for metric in ("cosine", "euclidean")
)
THRESHOLDS = tuple(round(x, 3) for x in np.arange(0.02, 1.001, 0.02))
MIN_SCENE_S = (2.0, 3.0, 4.0, 6.0)
Progress = Callable[[str, int, int], None]
Group = TypeVar("Group", bound=Hashable)  # what a sweep keeps one best setting of (a signal, a library detector)


@dataclass
class VideoRun:
    """What the evaluation keeps of one benchmark video (embeddings are not kept: they stream)."""

    video_id: str
    split: str
    duration_s: float
    true_scenes: list[tuple[float, float, str]]
    timestamps: np.ndarray
    signals: dict[tuple[str, int, str], np.ndarray]
    scenes: list[Scene]
    scene_scores: np.ndarray | None  # (S, C); None without a student
    video_scores: np.ndarray | None  # (C,): the student over all frames
    cpu_s: float = 0.0  # detect + score of this video's scenes

    @property
    def true_boundaries(self) -> list[float]:
        return [s[0] for s in self.true_scenes[1:]]


@dataclass
class SegmentEvaluation:
    """Everything `vidcat eval-segments` prints."""

    bench: str
    detector: dict[str, Any]
    gold_videos: int
    locked_videos: int
    sweep: list[dict[str, Any]] = field(default_factory=list)
    gold_choice: dict[str, Any] = field(default_factory=dict)
    boundaries: dict[str, float] = field(default_factory=dict)
    per_second: dict[str, dict[str, float]] = field(default_factory=dict)
    segment_map: dict[str, float] = field(default_factory=dict)
    certified: dict[str, Any] = field(default_factory=dict)
    breaks: dict[str, float] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


# ---------------------------------------------------------------------------------------------------
# Metrics


def match_boundaries(predicted: Sequence[float], true: Sequence[float], tol: float = TOLERANCE_S) -> int:
    """How many predicted boundaries match a true one within ``tol`` seconds, one to one (closest first)."""
    pairs = sorted((abs(p - t), i, j) for i, p in enumerate(predicted) for j, t in enumerate(true) if abs(p - t) <= tol)
    used_p: set[int] = set()
    used_t: set[int] = set()
    for _, i, j in pairs:
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    return len(used_p)


def boundary_scores(
    predicted: Sequence[Sequence[float]], true: Sequence[Sequence[float]], tol: float = TOLERANCE_S
) -> dict[str, float]:
    """Micro precision, recall and F1 of boundaries over videos, a match within ``tol`` seconds."""
    tp = sum(match_boundaries(p, t, tol) for p, t in zip(predicted, true, strict=True))
    n_pred = sum(len(p) for p in predicted)
    n_true = sum(len(t) for t in true)
    precision = tp / n_pred if n_pred else 1.0
    recall = tp / n_true if n_true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "matched": tp, "predicted": n_pred, "true": n_true}


def best_boundary_settings(
    candidates: Iterable[tuple[Group, dict[str, Any], Sequence[Sequence[float]]]],
    true: Sequence[Sequence[float]],
    tol: float = TOLERANCE_S,
) -> tuple[dict[Group, dict[str, Any]], dict[str, Any]]:
    """Each group's best setting by boundary F1 against ``true`` (gold), and the best of those.

    A candidate is ``(group, setting, boundaries per video in true's order)``; a result is the setting
    with its ``boundary_scores``. Gold chooses the detector of `vidcat eval-segments` and each library
    detector's setting in `python -m bench scene_library` the same way: a later candidate replaces a
    group's best only when its F1 is higher beyond rounding, so ties go to the first in the sweep's
    grid order, as does the choice among groups.
    """
    best: dict[Group, dict[str, Any]] = {}
    for group, setting, predicted in candidates:
        s = boundary_scores(predicted, true, tol)
        if group not in best or s["f1"] > best[group]["f1"] + 1e-12:
            best[group] = {**setting, **s}
    if not best:
        raise ValueError("no boundary settings to choose from")
    return best, max(best.values(), key=lambda b: b["f1"])


def second_truth(true_scenes: Sequence[tuple[float, float, str]], duration_s: float) -> list[str]:
    """The true category of each whole second ``[k, k+1)``, judged at its midpoint."""
    out = []
    for k in range(int(np.floor(duration_s))):
        t = k + 0.5
        out.append(next((c for s0, s1, c in true_scenes if s0 <= t < s1), true_scenes[-1][2]))
    return out


def second_sets(scenes: Sequence[Scene], sets: Sequence[set[str]], duration_s: float) -> list[set[str]]:
    """The categories given to each whole second: those of the scene holding its midpoint."""
    starts = [s.start_s for s in scenes]
    return [sets[max(0, int(np.searchsorted(starts, k + 0.5, side="right")) - 1)] for k in range(int(duration_s))]


def micro_scores(predicted: Sequence[set[str]], truth: Sequence[str]) -> dict[str, float]:
    """Micro precision and recall over (second, category) pairs; each second has one true category."""
    tp = sum(t in p for p, t in zip(predicted, truth, strict=True))
    n_pred = sum(len(p) for p in predicted)
    return {
        "precision": tp / n_pred if n_pred else float("nan"),
        "recall": tp / len(truth) if truth else float("nan"),
        "seconds": len(truth),
        "given": n_pred,
        "correct": tp,
    }


def segment_map(scores: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """YouTube-8M 2019 style: per category, every scene ranked by its score; AP over the whole ranking.

    Mean over the categories with at least one positive scene; unscored scenes (NaN) rank last.
    """
    from ml.metrics import average_precision

    aps = []
    for j in range(truth.shape[1]):
        if truth[:, j].any():
            aps.append(average_precision(np.nan_to_num(scores[:, j], nan=-1.0), truth[:, j]))
    return {"map": float(np.mean(aps)) if aps else float("nan"), "categories": len(aps)}


# ---------------------------------------------------------------------------------------------------
# The run


def _require_models(settings: Any, catalog: Any) -> tuple[Any, Any]:
    """The current fusion model and its student, or a message saying how to get them."""
    from ml.catalog.model_registry import latest_model
    from ml.fusion.stage import load_current_fusion

    if (
        latest_model(catalog, "fusion", required=False) is None
        or latest_model(catalog, "visual_model", required=False) is None
    ):
        raise MissingPrerequisite(f"no trained student in {settings.data_root}: run make demo first")
    fusion = load_current_fusion(catalog)
    if fusion.visual_record is None:
        raise MissingPrerequisite(
            f"the current fusion model in {settings.data_root} has no student: run make demo first"
        )
    return fusion, fusion.visual_record


def embed_benchmark(folder: Path, settings: Any, progress: Progress | None = None) -> list[Path]:
    """The benchmark's frame embeddings, by the project's sampler and encoder, in shards beside it.

    Shards of ``CHUNK_VIDEOS`` videos are written once (atomically, by ``ml.frames.stage.embed_batch``)
    and reused; an interrupted run resumes at the first missing shard.
    """
    from ml.frames.embedding_store import shard_path
    from ml.frames.image_encoder import encoder_from_settings
    from ml.frames.stage import embed_batch

    rows = load_benchmark(folder)
    local = settings.with_overrides(data_root=folder)
    chunks = [rows[i : i + CHUNK_VIDEOS] for i in range(0, len(rows), CHUNK_VIDEOS)]
    paths = [shard_path(local.embeddings_dir, settings.image_encoder, f"chunk-{k:03d}") for k in range(len(chunks))]
    encoder = None
    for k, (chunk, path) in enumerate(zip(chunks, paths, strict=True)):
        if not path.is_file():
            encoder = encoder or encoder_from_settings(settings, beside_decoders=True)
            result = embed_batch(path.stem, [(r["video_id"], r["uri"]) for r in chunk], local, encoder=encoder)
            if result.failures:
                f = result.failures[0]
                raise ValueError(f"benchmark video {f.video_id} could not be embedded: {f.error_class}: {f.message}")
        if progress:
            progress("embed", min((k + 1) * CHUNK_VIDEOS, len(rows)), len(rows))
    return paths


def run_videos(
    shards: Sequence[Path], rows: Sequence[dict[str, Any]], predictor: Any | None, params: DetectorParams
) -> Iterator[VideoRun]:
    """Each benchmark video through the scene stage, streaming one shard's row group at a time.

    Without a ``predictor`` only the boundaries are found (no scene or video scores).
    """
    from ml.frames.embedding_store import iter_videos

    truth = {r["video_id"]: r for r in rows}
    for v in iter_videos(list(shards)):
        row = truth[v.video_id]
        duration = float(row["duration_s"])
        signals = {
            key: boundary_signal(v.embeddings, DetectorParams(method=key[0], window=key[1], metric=key[2]))
            for key in SIGNALS
        }
        started = time.process_time()
        scenes = detect_scenes(v.timestamps, v.embeddings, duration, params)
        scene_scores = None if predictor is None else score_scenes(predictor, v.embeddings, scenes)
        cpu = time.process_time() - started
        video_scores = None if predictor is None else next(iter(predictor.predict([v]))).scores
        yield VideoRun(
            v.video_id,
            row["split"],
            duration,
            [tuple(s) for s in row["scenes"]],
            v.timestamps,
            signals,
            scenes,
            scene_scores,
            video_scores,
            cpu,
        )


def sweep_detectors(videos: Sequence[VideoRun]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Boundary F1 at +-1 s of every swept detector on ``videos`` (gold): the best per signal, and the best."""

    def candidates() -> Iterator[tuple[tuple[str, int, str], dict[str, Any], list[list[float]]]]:
        for key in SIGNALS:
            for threshold, min_scene in itertools.product(THRESHOLDS, MIN_SCENE_S):
                p = DetectorParams(
                    method=key[0], window=key[1], metric=key[2], threshold=threshold, min_scene_s=min_scene
                )
                setting = {"method": key[0], "window": key[1], "metric": key[2], "threshold": threshold,
                           "min_scene_s": min_scene}  # fmt: skip
                yield key, setting, [pick_boundaries(v.signals[key], v.timestamps, v.duration_s, p) for v in videos]

    best, choice = best_boundary_settings(candidates(), [v.true_boundaries for v in videos])
    return list(best.values()), choice


def _bench_videos(
    settings: Any,
    seed: int,
    predictor: Any | None,
    params: DetectorParams,
    progress: Progress | None,
    sizes: tuple[int, int] = (GOLD_VIDEOS, LOCKED_VIDEOS),
) -> tuple[str, list[VideoRun]]:
    """Render (or reuse) the benchmark, embed (or reuse) its frames, and run every video through the stage."""
    render = (lambda d, n: progress("render", d, n)) if progress else None
    folder = build_benchmark(settings.data_root, seed, gold_videos=sizes[0], locked_videos=sizes[1], progress=render)
    rows = load_benchmark(folder)
    shards = embed_benchmark(folder, settings, progress)
    videos: list[VideoRun] = []
    for v in run_videos(shards, rows, predictor, params):
        videos.append(v)
        if progress:
            progress("scenes", len(videos), len(rows))
    return str(folder), videos


def evaluate_boundaries(
    settings: Any,
    *,
    seed: int = DEFAULT_SEED,
    params: DetectorParams = DEFAULT_DETECTOR,
    progress: Progress | None = None,
    sizes: tuple[int, int] = (GOLD_VIDEOS, LOCKED_VIDEOS),
) -> SegmentEvaluation:
    """Boundaries only (no student needed): the gold sweep and the locked share's boundary figures."""
    folder, videos = _bench_videos(settings, seed, None, params, progress, sizes)
    return _boundary_part(folder, videos, params)


def _boundary_part(folder: str, videos: list[VideoRun], params: DetectorParams) -> SegmentEvaluation:
    gold = [v for v in videos if v.split == "gold"]
    locked = [v for v in videos if v.split == "locked"]
    sweep, choice = sweep_detectors(gold)
    return SegmentEvaluation(
        bench=folder,
        detector=params.__dict__.copy(),
        gold_videos=len(gold),
        locked_videos=len(locked),
        sweep=sweep,
        gold_choice=choice,
        boundaries=boundary_scores([boundaries_of(v.scenes) for v in locked], [v.true_boundaries for v in locked]),
        breaks={
            "scenes_per_locked_video": sum(len(v.scenes) for v in locked) / max(1, len(locked)),
            "true_scenes_per_locked_video": sum(len(v.true_scenes) for v in locked) / max(1, len(locked)),
        },
        cost={"detect_score_cpu_s_per_video": sum(v.cpu_s for v in videos) / max(1, len(videos))},
    )


def evaluate_segments(
    settings: Any,
    catalog: Any,
    *,
    seed: int = DEFAULT_SEED,
    params: DetectorParams = DEFAULT_DETECTOR,
    progress: Progress | None = None,
    sizes: tuple[int, int] = (GOLD_VIDEOS, LOCKED_VIDEOS),
) -> SegmentEvaluation:
    """The benchmark through the scene stage: gold chooses and certifies, locked reports.

    ``sizes``: (gold, locked) videos; other than the default, a smaller benchmark of its own (tests).
    """
    from ml.visual.stage import load_predictor

    fusion, visual_record = _require_models(settings, catalog)
    predictor = load_predictor(str(visual_record.artifact_path))
    folder, videos = _bench_videos(settings, seed, predictor, params, progress, sizes)
    ev = _boundary_part(folder, videos, params)
    gold = [v for v in videos if v.split == "gold"]
    locked = [v for v in videos if v.split == "locked"]
    cats = list(predictor.categories)

    # Gold: the scene thresholds, certified on the gold videos' detected scenes.
    gold_scores = np.vstack([v.scene_scores for v in gold])
    gold_truth = np.vstack([scene_truth(v.scenes, v.true_scenes, cats) for v in gold])
    thresholds = certify_scene_thresholds(gold_scores, gold_truth, settings.threshold_policy())
    certified = [c for c, t in zip(cats, thresholds, strict=True) if t.enabled]

    # Locked: per-second categories, ours against the video's categories copied to every second.
    video_fired = _video_level(fusion, cats, np.vstack([v.video_scores for v in locked]))
    ours: list[set[str]] = []
    base: list[set[str]] = []
    truth: list[str] = []
    n_breaks = 0
    for v, fired in zip(locked, video_fired, strict=True):
        sets = [{cats[j] for j in np.flatnonzero(row)} for row in emitted(v.scene_scores, thresholds)]
        ours += second_sets(v.scenes, sets, v.duration_s)
        base += [{cats[j] for j in np.flatnonzero(fired)}] * int(v.duration_s)
        truth += second_truth(v.true_scenes, v.duration_s)
        n_breaks += len(ad_breaks(v.scenes, sets))
    on_certified = [i for i, t in enumerate(truth) if t in certified]

    def restricted(pred: list[set[str]]) -> dict[str, float]:
        return micro_scores([pred[i] for i in on_certified], [truth[i] for i in on_certified])

    locked_scores = np.vstack([v.scene_scores for v in locked])
    locked_truth = np.vstack([scene_truth(v.scenes, v.true_scenes, cats) for v in locked])
    ev.per_second = {
        "scenes": micro_scores(ours, truth),
        "video_copied": micro_scores(base, truth),
        "scenes_on_certified_categories": restricted(ours),
        "video_copied_on_certified_categories": restricted(base),
    }
    ev.segment_map = {**segment_map(locked_scores, locked_truth), "scenes": len(locked_scores)}
    ev.certified = {
        "categories": certified,
        "count": len(certified),
        "of": len(cats),
        "gold_scenes": len(gold_scores),
        "not_certified": {
            c: t.reason
            for j, (c, t) in enumerate(zip(cats, thresholds, strict=True))
            if not t.enabled and gold_truth[:, j].any()
        },
        "thresholds": {c: t.threshold for c, t in zip(cats, thresholds, strict=True) if t.enabled},
    }
    ev.breaks["per_locked_video"] = n_breaks / max(1, len(locked))
    ev.versions = {"visual_model": predictor.version, "fusion": fusion.version}
    return ev


def _video_level(fusion: Any, student_categories: Sequence[str], scores: np.ndarray) -> np.ndarray:
    """Bool ``(V, C)`` over the student's categories: the catalog's certified video-level visual decisions.

    Fusion's own frames-alone rule (``FusionModel.visual_fired``), so the baseline is what fusion would
    say of the video from its frames; categories fusion does not know never fire.
    """
    col = {c: j for j, c in enumerate(fusion.categories)}
    idx = np.array([col.get(c, -1) for c in student_categories])
    full = np.full((len(scores), len(fusion.categories)), np.nan)
    known = idx >= 0
    full[:, idx[known]] = scores[:, known]
    fired = fusion.model.visual_fired(full)
    out = np.zeros((len(scores), len(student_categories)), bool)
    out[:, known] = fired[:, idx[known]]
    return out


def format_segments(ev: SegmentEvaluation) -> str:
    """The table `vidcat eval-segments` (and `python -m bench segments`) prints."""
    b, ch, d = ev.boundaries, ev.gold_choice, ev.detector
    student = ev.versions.get("visual_model")
    lines = [
        f"Segment benchmark {ev.bench}: {ev.gold_videos} gold videos (choose, certify), "
        f"{ev.locked_videos} locked videos (report)." + (f" Student {student}." if student else ""),
        "",
        "Gold: the best boundary F1 at +-1 s of each detector (threshold and minimum scene length swept)",
        "| method | window | metric | threshold | min scene s | P | R | F1 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in ev.sweep:
        lines.append(
            f"| {s['method']} | {s['window']} | {s['metric']} | {s['threshold']:.2f} | {s['min_scene_s']:.0f} | "
            f"{s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} |"
        )
    lines += [
        f"Gold's best: {ch['method']} (window {ch['window']}, {ch['metric']}, threshold {ch['threshold']:.2f}, "
        f"min scene {ch['min_scene_s']:.0f} s), F1 {ch['f1']:.3f}. The stage's detector: {d['method']} "
        f"(window {d['window']}, {d['metric']}, threshold {d['threshold']:.2f}, min scene {d['min_scene_s']:.0f} s).",
    ]
    if ev.certified:
        lines.append(
            f"Scene thresholds certified on {ev.certified['gold_scenes']} gold scenes: {ev.certified['count']} of "
            f"{ev.certified['of']} categories."
        )
    lines += [
        "",
        "| locked share | figure | value | target |",
        "| --- | --- | --- | --- |",
        f"| boundaries at +-1 s | precision / recall / F1 | {b['precision']:.3f} / {b['recall']:.3f} / "
        f"{b['f1']:.3f} ({b['matched']} matched; {b['predicted']} found, {b['true']} true) | F1 >= 0.90 |",
    ]
    if not ev.per_second:
        lines.append("| per second, segment MAP | (need a trained student: run make demo first) | | |")
    else:
        ps, m = ev.per_second, ev.segment_map
        ours, copied = ps["scenes"], ps["video_copied"]
        ours_c, copied_c = ps["scenes_on_certified_categories"], ps["video_copied_on_certified_categories"]
        lines += [
            f"| per second, our scenes | micro precision / recall | {ours['precision']:.3f} / {ours['recall']:.3f} "
            f"({ours['seconds']} s) | P >= 0.90, R >= 0.80 |",
            f"| per second, the video's categories copied | micro precision / recall | {copied['precision']:.3f} / "
            f"{copied['recall']:.3f} | (baseline) |",
            f"| the same, seconds of scene-certified categories only ({ours_c['seconds']} s) | ours P / R; "
            f"copied P / R | {ours_c['precision']:.3f} / {ours_c['recall']:.3f}; {copied_c['precision']:.3f} / "
            f"{copied_c['recall']:.3f} | |",
            f"| segment MAP (every scene ranked per category) | MAP | {m['map']:.3f} ({m['categories']} categories, "
            f"{m['scenes']} scenes) | (reported) |",
            f"| ad breaks | per video | {ev.breaks['per_locked_video']:.2f} | |",
        ]
    lines += [
        f"| scenes | per video, found / true | {ev.breaks['scenes_per_locked_video']:.2f} / "
        f"{ev.breaks['true_scenes_per_locked_video']:.2f} | |",
        f"| cost | detect + score CPU per video | {ev.cost['detect_score_cpu_s_per_video'] * 1000:.1f} ms | |",
    ]
    return "\n".join(lines)
