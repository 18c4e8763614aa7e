"""The visual stages on catalog data: train the student on pseudo-labels, score a batch's shard."""

from __future__ import annotations

import datetime as dt
import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.catalog.labels import label_matrix
from ml.catalog.model_registry import ModelRecord, latest_model, register_model
from ml.catalog.store import Catalog, delete_where_in, insert_rows
from ml.frames.embedding_store import list_shards, shard_path


@dataclass
class StudentResult:
    version: str
    model_dir: Path
    categories: list[str]
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    param_count: int
    train_seconds: float
    training_videos: int
    gold: dict[str, dict[str, float]]
    teacher_version: str


def load_meta(catalog: Catalog, video_ids: list[str] | None = None) -> dict[str, np.ndarray]:
    """Metadata vectors of ``video_ids`` (scoring a batch), or of every video (training)."""
    from ml.visual.meta import META_QUERY, meta_by_video

    if video_ids is None:
        return meta_by_video(catalog.query(META_QUERY))
    return meta_by_video(
        catalog.query(META_QUERY + " WHERE v.video_id IN (SELECT unnest(?::VARCHAR[]))", [list(video_ids)])
    )


def student_categories(rows: list[tuple], ws_ids: list[str], min_positives: int) -> list[str]:
    """Categories with enough positive pseudo-labels to learn, in working-set order."""
    counts: dict[str, int] = {}
    for _, c, _target, kind in rows:
        if kind == "positive":
            counts[c] = counts.get(c, 0) + 1
    return [c for c in ws_ids if counts.get(c, 0) >= min_positives]


def train_student(
    catalog: Catalog,
    settings,
    ws_ids: list[str],
    *,
    arch: str | None = None,
    baseline: bool = True,
    progress_bar: bool = False,
) -> StudentResult:
    """Train on every pseudo-labelled video with embeddings; report on gold; register the model."""
    from ml.visual.data import targets_from_rows
    from ml.visual.model import MODEL_NAME, VisualTrainConfig, train_visual_model

    teacher = latest_model(catalog, "text_model")
    assert teacher is not None
    rows = catalog.query(
        "SELECT video_id, category_id, target, kind FROM pseudo_labels WHERE model_version = ?", [teacher.version]
    )
    categories = student_categories(rows, ws_ids, settings.visual_min_positives)
    if not categories:
        raise ValueError(
            f"no category has {settings.visual_min_positives} positive pseudo-labels from teacher {teacher.version}; "
            "materialize pseudo_labels for more batches or lower visual_min_positives"
        )
    # The teacher's silence (neither confident positive nor confident negative) is unknown, not negative.
    targets = targets_from_rows([(v, c, t) for v, c, t, _ in rows], categories, unknown=np.nan)
    shards = list_shards(settings.embeddings_dir, settings.image_encoder)
    meta = load_meta(catalog)
    config = VisualTrainConfig(
        arch=arch or settings.visual_arch, max_epochs=settings.visual_max_epochs, enable_progress_bar=progress_bar
    )
    out_dir = settings.models_dir / MODEL_NAME
    result = train_visual_model(shards, targets, meta, categories, config, out_dir)
    fields = result.registry_fields()
    fields["training_data"]["teacher_version"] = teacher.version
    # Features of another encoder can have the same width: the model must know which ones it learnt.
    fields["params"]["image_encoder"] = settings.image_encoder
    gold = {result.arch: gold_report(catalog, result.model_dir, categories, shards, meta)}
    if baseline and result.arch != "meanpool":
        base = train_visual_model(
            shards,
            targets,
            meta,
            categories,
            VisualTrainConfig(**{**config.to_dict(), "arch": "meanpool"}),
            settings.models_dir / "visual_baseline",
        )
        gold["meanpool"] = gold_report(catalog, base.model_dir, categories, shards, meta)
        gold["meanpool"]["train_seconds"] = base.train_seconds
    fields["metrics"]["gold"] = gold
    register_model(catalog, MODEL_NAME, result.version, result.model_dir, result.categories, **fields)
    return StudentResult(
        result.version,
        result.model_dir,
        list(result.categories),
        result.metrics,
        result.history,
        result.param_count,
        result.train_seconds,
        int(result.videos.get("train", 0)) + int(result.videos.get("val", 0)),
        gold,
        teacher.version,
    )


def gold_report(
    catalog: Catalog, model_dir: Path, categories: list[str], shards: list[Path], meta: dict[str, np.ndarray]
) -> dict[str, float]:
    """GAP@20 and mAP of the model on the gold set: the truth the pseudo-labels only approximate."""
    from ml.metrics import gap_at_k, mean_average_precision
    from ml.visual.predictor import VisualPredictor

    ids, y = label_matrix(catalog, "gold", categories)
    if not ids:
        return {"videos": 0}
    scores = {s.video_id: s.scores for s in VisualPredictor(model_dir).predict_shards(shards, meta, video_ids=ids)}
    keep = [i for i, v in enumerate(ids) if v in scores]
    if not keep:
        return {"videos": 0}
    s = np.stack([scores[ids[i]] for i in keep])
    labels = y[keep]
    return {
        "videos": len(keep),
        "gap_at_20": float(gap_at_k(s, labels, 20)),
        "map": float(mean_average_precision(s, labels)),
    }


@functools.lru_cache(maxsize=2)
def load_predictor(model_dir: str):
    """One load per process and version: the ONNX session stays warm across batches."""
    from ml.visual.predictor import VisualPredictor

    return VisualPredictor(Path(model_dir))


@dataclass
class VisualBatchResult:
    videos: int
    scored: int
    seconds: float


def score_batch_visual(
    catalog: Catalog,
    record: ModelRecord,
    settings,
    batch_id: str,
    meta: dict[str, np.ndarray] | None = None,
    engine=None,
) -> VisualBatchResult:
    """Write `visual_predictions` for every video of the batch's shard (videos without frames get no row)."""
    trained_on = record.params.get("image_encoder")
    if trained_on is not None and trained_on != settings.image_encoder:
        raise ValueError(
            f"visual model {record.version} learnt {trained_on} features, the pipeline now makes "
            f"{settings.image_encoder} ones; retrain with `vidcat backfill --train` or set image_encoder back"
        )
    shard = shard_path(settings.embeddings_dir, settings.image_encoder, batch_id)
    members = [r[0] for r in catalog.query("SELECT video_id FROM batch_members WHERE batch_id = ?", [batch_id])]
    if not shard.exists():
        raise FileNotFoundError(f"no embedding shard for {batch_id} at {shard}; materialize frame_embeddings first")
    meta = meta if meta is not None else load_meta(catalog, members)
    started = time.monotonic()
    if engine is None:
        scores = load_predictor(str(record.artifact_path)).predict_shards([shard], meta)
    else:
        scores = engine.score_visual(batch_id, Path(record.artifact_path), [shard], meta)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = [
        (s.video_id, record.version, batch_id, int(s.n_frames), np.asarray(s.scores, np.float32).tolist(), now)
        for s in scores
    ]
    seconds = time.monotonic() - started
    with catalog.transaction() as con:
        delete_where_in(con, "visual_predictions", "video_id", members, "AND model_version = ?", [record.version])
        insert_rows(
            con,
            "visual_predictions",
            ["video_id", "model_version", "batch_id", "n_frames", "scores", "predicted_at"],
            rows,
        )
    return VisualBatchResult(len(members), len(rows), seconds)
