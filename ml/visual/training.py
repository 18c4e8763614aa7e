"""Training the visual student: data, the Lightning run, the best epoch, its export, one model folder.

The model is selected on validation GAP@20 against the (binarized) pseudo-labels of a hash-split
validation set, which measures agreement with the teacher, not precision: thresholds are set
elsewhere, on human labels. A run writes ``out_dir/<version>/`` atomically: checkpoint, ONNX graph,
manifest and history, so a crash never leaves a half-written model where the predictor looks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import math
import os
import shutil
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from ml.frames.embedding_store import iter_videos
from ml.visual.data import (
    FrameAugment,
    VisualDataModule,
    meta_dim_of,
)
from ml.visual.export import ONNX_NAME, export_onnx
from ml.visual.meta import META_DIM, META_LAYOUT_VERSION, MISSING_META, meta_layout
from ml.visual.model import VisualModule, evaluate_loader, load_checkpoint
from ml.visual.network import MONITORS, VisualTrainConfig, bn_momentum_for, param_count
from ml.visual.predictor import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    MODEL_NAME,
)

CHECKPOINT_NAME = "best.ckpt"
HISTORY_NAME = "history.json"


@dataclass
class TrainResult:
    version: str
    model_dir: Path
    checkpoint_path: Path
    artifact_path: Path  # the ONNX graph the predictor loads
    manifest_path: Path
    arch: str
    categories: list[str]
    metrics: dict[str, float]  # validation metrics of the best epoch, on binarized pseudo-labels
    history: list[dict[str, float]]  # per epoch: train_loss, val_loss, val_gap, val_map, val_hit_at_1, lr
    param_count: int
    train_seconds: float
    videos: dict[str, int]  # train / val: used; *_targets: with a target in that split
    config: dict[str, Any]
    export: dict[str, Any] = field(default_factory=dict)
    data_digest: str = ""

    def registry_fields(self) -> dict[str, Any]:
        """``params``, ``metrics`` and ``training_data`` for ``ml.catalog.model_registry.register_model``."""
        return {
            "params": {**self.config, "param_count": self.param_count, "format": self.export.get("format")},
            "metrics": {**self.metrics, "train_seconds": self.train_seconds, "history": self.history},
            "training_data": {**self.videos, "data_digest": self.data_digest},
        }


def _feature_dim(shards: Sequence[Path]) -> int:
    for path in shards:
        for video in iter_videos(path, dequantized=False):
            return int(video.embeddings.shape[1])
    raise ValueError("the embedding shards hold no video")


def _data_digest(
    shards: Sequence[Path],
    targets: Mapping[str, np.ndarray],
    meta: Mapping[str, np.ndarray] | None,
    categories: Sequence[str],
    weights: Mapping[str, np.ndarray] | None = None,
) -> str:
    """Content hash of what a run learns from: shard names, categories, every target, weight and metadata vector."""
    h = hashlib.sha256()
    h.update(json.dumps([sorted(Path(s).name for s in shards), list(categories)]).encode())
    for vid in sorted(targets):
        h.update(vid.encode() + b"\x00" + np.asarray(targets[vid], dtype=np.float32).tobytes())
        if meta and vid in meta:
            h.update(np.asarray(meta[vid], dtype=np.float32).tobytes())
        if weights is not None and vid in weights:
            h.update(b"w" + np.asarray(weights[vid], dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


def _check_targets(targets: Mapping[str, np.ndarray], categories: Sequence[str]) -> None:
    if not categories:
        raise ValueError("no categories to train on")
    for vid, t in targets.items():
        if np.asarray(t).shape != (len(categories),):
            raise ValueError(f"target of {vid} has shape {np.asarray(t).shape}, expected ({len(categories)},)")


class _DropTips(logging.Filter):
    """Lightning advertises its cloud products at info level; keep the run log to what happened."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


