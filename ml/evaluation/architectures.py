"""NeXtVLAD against mean pooling, measured two ways.

- ``compare_architecture_ranking``: each network trained alone by the training driver on the same
  targets, seed and budget; its ranking (GAP@k, mAP) on evaluation sets and its inference speed
  (`bench/visual_inference.py`).
- ``compare_student_architectures``: the whole student recipe with each network (pseudo-labels,
  self-training, thresholds on certification gold), on the locked test beside the baseline
  (`vidcat eval-visual`).

The pipeline never runs either.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ml.evaluation.student import EvalContext, baseline_row, student_config, train_and_score
from ml.frames.embedding_store import iter_videos
from ml.visual.data import binarize
from ml.visual.model import ranking_metrics
from ml.visual.network import ARCHS, VisualTrainConfig
from ml.visual.predictor import VisualPredictor
from ml.visual.training import train_visual_model


def compare_architecture_ranking(
    train_shards: Sequence[Path],
    targets: Mapping[str, np.ndarray],
    meta: Mapping[str, np.ndarray] | None,
    categories: Sequence[str],
    eval_sets: Mapping[str, tuple[Sequence[str], np.ndarray]],
    config: VisualTrainConfig | None = None,
    *,
    eval_shards: Sequence[Path] | None = None,
    out_dir: Path | None = None,
    exclude_eval_from_training: bool = True,
    archs: Sequence[str] = ARCHS,
) -> dict[str, Any]:
    """Train each architecture on the same data, seed and budget; GAP@k and mAP on every evaluation set.

    ``eval_sets``: name -> (video ids, label matrix (n, C) aligned with ``categories``, 0/1). With
    ``exclude_eval_from_training`` their videos are removed from the training targets first, so the
    figures are held out. Inference speed is measured on the evaluation videos held in memory
    (onnxruntime, batches of similar length), so it counts the model, not the shard reads.
    """
    config = config or VisualTrainConfig()
    eval_shards = list(eval_shards or train_shards)
    eval_ids = {str(v) for ids, _ in eval_sets.values() for v in ids}
    train_targets = (
        {v: t for v, t in targets.items() if v not in eval_ids} if exclude_eval_from_training else dict(targets)
    )
    if not train_targets:
        raise ValueError(
            "every labelled video is in an evaluation set; pass exclude_eval_from_training=False "
            "to evaluate on training videos"
        )
    videos = list(iter_videos(eval_shards, video_ids=eval_ids)) if eval_ids else []
    k = config.gap_k
    report: dict[str, Any] = {
        "config": config.to_dict(),
        "train_videos_with_targets": len(train_targets),
        "excluded_from_training": len(targets) - len(train_targets),
        "eval_sets": {name: len(ids) for name, (ids, _) in eval_sets.items()},
        "archs": {},
    }
    with contextlib.ExitStack() as stack:
        root = Path(out_dir) if out_dir is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        for arch in archs:
            result = train_visual_model(
                train_shards, train_targets, meta, categories, dataclasses.replace(config, arch=arch), root / arch
            )
            predictor = VisualPredictor(result.model_dir)
            started = time.perf_counter()
            scored = {s.video_id: s.scores for s in predictor.predict(videos, meta)}
            seconds = time.perf_counter() - started
            per_set = {}
            for name, (ids, labels) in eval_sets.items():
                labels = np.asarray(labels)
                present = [i for i, v in enumerate(ids) if str(v) in scored]
                s = np.stack([scored[str(ids[i])] for i in present]) if present else np.zeros((0, len(categories)))
                m = ranking_metrics(s, binarize(labels[present]) if present else labels[:0].astype(bool), k)
                per_set[name] = {
                    f"gap_at_{k}": m[f"gap_at_{k}"],
                    "map": m["map"],
                    "hit_at_1": m["hit_at_1"],
                    "n_videos": len(present),
                    "n_missing": len(ids) - len(present),
                }
            report["archs"][arch] = {
                "version": result.version,
                "model_dir": str(result.model_dir) if out_dir is not None else None,
                "param_count": result.param_count,
                "train_seconds": result.train_seconds,
                "epochs_run": result.metrics["epochs_run"],
                "best_epoch": result.metrics["best_epoch"],
                "val": {key: v for key, v in result.metrics.items() if key.startswith("val_")},
                "inference_videos_per_s": len(videos) / seconds if videos and seconds > 0 else math.nan,
                "eval": per_set,
                "history": result.history,
            }
    return report


def compare_student_architectures(ctx: EvalContext, catalog_pseudo: tuple[dict, dict]) -> dict[str, Any]:
    """The student recipe with NeXtVLAD and with mean pooling, same targets, seed and budget, on the locked test."""
    from ml.visual.targets import TargetPolicy

    policy = TargetPolicy.from_settings(ctx.settings)
    out, abstentions = {}, []
    for arch in ("nextvlad", "meanpool"):
        out[arch] = train_and_score(ctx, ctx.editor, catalog_pseudo, policy, student_config(ctx.settings, arch=arch))
        abstentions.append(out[arch].pop("abstained", []))
    # Certified, the baseline is silent where the NeXtVLAD run (the product's architecture) abstained.
    out["baseline"] = baseline_row(ctx, ctx.editor, abstentions[:1])
    return out
