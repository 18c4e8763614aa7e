"""Scene thresholds certified on the catalog's gold scenes: what the `scene_thresholds` asset runs.

The promise is the video sentence with scenes for videos (``policy.promise("scenes")``, which also says
that the bound takes scenes as independent), so the thresholds come from the same
policy (`Settings.threshold_policy`, `ml/thresholds.py`) applied by ``certify.certify_scene_thresholds``
to the student's scores of the scenes the detector finds in gold videos, judged against the ranges an
editor verified (`ml/catalog/gold_scenes.py`; a scene is a positive where a category covers most of
it). Gold's locked-test share, videos with editor labels (they train) and gold the student learnt
from (spot-checked pool videos imported after it trained: ``student_trained_on``, counted as fusion
counts them) are left out.

A category with too few verified scenes gets no scene threshold (the reason and the positives it
lacks are kept), and a scene is then given no category for it: the scene keeps its scores, never an
invented label. Thresholds belong to one student version: after a retraining, scenes carry scores
and no category until this runs again (`vidcat backfill --train` does).

Stored as the video thresholds are: rows of the `thresholds` table (source ``scene``), a JSON file under
``models/scene_thresholds/`` with every threshold's reason, and a `model_registry` entry
(``scene_thresholds``) naming the student and the detector.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ml.catalog.batching import batches_of
from ml.catalog.gold_scenes import scene_ranges
from ml.catalog.holdout import locked_test_ids, student_trained_on
from ml.catalog.labels import editor_labelled
from ml.catalog.model_registry import ModelRecord, latest_model, new_version, register_model_in
from ml.catalog.segments import write_scene_thresholds
from ml.catalog.store import Catalog
from ml.catalog.videos import probed_durations
from ml.segments.certify import certify_scene_thresholds, scene_truth
from ml.segments.detect import DEFAULT_DETECTOR, DetectorParams, detect_scenes
from ml.segments.score import score_scenes
from ml.thresholds import Threshold, ThresholdPolicy

MODEL_NAME = "scene_thresholds"
MIN_SHARE = 0.5  # a scene is a positive for a category covering at least half of it (certify.scene_truth)
NO_THRESHOLD = "no certified scene threshold"


@dataclass
class SceneThresholds:
    """One certified set: a threshold per student category (``enabled`` False: not emitted for scenes)."""

    version: str
    visual_version: str
    categories: list[str]
    thresholds: list[Threshold]
    gold_videos: int = 0
    gold_scenes: int = 0
    detector: dict[str, Any] = field(default_factory=dict)
    # Gold videos with verified ranges left out because this student learnt from them (``gold_scenes``).
    student_trained_on: int = 0

    @property
    def certified(self) -> list[str]:
        return [c for c, t in zip(self.categories, self.thresholds, strict=True) if t.enabled]

    def gaps(self) -> list[dict[str, Any]]:
        """Categories with verified positive scenes but no threshold: why, and the positives they lack."""
        return [
            {"category_id": c, "gold_scenes": t.positives, "more_positives": t.more_positives, "reason": t.reason}
            for c, t in zip(self.categories, self.thresholds, strict=True)
            if not t.enabled and t.positives
        ]


@dataclass
class GoldScenes:
    """The gold videos' detected scenes, scored and judged: what the thresholds are certified on."""

    videos: list[str]
    scores: np.ndarray  # (S, C), student categories
    truth: np.ndarray  # (S, C) bool
    ranges_past_end: int = 0  # verified ranges beyond the probed end, left out
    without_frames: int = 0  # gold videos with ranges whose frames are not stored (yet)
    student_trained_on: int = 0  # gold videos with ranges the student learnt from, left out


def gold_scenes(
    catalog: Catalog,
    settings: Any,
    predictor: Any,
    params: DetectorParams = DEFAULT_DETECTOR,
    visual_version: str | None = None,
) -> GoldScenes:
    """Detect and score the scenes of every certifiable gold video with verified ranges, from its stored frames.

    ``visual_version`` names the student behind ``predictor``: gold it learnt from is left out and
    counted, since its scores there are not held out.
    """
    from ml.frames.embedding_store import iter_videos, shard_path
    from ml.visual.stage import load_meta

    exclude = locked_test_ids(catalog) | editor_labelled(catalog)
    ranges = scene_ranges(catalog, exclude=exclude)
    trained = student_trained_on(catalog, visual_version) & set(ranges)
    for vid in trained:
        del ranges[vid]
    ids = sorted(ranges)
    batch_of = batches_of(catalog, ids)
    durations = probed_durations(catalog, ids)
    meta = load_meta(catalog, ids) if ids else {}
    cats = list(predictor.categories)
    by_batch: dict[str, list[str]] = {}
    for vid in ids:
        if vid in batch_of:
            by_batch.setdefault(batch_of[vid], []).append(vid)
    videos: list[str] = []
    scores: list[np.ndarray] = []
    truth: list[np.ndarray] = []
    past_end = 0
    for batch_id, members in sorted(by_batch.items()):
        shard = shard_path(settings.embeddings_dir, settings.image_encoder, batch_id)
        if not shard.exists():
            continue
        for v in iter_videos(shard, video_ids=members):
            if v.n_frames == 0:
                continue
            scenes = detect_scenes(v.timestamps, v.embeddings, durations.get(v.video_id), params, settings.fps)
            end = scenes[-1].end_s
            kept = [r for r in ranges[v.video_id] if r[0] < end]
            past_end += len(ranges[v.video_id]) - len(kept)
            videos.append(v.video_id)
            scores.append(score_scenes(predictor, v.embeddings, scenes, meta.get(v.video_id)))
            truth.append(scene_truth(scenes, kept, cats, MIN_SHARE))
    n = len(cats)
    return GoldScenes(
        videos,
        np.vstack(scores) if scores else np.zeros((0, n), np.float32),
        np.vstack(truth) if truth else np.zeros((0, n), bool),
        past_end,
        len(ids) - len(videos),
        len(trained),
    )


