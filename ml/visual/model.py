"""The visual student: NeXtVLAD (or the mean-pooling baseline) over frame embeddings, trained on pseudo-labels.

Training runs in PyTorch Lightning so that the things that are easy to get subtly wrong by hand come
from one tested place: seeding and deterministic kernels, gradient clipping, per-epoch validation,
keeping the best checkpoint and stopping early on it. The model is selected on validation GAP@20
against the (binarized) pseudo-labels of a hash-split validation set, which measures agreement with
the teacher, not precision: thresholds are set elsewhere, on human labels.

The deployed artefact is not the checkpoint but an ONNX graph of the eval-mode model with
probabilities as output (dynamic batch and frame axes), checked against the eager model before it
is kept, plus ``manifest.json`` naming the categories, dimensions and metadata layout. Scoring then
needs only onnxruntime and a model cannot execute code when opened; it is not faster than eager
torch on CPU (``bench/visual_inference.py``: within 10%, both spend their time in the same few large
matrix products). The checkpoint stays beside it for eager use and fine-tuning.

torch and Lightning are imported at module level: only training and scoring code imports this module.
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
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from ml.frames.embedding_store import iter_videos
from ml.metrics import gap_at_k, hit_at_one, mean_average_precision
from ml.visual.data import (
    Batch,
    FrameAugment,
    VisualDataModule,
    binarize,
    meta_dim_of,
)
from ml.visual.meta import META_DIM, META_LAYOUT_VERSION, MISSING_META, meta_layout
from ml.visual.network import ARCHS, MONITORS, VisualTrainConfig, bn_momentum_for, build_network, param_count
from ml.visual.predictor import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    MODEL_NAME,
    VisualPredictor,
    _feed,
    _session,
)

ONNX_OPSET = 17
EXPORT_TOLERANCE = 1e-4
CHECKPOINT_NAME = "best.ckpt"
ONNX_NAME = "model.onnx"
HISTORY_NAME = "history.json"


def masked_bce(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """BCE summed over the known classes and averaged over videos (YouTube-8M's CrossEntropyLoss).

    Targets may be soft; NaN marks a class nobody said anything about and contributes nothing.
    ``weights`` (same shape, optional) scale each known term: a human label counts 1, a pseudo-label
    the confidence its source gives it.
    """
    known = ~torch.isnan(targets)
    per_class = nn.functional.binary_cross_entropy_with_logits(
        logits, torch.where(known, targets, torch.zeros_like(targets)), reduction="none"
    )
    scale = known.to(per_class.dtype)
    if weights is not None and weights.numel():
        scale = scale * torch.nan_to_num(weights.to(per_class.dtype), nan=0.0)
    return (per_class * scale).sum() / max(1, logits.shape[0])


def ranking_metrics(scores: np.ndarray, labels: np.ndarray, k: int = 20) -> dict[str, float]:
    """GAP@k, mAP and Hit@1 of scores against boolean labels (ml.metrics; NaN where undefined)."""
    if len(scores) == 0:
        return {f"gap_at_{k}": math.nan, "map": math.nan, "hit_at_1": math.nan}
    return {
        f"gap_at_{k}": gap_at_k(scores, labels, k),
        "map": mean_average_precision(scores, labels),
        "hit_at_1": hit_at_one(scores, labels),
    }


# ---------------------------------------------------------------------------------------------------
# Lightning module


class VisualModule(pl.LightningModule):
    """Lightning wrapper: loss, optimiser, schedule and validation metrics around the classifier."""

    def __init__(
        self, categories: Sequence[str], feature_dim: int, meta_dim: int = 0, config: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__()
        # Plain types only, so the checkpoint loads with torch.load(weights_only=True).
        self.save_hyperparameters(
            {
                "categories": list(categories),
                "feature_dim": int(feature_dim),
                "meta_dim": int(meta_dim),
                "config": dict(config or {}),
            }
        )
        self.config = VisualTrainConfig.from_dict(config or {}).validate()
        self.categories = list(categories)
        self.feature_dim = int(feature_dim)
        self.meta_dim = int(meta_dim)
        self.network = build_network(self.config, self.feature_dim, len(self.categories), self.meta_dim)
        self.history: list[dict[str, float]] = []
        self.train_videos_seen = 0
        self.val_videos_seen = 0
        self._train_loss = [0.0, 0]
        self._val: dict[str, Any] = {}
        self._last_val: dict[str, float] = {}
        self._epoch_lr = math.nan

    def forward(self, frames: torch.Tensor, mask: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        return self.network(frames, mask, meta if self.meta_dim else None)

    def _logits(self, batch: Batch) -> torch.Tensor:
        return self(batch.frames, batch.mask, batch.meta)

    def on_train_epoch_start(self) -> None:
        self._train_loss = [0.0, 0]
        self._epoch_lr = self.trainer.optimizers[0].param_groups[0]["lr"] if self.trainer.optimizers else math.nan

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor | None:
        size = len(batch.video_ids)
        if self.current_epoch == 0:
            self.train_videos_seen += size
        if size < 2:  # BatchNorm cannot train on one video; the last batch of an epoch can be that small
            return None
        loss = masked_bce(self._logits(batch), batch.targets, batch.weights)
        self._train_loss[0] += float(loss.detach()) * size
        self._train_loss[1] += size
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=size, prog_bar=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val = {"scores": [], "targets": [], "loss": 0.0, "n": 0}

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        logits = self._logits(batch)
        self._val["loss"] += float(masked_bce(logits, batch.targets, batch.weights)) * len(batch.video_ids)
        self._val["n"] += len(batch.video_ids)
        self._val["scores"].append(torch.sigmoid(logits).float().cpu().numpy())
        self._val["targets"].append(batch.targets.float().cpu().numpy())

    def on_validation_epoch_end(self) -> None:
        n = self._val["n"]
        self.val_videos_seen = n
        scores = np.concatenate(self._val["scores"]) if n else np.zeros((0, len(self.categories)), np.float32)
        targets = np.concatenate(self._val["targets"]) if n else scores
        k = self.config.gap_k
        m = ranking_metrics(scores, binarize(targets, self.config.label_threshold), k)
        self._last_val = {
            "val_loss": self._val["loss"] / max(1, n),
            "val_gap": m[f"gap_at_{k}"],
            "val_map": m["map"],
            "val_hit_at_1": m["hit_at_1"],
        }
        for name, value in self._last_val.items():
            self.log(name, value, prog_bar=name == "val_gap")

    def on_train_epoch_end(self) -> None:
        total, n = self._train_loss
        self.history.append(
            {
                "epoch": self.current_epoch,
                "train_loss": total / n if n else math.nan,
                "lr": self._epoch_lr,
                **self._last_val,
            }
        )

    def configure_optimizers(self) -> dict[str, Any]:
        # Weight decay on weight matrices and centroids only: decaying BatchNorm scales and biases
        # toward zero is not what the reference's L2 penalty on weights does.
        decay = [p for p in self.parameters() if p.requires_grad and p.dim() > 1]
        no_decay = [p for p in self.parameters() if p.requires_grad and p.dim() <= 1]
        optimizer = torch.optim.Adam(
            [{"params": decay, "weight_decay": self.config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.config.lr,
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": lr_scheduler(optimizer, self.config), "interval": "epoch"},
        }


def lr_scheduler(optimizer: torch.optim.Optimizer, config: VisualTrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch learning-rate factor: exponential decay, or linear warm-up then cosine to a floor."""
    if config.lr_schedule == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)
    warmup, total, floor = max(0, config.warmup_epochs), max(1, config.max_epochs), config.lr_min_ratio

    def factor(epoch: int) -> float:
        if epoch < warmup:
            return (epoch + 1) / (warmup + 1)
        progress = min(1.0, (epoch - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def load_checkpoint(path: Path, map_location: str = "cpu") -> VisualModule:
    """A trained module in eval mode."""
    module = VisualModule.load_from_checkpoint(str(path), map_location=map_location)
    return module.eval()


@torch.inference_mode()
def score_batches(
    network: nn.Module, batches: Iterable[Batch], meta_dim: int, device: str | torch.device = "cpu"
) -> Iterator[tuple[list[str], np.ndarray, Batch]]:
    """Eager probabilities per batch (numpy or torch batches); the network must be in eval mode."""
    for b in batches:
        frames = torch.as_tensor(b.frames, device=device)
        mask = torch.as_tensor(b.mask, device=device)
        meta = torch.as_tensor(b.meta, device=device) if meta_dim else None
        yield b.video_ids, torch.sigmoid(network(frames, mask, meta)).float().cpu().numpy(), b


def evaluate_loader(module: VisualModule, batches: Iterable[Batch]) -> dict[str, float]:
    """Ranking metrics of a module on labelled batches, binarized as in validation.

    Runs in eval mode and restores the module's mode: Lightning keeps the train/eval state it finds
    at the start of fit, so a module left in eval mode would train without dropout and batch statistics.
    """
    was_training = module.training
    module.eval()
    device = next(module.parameters()).device
    scores, targets = [], []
    try:
        for _, s, b in score_batches(module.network, batches, module.meta_dim, device):
            scores.append(s)
            targets.append(np.asarray(b.targets, dtype=np.float32))
    finally:
        module.train(was_training)
    k = module.config.gap_k
    if not scores:
        return {**ranking_metrics(np.zeros((0, 0)), np.zeros((0, 0)), k), "n_videos": 0, "n_positives": 0}
    s, y = np.concatenate(scores), binarize(np.concatenate(targets), module.config.label_threshold)
    return {**ranking_metrics(s, y, k), "n_videos": len(s), "n_positives": int(y.sum())}


# ---------------------------------------------------------------------------------------------------
# Export


class _Scorer(nn.Module):
    """What is exported: the eval-mode classifier with sigmoid, so the artefact outputs probabilities."""

    def __init__(self, network: nn.Module, meta_dim: int) -> None:
        super().__init__()
        self.network = network
        self.meta_dim = meta_dim

    def forward(self, frames: torch.Tensor, mask: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.network(frames, mask, meta if self.meta_dim else None))


def _export_check_inputs(feature_dim: int, meta_dim: int, seed: int = 0) -> list[tuple[np.ndarray, ...]]:
    """Random batches of other shapes than the trace sample, with videos of very different lengths."""
    rng = np.random.default_rng(seed)
    cases = []
    for batch, frames in ((3, 13), (1, 1), (5, 40)):
        x = rng.gamma(1.0, 0.5, (batch, frames, feature_dim)).astype(np.float32)
        mask = np.zeros((batch, frames), dtype=bool)
        for i in range(batch):
            mask[i, : max(1, frames - 7 * i)] = True
        x[~mask] = 0.0
        cases.append((x, mask, rng.normal(size=(batch, meta_dim)).astype(np.float32)))
    return cases


def export_onnx(network: nn.Module, path: Path, feature_dim: int, meta_dim: int) -> dict[str, Any]:
    """Export the eval-mode network (atomically) and prove the graph matches eager torch; returns the check.

    The legacy TorchScript-based exporter (``dynamo=False``) is used: it handles the masked NeXtVLAD
    with dynamic batch and frame axes, and the dynamo exporter needs onnxscript, which is not
    installed. Tracing turns the layer's shape checks into constants (the warnings are silenced);
    the check below runs other batch sizes and lengths than the trace sample, so a shape frozen by
    the trace would be caught here, not in production.
    """
    network = network.eval().cpu()
    scorer = _Scorer(network, meta_dim).eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sample = _export_check_inputs(feature_dim, meta_dim, seed=1)[0]
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # legacy-exporter deprecation and tracer notes about shape checks
            torch.onnx.export(
                scorer,
                tuple(torch.from_numpy(a) for a in sample),
                tmp,
                dynamo=False,
                opset_version=ONNX_OPSET,
                input_names=["frames", "mask", "meta"],
                output_names=["probabilities"],
                dynamic_axes={
                    "frames": {0: "batch", 1: "frames"},
                    "mask": {0: "batch", 1: "frames"},
                    "meta": {0: "batch"},
                    "probabilities": {0: "batch"},
                },
            )
        session = _session(Path(tmp), threads=1)
        worst = 0.0
        for frames, mask, meta in _export_check_inputs(feature_dim, meta_dim):
            with torch.inference_mode():
                expected = scorer(torch.from_numpy(frames), torch.from_numpy(mask), torch.from_numpy(meta)).numpy()
            got = session.run(None, _feed(session, frames, mask, meta))[0]
            worst = max(worst, float(np.abs(got - expected).max()))
        if not worst <= EXPORT_TOLERANCE:
            raise RuntimeError(f"ONNX export differs from eager torch by {worst:.2e} (> {EXPORT_TOLERANCE}); not kept")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {
        "format": "onnx",
        "opset": ONNX_OPSET,
        "exporter": "torch.onnx.export(dynamo=False)",
        "torch": torch.__version__,
        "max_abs_diff_vs_torch": worst,
    }


# ---------------------------------------------------------------------------------------------------
# Training


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


# ---------------------------------------------------------------------------------------------------
# Scoring


# ---------------------------------------------------------------------------------------------------
# NeXtVLAD against mean pooling


def compare_architectures(
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
