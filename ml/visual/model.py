"""The visual student as Lightning trains it: the classifier (NeXtVLAD or the mean-pooling baseline)
with its loss, optimiser, schedule and validation metrics.

Training runs in PyTorch Lightning so that the things that are easy to get subtly wrong by hand come
from one tested place: seeding and deterministic kernels, gradient clipping, per-epoch validation,
keeping the best checkpoint and stopping early on it. The driver is ``ml/visual/training.py``, the
deployed artefact ``ml/visual/export.py``; scoring never imports this module (``predictor.py``).

torch and Lightning are imported at module level: only training and evaluation code imports this module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from ml.metrics import gap_at_k, hit_at_one, mean_average_precision
from ml.visual.data import (
    Batch,
    binarize,
)
from ml.visual.network import VisualTrainConfig, build_network


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
