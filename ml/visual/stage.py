"""The visual stages on catalog data: train the student on every honest label, score a batch's shard."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ml.catalog.batching import batch_video_ids
from ml.catalog.holdout import HoldoutGuard
from ml.catalog.labels import certification_matrix, exhaustive_ids, judgements, pseudo_label_rows
from ml.catalog.model_registry import ModelRecord, latest_model, register_model
from ml.catalog.scores import all_text_scores
from ml.catalog.store import Catalog, delete_where_in, insert_rows
from ml.catalog.videos import video_facts
from ml.errors import UserFacingError
from ml.frames.embedding_store import list_shards, shard_path
from ml.visual.targets import (
    StudentTargets,
    TargetPolicy,
    build_targets,
    editor_targets,
    pseudo_targets,
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


class NotEnoughLabels(UserFacingError, ValueError):
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
    from ml.visual.meta import meta_by_video

    return meta_by_video(video_facts(catalog, video_ids))


@dataclass
class StudentInputs:
    """Everything the student learns from, read from the catalog (or built by an evaluation)."""

    categories: list[str]  # candidate categories, working-set order
    editor: dict[str, np.ndarray]  # video -> editor targets over ``categories``
    pseudo: tuple[dict[str, np.ndarray], dict[str, np.ndarray]]  # (targets, weights) from the teacher
    held_out: frozenset[str]
    teacher_version: str | None = None
    # video -> the teacher's calibrated probabilities over ``categories`` (NaN where it has no head),
    # for every video with text: the text half of the pool's pseudo-labels (ml/visual/cotrain.py).
    text_probs: dict[str, np.ndarray] = field(default_factory=dict)


def student_inputs(catalog: Catalog, ws_ids: list[str], policy: TargetPolicy) -> StudentInputs:
    from ml.catalog.holdout import held_out_ids

    teacher = latest_model(catalog, "text_model", required=False)
    editor_rows = judgements(catalog, "editor")
    exhaustive = exhaustive_ids(catalog, "editor")
    labelled = {c for _, c, pos in editor_rows if pos}
    covered = labelled | set(teacher.categories if teacher is not None else [])
    categories = [c for c in ws_ids if c in covered]
    editor = editor_targets(editor_rows, exhaustive, categories) if policy.editor_labels else {}
    pseudo: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] = ({}, {})
    if policy.pseudo_labels and teacher is not None:
        pseudo = pseudo_targets(pseudo_label_rows(catalog, teacher.version), categories, policy)
    held_out = held_out_ids(catalog)
    text_probs = teacher_text_probs(catalog, teacher, categories, held_out) if policy.pseudo_labels else {}
    return StudentInputs(
        categories, editor, pseudo, held_out, teacher.version if teacher else None, text_probs=text_probs
    )


def teacher_text_probs(
    catalog: Catalog, teacher: ModelRecord | None, categories: list[str], held_out: frozenset[str]
) -> dict[str, np.ndarray]:
    """video -> the teacher's calibrated probabilities over ``categories`` (NaN where it has no head)."""
    if teacher is None:
        return {}
    column = {c: j for j, c in enumerate(teacher.categories)}
    pick = np.array([column.get(c, -1) for c in categories], dtype=np.int64)
    out: dict[str, np.ndarray] = {}
    for vid, scores in all_text_scores(catalog, teacher.version):
        if vid not in held_out:
            row = np.asarray(scores, dtype=np.float32)
            out[vid] = np.where(pick >= 0, row[np.maximum(pick, 0)], np.nan).astype(np.float32)
    return out


