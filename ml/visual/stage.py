"""The visual stages on catalog data: train the student on every honest label, score a batch's shard."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ml.catalog.holdout import assert_trainable
from ml.catalog.labels import label_matrix
from ml.catalog.model_registry import ModelRecord, latest_model, register_model
from ml.catalog.store import Catalog, delete_where_in, insert_rows
from ml.frames.embedding_store import list_shards, shard_path
from ml.visual.targets import (
    StudentTargets,
    TargetPolicy,
    build_targets,
    editor_targets,
    pseudo_targets,
    self_training_targets,
)


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
    teacher_version: str | None
    sources: dict[str, int] = field(default_factory=dict)
    self_training: dict[str, Any] = field(default_factory=dict)
    ood: dict[str, Any] = field(default_factory=dict)


class NotEnoughLabels(ValueError):
    """Too little labelled data for the student: a state of the catalog, reported with what is missing."""


STATE_FILE = "NOT_TRAINED.json"


def record_not_trained(models_dir: Path, reason: str) -> Path:
    """Say why there is no student (read by `vidcat status`); removed when one is trained."""
    import json

    path = Path(models_dir) / "visual_model" / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"reason": reason, "at": stamp}))
    tmp.replace(path)
    return path


def not_trained_reason(models_dir: Path) -> str | None:
    import json

    path = Path(models_dir) / "visual_model" / STATE_FILE
    return json.loads(path.read_text())["reason"] if path.is_file() else None


def load_meta(catalog: Catalog, video_ids: list[str] | None = None) -> dict[str, np.ndarray]:
    """Metadata vectors of ``video_ids`` (scoring a batch), or of every video (training)."""
    from ml.visual.meta import META_QUERY, meta_by_video

    if video_ids is None:
        return meta_by_video(catalog.query(META_QUERY))
    return meta_by_video(
        catalog.query(META_QUERY + " WHERE v.video_id IN (SELECT unnest(?::VARCHAR[]))", [list(video_ids)])
    )


@dataclass
class StudentInputs:
    """Everything the student learns from, read from the catalog (or built by an evaluation)."""

    categories: list[str]  # candidate categories, working-set order
    editor: dict[str, np.ndarray]  # video -> editor targets over ``categories``
    pseudo: tuple[dict[str, np.ndarray], dict[str, np.ndarray]]  # (targets, weights) from the teacher
    held_out: frozenset[str]
    teacher_version: str | None = None


def student_inputs(catalog: Catalog, ws_ids: list[str], policy: TargetPolicy) -> StudentInputs:
    from ml.catalog.holdout import held_out_ids

    teacher = latest_model(catalog, "text_model", required=False)
    editor_rows = catalog.query(
        "SELECT video_id, category_id, is_positive FROM human_labels WHERE label_set = 'editor'"
    )
    exhaustive = [
        r[0] for r in catalog.query("SELECT video_id FROM label_coverage WHERE label_set = 'editor' AND exhaustive")
    ]
    labelled = {c for _, c, pos in editor_rows if pos}
    covered = labelled | set(teacher.categories if teacher is not None else [])
    categories = [c for c in ws_ids if c in covered]
    editor = editor_targets(editor_rows, exhaustive, categories) if policy.editor_labels else {}
    pseudo: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] = ({}, {})
    if policy.pseudo_labels and teacher is not None:
        rows = catalog.query(
            "SELECT video_id, category_id, target, weight, kind FROM pseudo_labels WHERE model_version = ?",
            [teacher.version],
        )
        pseudo = pseudo_targets(rows, categories, policy)
    return StudentInputs(categories, editor, pseudo, held_out_ids(catalog), teacher.version if teacher else None)


@dataclass
class StudentFit:
    result: Any  # ml.visual.model.TrainResult of the kept model
    targets: StudentTargets
    categories: list[str]
    self_training: dict[str, Any]
    ood: dict[str, Any]


def fit_student(
    shards: list[Path],
    inputs: StudentInputs,
    policy: TargetPolicy,
    config: Any,  # ml.visual.network.VisualTrainConfig
    out_dir: Path,
    *,
    meta: dict[str, np.ndarray] | None = None,
    min_positives: int = 5,
    self_precision: float = 0.9,
    self_min_support: int = 3,
    negative_max_score: float = 0.05,
    ood_flag_share: float = 0.03,
    ood_k: int = 5,
) -> StudentFit:
    """Targets -> round one -> out-of-distribution detector -> certified self-training -> round two.

    Self-training labels come from round one's calls on videos no other source labels, accepted per
    category only above a cut whose precision's lower bound reaches ``self_precision`` on round one's
    *validation* videos with editor labels: held-out human labels, never gold, so gold stays out of
    every training decision. Videos the detector flags out of distribution are never self-labelled.
    When nothing is accepted, round one is the model.
    """
    import shutil

    from ml.frames.embedding_store import iter_videos
    from ml.thresholds import ThresholdPolicy, select_threshold
    from ml.visual.data import split_ids
    from ml.visual.model import train_visual_model
    from ml.visual.ood import fit_detector, pooled_by_video
    from ml.visual.predictor import VisualPredictor

    all_targets = build_targets(inputs.categories, inputs.editor, inputs.pseudo, inputs.held_out, policy)
    counts = all_targets.positives()
    keep = [j for j, n in enumerate(counts) if n >= min_positives]
    if not keep:
        best = int(counts.max()) if len(counts) else 0
        raise NotEnoughLabels(
            f"no category has {min_positives} positive targets among {len(all_targets.targets)} trainable videos "
            f"(the best has {best}): add editor labels, let more batches be pseudo-labelled, or lower "
            "visual_min_positives"
        )
    categories = [inputs.categories[j] for j in keep]
    targets = StudentTargets(categories)
    for v, t in all_targets.targets.items():
        targets.add(v, t[keep], all_targets.weights[v][keep], all_targets.source[v])

    first = train_visual_model(shards, targets.targets, meta, categories, config, out_dir, weights=targets.weights)
    train_ids, val_ids = split_ids(targets.targets, config.val_fraction, config.split_salt)

    # Out-of-distribution reference: the training videos; calibration: validation + leave-one-out.
    from ml.visual.ood import MAX_REFERENCE

    rng = np.random.default_rng(config.seed)
    ref_ids = (
        train_ids
        if len(train_ids) <= MAX_REFERENCE
        else sorted(map(str, rng.choice(train_ids, MAX_REFERENCE, replace=False)))
    )
    cal_ids = val_ids if len(val_ids) <= 2000 else sorted(map(str, rng.choice(val_ids, 2000, replace=False)))
    pooled = pooled_by_video(iter_videos(shards, video_ids=set(ref_ids) | set(cal_ids)))
    detector = fit_detector(
        {v: pooled[v] for v in ref_ids if v in pooled},
        {v: pooled[v] for v in cal_ids if v in pooled},
        k=ood_k,
        flag_share=ood_flag_share,
        seed=config.seed,
    )
    detector.save(first.model_dir)

    report: dict[str, Any] = {"enabled": policy.self_training, "accepted_videos": 0, "certified_categories": []}
    result = first
    if policy.self_training:
        predictor = VisualPredictor(first.model_dir)
        val_editor = [v for v in val_ids if targets.source.get(v) == "editor"]
        val_scores = {s.video_id: s.scores for s in predictor.predict_shards(shards, meta, video_ids=val_editor)}
        check = ThresholdPolicy(target_precision=self_precision, min_support=self_min_support, objective="recall")
        cuts = np.full(len(categories), np.inf)
        if val_scores:
            ids = sorted(val_scores)
            s = np.stack([val_scores[v] for v in ids])
            y = np.stack([targets.targets[v] for v in ids])
            for j in range(len(categories)):
                known = ~np.isnan(y[:, j])
                t = select_threshold(s[known, j], y[known, j] > 0.5, check)
                if t.enabled:
                    cuts[j] = t.threshold
        report["checked_on_videos"] = len(val_scores)
        report["certified_categories"] = [c for c, cut in zip(categories, cuts, strict=True) if np.isfinite(cut)]
        if np.isfinite(cuts).any():
            pool = {
                sc.video_id: sc.scores
                for sc in predictor.predict_shards(shards, meta)
                if sc.video_id not in inputs.held_out
                and sc.video_id not in targets.targets
                and sc.n_frames > 0
                and not sc.out_of_distribution
            }
            self_t, self_w = self_training_targets(pool, cuts, negative_max_score, policy.self_weight)
            report["pool_videos"] = len(pool)
            report["accepted_videos"] = len(self_t)
            if self_t:
                for v, t in self_t.items():
                    targets.add(v, t, self_w[v], "self")
                assert_trainable(targets.targets, inputs.held_out, "self-training")
                result = train_visual_model(
                    shards, targets.targets, meta, categories, config, out_dir, weights=targets.weights
                )
                detector.save(result.model_dir)
                shutil.rmtree(first.model_dir, ignore_errors=True)
    return StudentFit(result, targets, categories, report, dict(detector.calibration, threshold=detector.threshold))


def train_student(
    catalog: Catalog,
    settings,
    ws_ids: list[str],
    *,
    arch: str | None = None,
    progress_bar: bool = False,
) -> StudentResult:
    """Train on every honest label (never gold or the locked test); report on gold; register the model."""
    from ml.visual.model import MODEL_NAME
    from ml.visual.network import VisualTrainConfig

    policy = TargetPolicy.from_settings(settings)
    inputs = student_inputs(catalog, ws_ids, policy)
    shards = list_shards(settings.embeddings_dir, settings.image_encoder)
    if not shards:
        raise NotEnoughLabels("no frame embeddings yet: materialize frame_embeddings for at least one batch")
    meta = load_meta(catalog)
    config = VisualTrainConfig(
        arch=arch or settings.visual_arch,
        max_epochs=settings.visual_max_epochs,
        enable_progress_bar=progress_bar,
        augment=settings.student_augment,
    )
    fit = fit_student(
        shards,
        inputs,
        policy,
        config,
        settings.models_dir / MODEL_NAME,
        meta=meta,
        min_positives=settings.visual_min_positives,
        self_precision=settings.pseudo_label_precision,
        negative_max_score=settings.pseudo_label_negative_max_score,
        ood_flag_share=settings.ood_flag_share,
        ood_k=settings.ood_k,
    )
    result = fit.result
    fields = result.registry_fields()
    sources = fit.targets.counts()
    fields["training_data"].update(
        teacher_version=inputs.teacher_version,
        sources=sources,
        held_out_videos=len(inputs.held_out),
        self_training=fit.self_training,
    )
    # Features of another encoder can have the same width: the model must know which ones it learnt.
    fields["params"]["image_encoder"] = settings.image_encoder
    fields["params"]["targets"] = dataclasses.asdict(policy)
    fields["params"]["ood"] = fit.ood
    gold = {result.arch: gold_report(catalog, result.model_dir, fit.categories, shards, meta)}
    fields["metrics"]["gold"] = gold
    register_model(catalog, MODEL_NAME, result.version, result.model_dir, result.categories, **fields)
    (settings.models_dir / MODEL_NAME / STATE_FILE).unlink(missing_ok=True)
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
        inputs.teacher_version,
        sources,
        fit.self_training,
        fit.ood,
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
    out_of_distribution: int = 0


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
        (
            s.video_id,
            record.version,
            batch_id,
            int(s.n_frames),
            np.asarray(s.scores, np.float32).tolist(),
            None if not np.isfinite(s.ood_score) else float(s.ood_score),
            bool(s.out_of_distribution),
            now,
        )
        for s in scores
    ]
    seconds = time.monotonic() - started
    with catalog.transaction() as con:
        delete_where_in(con, "visual_predictions", "video_id", members, "AND model_version = ?", [record.version])
        insert_rows(
            con,
            "visual_predictions",
            [
                "video_id",
                "model_version",
                "batch_id",
                "n_frames",
                "scores",
                "ood_score",
                "out_of_distribution",
                "predicted_at",
            ],
            rows,
        )
    return VisualBatchResult(len(members), len(rows), seconds, sum(r[6] for r in rows))