def certify_on_gold(
    catalog: Catalog,
    settings: Any,
    record: ModelRecord,
    policy: ThresholdPolicy,
    params: DetectorParams = DEFAULT_DETECTOR,
) -> tuple[SceneThresholds, GoldScenes]:
    """Certify scene thresholds for student ``record`` on gold scenes and store them (one transaction)."""
    from ml.visual.stage import load_predictor

    predictor = load_predictor(str(record.artifact_path))
    gold = gold_scenes(catalog, settings, predictor, params, record.version)
    thresholds = certify_scene_thresholds(gold.scores, gold.truth, policy)
    cats = list(predictor.categories)
    version = new_version(MODEL_NAME, record.version, gold.videos, int(gold.truth.sum()), policy.promise("scenes"))
    result = SceneThresholds(
        version,
        record.version,
        cats,
        thresholds,
        len(gold.videos),
        len(gold.scores),
        params.__dict__.copy(),
        gold.student_trained_on,
    )
    path = Path(settings.models_dir) / MODEL_NAME / f"{version}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_as_json(result, policy), default=str))
    tmp.replace(path)
    rows = [
        (c, t.threshold, t.precision, t.recall, t.positives, t.lower_bound, t.enabled)
        for c, t in zip(cats, thresholds, strict=True)
    ]
    with catalog.transaction() as con:
        write_scene_thresholds(con, version, rows)
        register_model_in(
            con,
            MODEL_NAME,
            version,
            path,
            cats,
            params={"visual_model": record.version, "detector": result.detector, "min_share": MIN_SHARE},
            metrics={
                "certified": len(result.certified),
                "gold_videos": result.gold_videos,
                "gold_scenes": result.gold_scenes,
                "promise": policy.promise("scenes"),
            },
            training_data={"gold_videos": gold.videos, "student_trained_on_excluded": gold.student_trained_on},
        )
    return result, gold


def _as_json(t: SceneThresholds, policy: ThresholdPolicy) -> dict[str, Any]:
    return {
        "version": t.version,
        "visual_model": t.visual_version,
        "categories": t.categories,
        "thresholds": [x.as_dict() for x in t.thresholds],
        "gold_videos": t.gold_videos,
        "gold_scenes": t.gold_scenes,
        "detector": t.detector,
        "student_trained_on_excluded": t.student_trained_on,
        "min_share": MIN_SHARE,
        "promise": policy.promise("scenes"),
    }


def load_scene_thresholds(path: Path) -> SceneThresholds:
    d = json.loads(Path(path).read_text())
    return SceneThresholds(
        d["version"],
        d["visual_model"],
        list(d["categories"]),
        [Threshold(**x) for x in d["thresholds"]],
        int(d.get("gold_videos", 0)),
        int(d.get("gold_scenes", 0)),
        dict(d.get("detector", {})),
        int(d.get("student_trained_on_excluded", 0)),
    )


def current_scene_thresholds(catalog: Catalog, visual_version: str | None = None) -> SceneThresholds | None:
    """The newest scene thresholds, if they were certified for student ``visual_version`` (any when None).

    None: nothing certified for that student yet (scenes then get scores and no category).
    """
    record = latest_model(catalog, MODEL_NAME, required=False)
    if record is None or (visual_version is not None and record.params.get("visual_model") != visual_version):
        return None
    return load_scene_thresholds(record.artifact_path)


def scene_threshold_state(catalog: Catalog) -> str:
    """One line for `vidcat status`: which scene thresholds hold, or why scenes get no category."""
    record = latest_model(catalog, MODEL_NAME, required=False)
    student = latest_model(catalog, "visual_model", required=False)
    if record is None:
        return f"none yet: scenes carry scores but no category ({NO_THRESHOLD}; materialize `scene_thresholds`)"
    m = record.metrics
    line = (
        f"{record.version}: {m.get('certified', 0)} of {len(record.categories)} categories certified on "
        f"{m.get('gold_scenes', 0)} scenes of {m.get('gold_videos', 0)} gold videos"
    )
    if student is not None and record.params.get("visual_model") != student.version:
        line += (
            f"; certified for student {record.params.get('visual_model')}, not the current {student.version}: "
            "scenes carry scores but no category until `vidcat backfill --train`"
        )
    return line


def certified_summary(t: SceneThresholds) -> dict[str, Any]:
    """What the asset and the CLI show of one certified set."""
    return {
        "version": t.version,
        "visual_model": t.visual_version,
        "certified": len(t.certified),
        "of": len(t.categories),
        "gold_videos": t.gold_videos,
        "gold_scenes": t.gold_scenes,
        "not_certified": t.gaps(),
    }
