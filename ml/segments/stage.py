"""The scene stage on catalog data: every video of a batch cut into scenes, scored, given categories.

What the `segment_predictions` asset runs, and what `vidcat classify --segments` runs on one file
(``segment_video``). It reads the batch's embedding shard, the frames the frame stage already
decoded and encoded (no second decode): boundaries (`detect.detect_scenes`), the student over each
scene (`score.score_scenes`), the scene thresholds certified for that student
(`certification.current_scene_thresholds`), and the suggested mid-roll breaks (`breaks.ad_breaks`).

A scene is given no category, and says why (``abstained``), when no scene threshold is certified for
the student, when the student abstains on the whole video (out of distribution, as fusion does for the
video's own visual categories), or when the scene holds no sampled frame (past the frame cap). A video
that cannot be segmented (its embeddings do not fit the student, say) is recorded in `failures`
(stage ``segments``) and the rest of the batch goes on. One transaction per batch deletes the batch's
rows for the student version and inserts the new ones: re-running a batch replaces its scenes.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ml.catalog.batching import batch_video_ids
from ml.catalog.failures import Failure, record_stage_outcome
from ml.catalog.model_registry import ModelRecord
from ml.catalog.scores import ood_rows
from ml.catalog.segments import replace_batch_segments
from ml.catalog.store import Catalog
from ml.catalog.videos import probed_durations
from ml.cores import available_cores
from ml.segments.breaks import ad_breaks
from ml.segments.certification import NO_THRESHOLD, SceneThresholds, current_scene_thresholds
from ml.segments.certify import best_category, scene_categories
from ml.segments.detect import DEFAULT_DETECTOR, DetectorParams, detect_scenes
from ml.segments.scenes import Scene
from ml.segments.score import score_scenes

STAGE = "segments"
OUT_OF_DISTRIBUTION = "out_of_distribution: the student abstains on these frames"
NO_FRAMES = "no_frames: no sampled frame in this scene"
SCENE_CHUNK = 64  # videos whose frames are in memory at once while the batch is segmented


@dataclass
class VideoSegments:
    """One video's scenes with their scores, categories (best first), abstentions and suggested breaks."""

    scenes: list[Scene]
    scores: np.ndarray  # (S, C) over the student's categories; NaN rows: scenes without frames
    categories: list[list[tuple[str, float]]]
    abstained: list[str | None]
    breaks: list[float]
    # per scene, the student's best category, its score and whether it has a certified scene threshold
    top: list[tuple[str, float, bool] | None] = field(default_factory=list)

    def as_dicts(self) -> list[dict[str, Any]]:
        """JSON-ready scenes, as `vidcat classify --segments --json` prints them."""
        brk = set(self.breaks)
        return [
            {
                "scene_index": k,
                "start_s": round(s.start_s, 3),
                "end_s": round(s.end_s, 3),
                "n_frames": s.n_frames,
                "categories": [{"id": c, "score": round(float(x), 4)} for c, x in cats],
                "abstained": why,
                "break_before": s.start_s in brk,
                "top": None if top is None else {"id": top[0], "score": round(top[1], 4), "certified": top[2]},
            }
            for k, (s, cats, why, top) in enumerate(
                zip(self.scenes, self.categories, self.abstained, self.top or [None] * len(self.scenes), strict=True)
            )
        ]


def segment_video(
    predictor: Any,
    timestamps: np.ndarray,
    embeddings: np.ndarray,
    duration_s: float | None,
    meta: np.ndarray | None,
    thresholds: SceneThresholds | None,
    *,
    out_of_distribution: bool = False,
    params: DetectorParams = DEFAULT_DETECTOR,
    fps: float = 1.0,
) -> VideoSegments:
    """Scenes of one video from its stored frame embeddings, scored and thresholded; raises if it cannot."""
    scenes = detect_scenes(timestamps, embeddings, duration_s, params, fps)
    scores = score_scenes(predictor, embeddings, scenes, meta)
    cats = list(predictor.categories)
    if thresholds is not None and thresholds.categories != cats:
        raise ValueError(f"scene thresholds {thresholds.version} are over other categories than the student's")
    named = scene_categories(scores, thresholds.thresholds, cats) if thresholds is not None else []
    col = {c: j for j, c in enumerate(cats)}
    given: list[list[tuple[str, float]]] = []
    abstained: list[str | None] = []
    for k, (scene, row) in enumerate(zip(scenes, scores, strict=True)):
        why = None
        if thresholds is None or not thresholds.certified:
            why = NO_THRESHOLD
        elif out_of_distribution:
            why = OUT_OF_DISTRIBUTION
        elif scene.n_frames == 0 or not np.isfinite(row).any():
            why = NO_FRAMES
        given.append([] if why else [(c, float(row[col[c]])) for c in named[k]])
        abstained.append(why)
    breaks = ad_breaks(scenes, [[c for c, _ in g] for g in given])
    certified = set(thresholds.certified) if thresholds is not None else set()
    top = [best_category(row, cats, certified) for row in scores]
    return VideoSegments(scenes, scores, given, abstained, breaks, top)