@contextlib.contextmanager
def _training_environment(threads: int | None = None) -> Iterator[None]:
    """Quiet, deterministic training whose global switches are put back afterwards."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    loggers = [
        logging.getLogger(n) for n in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero")
    ]
    tip_filter = _DropTips()
    for lg in loggers:
        lg.addFilter(tip_filter)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*`IterableDataset` has `__len__`.*")
            # The CSV log shares the run directory with the checkpoint on purpose.
            warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
            warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)")
            yield
    finally:
        for lg in loggers:
            lg.removeFilter(tip_filter)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.set_num_threads(previous_threads)


def train_visual_model(
    shards: Sequence[Path],
    targets: Mapping[str, np.ndarray],
    meta: Mapping[str, np.ndarray] | None,
    categories: Sequence[str],
    config: VisualTrainConfig | None,
    out_dir: Path,
    *,
    version: str | None = None,
    weights: Mapping[str, np.ndarray] | None = None,
) -> TrainResult:
    """Train, keep the best epoch, export it, and write ``out_dir/<version>/`` atomically.

    ``targets``: video_id -> float32 (C,) aligned with ``categories`` (1/0, soft scores, NaN unknown);
    only videos with a target are used, split train/validation by ``split_ids``. ``meta``: video_id ->
    float32 metadata vector (``ml.visual.meta.meta_vector``) or None for a frames-only model; videos
    missing from it get ``MISSING_META``. ``config`` None means the defaults. The directory holds
    ``best.ckpt`` (Lightning), ``model.onnx``, ``manifest.json``, ``history.json`` and the CSV log.
    """
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger

    from ml.catalog.model_registry import new_version

    config = dataclasses.replace(config or VisualTrainConfig()).validate()
    shards = [Path(s) for s in shards]
    _check_targets(targets, categories)
    meta_dim = meta_dim_of(meta)
    if meta and meta_dim == META_DIM:  # fill the videos the catalog gave no metadata for
        meta = {vid: meta.get(vid, MISSING_META) for vid in targets}
    feature_dim = _feature_dim(shards)
    digest = _data_digest(shards, targets, meta, categories, weights)
    version = version or new_version(MODEL_NAME, config.to_dict(), digest)
    out_dir = Path(out_dir)
    final_dir = out_dir / version
    if final_dir.exists():
        raise FileExistsError(f"{final_dir} exists; model versions are immutable")
    run_dir = out_dir / f".{version}.tmp-{os.getpid()}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)

    try:
        with _training_environment(config.torch_threads):
            pl.seed_everything(config.seed, workers=True, verbose=False)
            data = VisualDataModule(
                shards,
                targets,
                meta,
                val_fraction=config.val_fraction,
                split_salt=config.split_salt,
                batch_size=config.batch_size,
                eval_batch_size=config.eval_batch_size,
                max_frames=config.max_frames,
                shuffle_buffer=config.shuffle_buffer,
                seed=config.seed,
                num_workers=config.num_workers,
                weights=weights,
                augment=FrameAugment(config.augment_p, config.augment_crop_min, config.augment_subset_min)
                if config.augment
                else None,
            )
            if not data.train_ids or not data.val_ids:
                raise ValueError(
                    f"{len(targets)} labelled videos split into {len(data.train_ids)} train and "
                    f"{len(data.val_ids)} validation: need both (more videos or another val_fraction)"
                )
            if config.bn_momentum is None:
                config.bn_momentum = bn_momentum_for(len(data.train_ids), config.batch_size)
            module = VisualModule(categories, feature_dim, meta_dim, config.to_dict())
            untrained = evaluate_loader(module, data.val_dataloader())
            if not untrained["n_positives"]:
                raise ValueError(
                    f"the validation split ({untrained['n_videos']} videos found in the shards) has no "
                    "positive label: validation GAP is undefined; train on more videos"
                )
            checkpoint = ModelCheckpoint(
                dirpath=run_dir,
                filename=CHECKPOINT_NAME.removesuffix(".ckpt"),
                monitor=config.monitor,
                mode=MONITORS[config.monitor],
                save_top_k=1,
                save_last=False,
                auto_insert_metric_name=False,
                enable_version_counter=False,
            )
            early = EarlyStopping(
                monitor=config.monitor,
                mode=MONITORS[config.monitor],
                patience=config.patience,
                min_delta=config.min_delta,
                check_finite=True,
            )
            trainer = pl.Trainer(
                max_epochs=config.max_epochs,
                min_epochs=config.min_epochs,
                accelerator=config.accelerator,
                devices=1,
                deterministic=True,
                gradient_clip_val=config.gradient_clip_val,
                gradient_clip_algorithm="norm",
                callbacks=[checkpoint, early],
                logger=CSVLogger(str(run_dir), name="logs", version=""),
                default_root_dir=str(run_dir),
                enable_progress_bar=config.enable_progress_bar,
                enable_model_summary=False,
                num_sanity_val_steps=0,
                reload_dataloaders_every_n_epochs=1,
                log_every_n_steps=10,
            )
            started = time.perf_counter()
            trainer.fit(module, datamodule=data)
            train_seconds = time.perf_counter() - started

            best = load_checkpoint(Path(checkpoint.best_model_path))
            best_metrics = evaluate_loader(best, data.val_dataloader())
        k = config.gap_k
        sign = 1.0 if MONITORS[config.monitor] == "max" else -1.0
        ranked = [sign * x if math.isfinite(x := _finite(h.get(config.monitor))) else -math.inf for h in module.history]
        best_epoch = int(np.argmax(ranked))
        metrics = {
            f"val_gap_at_{k}": best_metrics[f"gap_at_{k}"],
            "val_map": best_metrics["map"],
            "val_hit_at_1": best_metrics["hit_at_1"],
            "best_epoch": module.history[best_epoch]["epoch"],
            "epochs_run": len(module.history),
            "stopped_early": early.stopped_epoch > 0,
            f"untrained_val_gap_at_{k}": untrained[f"gap_at_{k}"],
            f"checkpoint_{config.monitor}": float(checkpoint.best_model_score)
            if checkpoint.best_model_score is not None
            else math.nan,
        }
        export = export_onnx(best.network, run_dir / ONNX_NAME, feature_dim, meta_dim)
        videos = {
            "train": module.train_videos_seen,
            "val": best_metrics["n_videos"],
            "train_targets": len(data.train_ids),
            "val_targets": len(data.val_ids),
        }
        n_params = param_count(best.network)
        manifest = {
            "model_name": MODEL_NAME,
            "format_version": FORMAT_VERSION,
            "version": version,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "arch": config.arch,
            "artifact": ONNX_NAME,
            "checkpoint": CHECKPOINT_NAME,
            "categories": list(categories),
            "feature_dim": feature_dim,
            "meta_dim": meta_dim,
            "max_frames": config.max_frames,
            "meta_layout": meta_layout() if meta_dim == META_DIM else None,
            "meta_layout_version": META_LAYOUT_VERSION if meta_dim == META_DIM else None,
            "inputs": {
                "frames": ["batch", "frames", feature_dim],
                "mask": ["batch", "frames"],
                "meta": ["batch", meta_dim],
            },
            "output": {"probabilities": ["batch", len(categories)]},
            "config": config.to_dict(),
            "param_count": n_params,
            "metrics": metrics,
            "export": export,
            "training_data": {**videos, "data_digest": digest, "shards": [s.name for s in shards]},
            "train_seconds": train_seconds,
        }
        (run_dir / HISTORY_NAME).write_text(json.dumps(module.history, indent=2, default=_json_default))
        (run_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, default=_json_default))
        os.replace(run_dir, final_dir)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return TrainResult(
        version=version,
        model_dir=final_dir,
        checkpoint_path=final_dir / CHECKPOINT_NAME,
        artifact_path=final_dir / ONNX_NAME,
        manifest_path=final_dir / MANIFEST_NAME,
        arch=config.arch,
        categories=list(categories),
        metrics=metrics,
        history=module.history,
        param_count=n_params,
        train_seconds=train_seconds,
        videos=videos,
        config=config.to_dict(),
        export=export,
        data_digest=digest,
    )


def _finite(x: Any) -> float:
    return float(x) if x is not None and math.isfinite(float(x)) else math.nan


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