@dataclass
class StudentFit:
    result: Any  # ml.visual.training.TrainResult of the kept model
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
    guard: Callable[[Iterable[str], str], None],
    meta: dict[str, np.ndarray] | None = None,
    min_positives: int = 5,
    ood_flag_share: float = 0.03,
    ood_k: int = 5,
    calibration_folds: int = 3,
) -> StudentFit:
    """Round one on the editor labels -> out-of-distribution detector -> pool pseudo-labels -> round two.

    Round one learns from the editor labels (from the teacher's pseudo-labels too when there are no
    editor labels). Its scores on the editor videos, cross-validated over ``calibration_folds``, fit a
    pooled calibrator; every pool video (not held out, not in distribution's tail) then gets the
    posterior of round one's calibrated score and the teacher's probability (ml/visual/cotrain.py) as a
    soft target, and round two learns from the editor labels and those. Held-out videos (gold, the
    locked test) never enter any round, nor the calibration: the guard reads them from ``inputs``.
    """
    import shutil

    from ml.frames.embedding_store import iter_videos, stored_video_ids
    from ml.visual.cotrain import base_rates, fit_visual_calibration, logit, pool_targets
    from ml.visual.data import split_ids
    from ml.visual.ood import fit_detector, pooled_by_video
    from ml.visual.predictor import VisualPredictor
    from ml.visual.training import train_visual_model

    all_targets = build_targets(inputs.categories, inputs.editor, inputs.pseudo, inputs.held_out, policy)
    counts = all_targets.positives()
    if policy.pseudo_labels:  # the teacher's beliefs on the pool count too: its pseudo-labels will teach them
        believed = [
            p for v, p in inputs.text_probs.items() if v not in inputs.held_out and v not in all_targets.targets
        ]
        if believed:
            counts = counts + (np.nan_to_num(np.stack(believed), nan=0.0) >= 0.5).sum(axis=0)
    keep = [j for j, n in enumerate(counts) if n >= min_positives]
    if not keep:
        best = int(counts.max()) if len(counts) else 0
        raise NotEnoughLabels(
            f"no category has {min_positives} positive targets among {len(all_targets.targets)} trainable videos "
            f"(the best has {best}): add editor labels, let more batches be pseudo-labelled, or lower "
            "visual_min_positives"
        )
    categories = [inputs.categories[j] for j in keep]
    everything = StudentTargets(categories)
    for v, t in all_targets.targets.items():
        everything.add(v, t[keep], all_targets.weights[v][keep], all_targets.source[v])
    editor_only = everything.restricted(v for v, src in everything.source.items() if src == "editor")
    targets = editor_only if editor_only.targets else everything
    guard(targets.targets, "the student's round one")
    try:
        first = train_visual_model(shards, targets.targets, meta, categories, config, out_dir, weights=targets.weights)
    except ValueError:
        # Too few editor videos to train and validate on (a young catalog): round one also learns the
        # teacher's calibrated beliefs as soft targets, as the pool's pseudo-labels would teach it.
        # Its best guess counts as a positive on the more confident half of the texts: a teacher
        # calibrated on a handful of labels rarely reaches 0.5, and a student needs positives to validate.
        targets = everything
        if policy.pseudo_labels:
            pool = {
                v: p[keep].astype(np.float32)
                for v, p in inputs.text_probs.items()
                if v not in inputs.held_out and v not in targets.targets and np.isfinite(p[keep]).any()
            }
            confident = np.median([np.nanmax(t) for t in pool.values()]) if pool else np.inf
            for v, t in pool.items():
                w = policy.pseudo_weight * np.abs(2 * np.nan_to_num(t, nan=0.5) - 1)
                if np.nanmax(t) >= confident:
                    j = int(np.nanargmax(t))
                    t, w = t.copy(), w.copy()
                    t[j], w[j] = 1.0, policy.pseudo_weight
                targets.add(v, t, w, "pseudo")
        guard(targets.targets, "the student's round one")
        first = train_visual_model(shards, targets.targets, meta, categories, config, out_dir, weights=targets.weights)

    def fit_ood(training: StudentTargets, model_dir: Path):
        """Out-of-distribution reference: the training videos; calibration: validation + leave-one-out."""
        from ml.visual.ood import MAX_REFERENCE

        train_ids, val_ids = split_ids(training.targets, config.val_fraction, config.split_salt)
        rng = np.random.default_rng(config.seed)
        ref_ids = (
            train_ids
            if len(train_ids) <= MAX_REFERENCE
            else sorted(map(str, rng.choice(train_ids, MAX_REFERENCE, replace=False)))
        )
        cal_ids = val_ids if len(val_ids) <= 2000 else sorted(map(str, rng.choice(val_ids, 2000, replace=False)))
        pooled = pooled_by_video(iter_videos(shards, video_ids=set(ref_ids) | set(cal_ids)))
        fitted = fit_detector(
            {v: pooled[v] for v in ref_ids if v in pooled},
            {v: pooled[v] for v in cal_ids if v in pooled},
            k=ood_k,
            flag_share=ood_flag_share,
            seed=config.seed,
        )
        fitted.save(model_dir)
        return fitted

    # Round one's detector keeps videos unlike anything labelled out of the pool's pseudo-labels; the
    # deployed model's detector is refitted on everything round two learnt from (below).
    detector = fit_ood(targets, first.model_dir)

    report: dict[str, Any] = {"enabled": policy.pseudo_labels or policy.self_training, "accepted_videos": 0}
    result = first
    if report["enabled"]:
        # Round one's scores on videos it did not train on, to calibrate it: k-fold over its own targets.
        ids = sorted(targets.targets)
        fold = np.random.default_rng(config.seed).permutation(len(ids)) % max(2, calibration_folds)
        oof: dict[str, np.ndarray] = {}
        with tempfile.TemporaryDirectory(prefix="vidcat-calibration-") as tmp:
            for k in range(max(2, calibration_folds)):
                fit_ids = [v for v, f in zip(ids, fold, strict=True) if f != k]
                score_ids = {v for v, f in zip(ids, fold, strict=True) if f == k}
                part = targets.restricted(fit_ids)
                try:
                    r_k = train_visual_model(
                        shards, part.targets, meta, categories, quiet(config), Path(tmp) / str(k), weights=part.weights
                    )
                except (ValueError, NotEnoughLabels):  # a fold too small to train: left out of the calibration
                    continue
                for sc in VisualPredictor(r_k.model_dir).predict_shards(shards, meta, video_ids=score_ids):
                    oof[sc.video_id] = sc.scores
        cal_ids_ = sorted(oof)
        calibrator = fit_visual_calibration(
            np.stack([oof[v] for v in cal_ids_]) if cal_ids_ else np.zeros((0, len(categories))),
            np.stack([targets.targets[v] for v in cal_ids_]) if cal_ids_ else np.zeros((0, len(categories))),
        )
        predictor = VisualPredictor(first.model_dir)
        # Only the pool is scored: held-out videos never pass through, not even in a batch beside it.
        pool_ids = {v for v in stored_video_ids(shards) if v not in inputs.held_out and v not in targets.targets}
        p_visual = {
            sc.video_id: calibrator.transform(logit(sc.scores)).reshape(-1)
            for sc in predictor.predict_shards(shards, meta, video_ids=pool_ids)
            if sc.n_frames > 0 and not sc.out_of_distribution
        }
        p_text = {v: p[keep] for v, p in inputs.text_probs.items() if v in p_visual}
        pool_t, pool_w, pool_src = pool_targets(
            p_visual,
            p_text,
            base_rates(targets.targets, len(categories)),
            use_text=policy.pseudo_labels,
            use_self=policy.self_training,
            soft=policy.soft,
            pseudo_weight=policy.pseudo_weight,
            self_weight=policy.self_weight,
        )
        report.update(
            calibration={**calibrator.to_dict(), "videos": len(oof), "folds": max(2, calibration_folds)},
            pool_videos=len(p_visual),
            accepted_videos=len(pool_t),
            with_text=sum(src == "pseudo" for src in pool_src.values()),
        )
        if pool_t:
            for v, t in pool_t.items():
                targets.add(v, t, pool_w[v], pool_src[v])
            guard(targets.targets, "the student's round two (pseudo-labels and self-training)")
            result = train_visual_model(
                shards, targets.targets, meta, categories, config, out_dir, weights=targets.weights
            )
            detector = fit_ood(targets, result.model_dir)
            shutil.rmtree(first.model_dir, ignore_errors=True)
    return StudentFit(result, targets, categories, report, dict(detector.calibration, threshold=detector.threshold))