@dataclass
class SegmentBatchResult:
    batch_id: str
    videos: int = 0  # members with stored frames
    segmented: int = 0
    scenes: int = 0
    with_category: int = 0  # scenes given at least one category
    breaks: int = 0
    failures: list[Failure] = field(default_factory=list)
    thresholds_version: str | None = None
    seconds: float = 0.0


def segment_batch(
    catalog: Catalog,
    settings: Any,
    record: ModelRecord,
    batch_id: str,
    *,
    params: DetectorParams = DEFAULT_DETECTOR,
) -> SegmentBatchResult:
    """Write `segment_predictions` for every video of the batch's shard with student ``record``."""
    from ml.frames.embedding_store import iter_videos, shard_path
    from ml.visual.stage import load_meta, load_predictor

    shard = shard_path(settings.embeddings_dir, settings.image_encoder, batch_id)
    if not shard.exists():
        raise FileNotFoundError(f"no embedding shard for {batch_id} at {shard}; materialize frame_embeddings first")
    started = time.monotonic()
    predictor = load_predictor(str(record.artifact_path))
    thresholds = current_scene_thresholds(catalog, record.version)
    members = batch_video_ids(catalog, batch_id)
    meta = load_meta(catalog, members)
    durations = probed_durations(catalog, members)
    ood = ood_rows(catalog, record.version, members)
    result = SegmentBatchResult(batch_id, thresholds_version=thresholds.version if thresholds else None)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if thresholds is not None and thresholds.categories != list(predictor.categories):
        raise ValueError(
            f"scene thresholds {thresholds.version} are over other categories than student {record.version}'s; "
            "materialize scene_thresholds for this student first"
        )
    rows: list[tuple] = []
    done: list[str] = []

    def one(v: Any) -> tuple[Any, VideoSegments | Exception]:
        try:
            return v, segment_video(
                predictor,
                v.timestamps,
                v.embeddings,
                durations.get(v.video_id),
                meta.get(v.video_id),
                thresholds,
                out_of_distribution=bool(ood.get(v.video_id, (False, None))[0]),
                params=params,
                fps=settings.fps,
            )
        except Exception as exc:  # one video's failure is recorded, the batch goes on
            return v, exc

    for v, seg in _threaded(one, iter_videos(shard)):
        result.videos += 1
        if isinstance(seg, Exception):
            result.failures.append(Failure.from_exception(v.video_id, STAGE, seg))
            continue
        done.append(v.video_id)
        brk = set(seg.breaks)
        for k, (s, row, given, why) in enumerate(
            zip(seg.scenes, seg.scores, seg.categories, seg.abstained, strict=True)
        ):
            rows.append(
                (
                    v.video_id,
                    record.version,
                    k,
                    s.start_s,
                    s.end_s,
                    s.n_frames,
                    np.asarray(row, np.float32).tolist() if np.isfinite(row).any() else None,
                    [c for c, _ in given],
                    [float(x) for _, x in given],
                    s.start_s in brk,
                    why,
                    result.thresholds_version,
                    batch_id,
                    now,
                )
            )
        result.segmented += 1
        result.scenes += len(seg.scenes)
        result.with_category += sum(bool(g) for g in seg.categories)
        result.breaks += len(seg.breaks)
    with catalog.transaction() as con:
        replace_batch_segments(con, members, record.version, rows)
        record_stage_outcome(con, STAGE, batch_id, done, result.failures)
    result.seconds = time.monotonic() - started
    return result


def _threaded(fn: Callable[[Any], Any], items: Iterable[Any], chunk: int = SCENE_CHUNK) -> Iterator[Any]:
    """``fn`` over ``items`` on one thread per core, in order, ``chunk`` items in memory at a time.

    The step runs alone in its run's process (the in-process executor runs steps one after another), and
    onnxruntime and numpy release the GIL for the work: one thread per core makes the stage take half
    the wall time on two cores, where more intra-op threads in one session made the student slower
    (ml/visual/predictor.py). Chunks keep a batch of thousands of videos' frames out of memory.
    """
    it = iter(items)
    with ThreadPoolExecutor(max_workers=available_cores()) as pool:
        while part := list(itertools.islice(it, chunk)):
            yield from pool.map(fn, part)