def save_targets(targets: StudentTargets, path: Path) -> None:
    """What the student learnt from, beside it: audits and the like-for-like baseline read it."""
    ids = sorted(targets.targets)
    np.savez_compressed(
        path,
        video_ids=np.array(ids, dtype=str),
        targets=np.stack([targets.targets[v] for v in ids]) if ids else np.zeros((0, len(targets.categories))),
        sources=np.array([targets.source[v] for v in ids], dtype=str),
        categories=np.array(targets.categories, dtype=str),
    )


def quiet(config: Any) -> Any:
    """The same recipe without a progress bar (the calibration folds)."""
    return dataclasses.replace(config, enable_progress_bar=False)


def train_student(
    catalog: Catalog,
    settings,
    ws_ids: list[str],
    *,
    arch: str | None = None,
    progress_bar: bool = False,
) -> StudentResult:
    """Train on every honest label (never gold or the locked test); report on gold; register the model."""
    from ml.visual.network import VisualTrainConfig
    from ml.visual.predictor import MODEL_NAME

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
        guard=HoldoutGuard(catalog),
        meta=meta,
        min_positives=settings.visual_min_positives,
        ood_flag_share=settings.ood_flag_share,
        ood_k=settings.ood_k,
    )
    result = fit.result
    save_targets(fit.targets, result.model_dir / "targets.npz")
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
    """GAP@20 and mAP of the model on the certification gold: the truth the pseudo-labels only approximate.

    The locked test's share of gold is left out: a figure registered with the model is read and compared
    (``vidcat report``), and the locked test only reports.
    """
    from ml.metrics import gap_at_k, mean_average_precision
    from ml.visual.predictor import VisualPredictor

    ids, y = certification_matrix(catalog, categories)
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
    members = batch_video_ids(catalog, batch_id)
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
