"""The student's network, built from its training config: what training and the torch backend of the
predictor share, so that scoring never imports the training module (Lightning).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ml.visual.data import DEFAULT_MAX_FRAMES, SPLIT_SALT
from ml.visual.nextvlad import BN_MOMENTUM, MeanPoolClassifier, NeXtVLADClassifier

ARCHS = ("nextvlad", "meanpool")
# Validation metrics a run may be selected on, and whether higher is better.
MONITORS = {"val_gap": "max", "val_map": "max", "val_loss": "min"}


@dataclass
class VisualTrainConfig:
    """Every knob of one training run; stored in the manifest and the registry's params.

    Defaults are for the product (N = 1280, ~200 categories, thousands to tens of thousands of
    pseudo-labelled videos) and train a few hundred short demo videos in seconds per epoch on two
    cores; docs/visual-model.md explains each choice.
    """

    arch: str = "nextvlad"  # "nextvlad" or "meanpool" (same head, masked mean instead of NeXtVLAD)
    cluster_size: int = 64  # K
    groups: int = 8  # G
    expansion: int = 2  # λ
    hidden_size: int = 512  # H
    gating_reduction: int = 8
    dropout: float = 0.5
    # BatchNorm running-statistics momentum. None: chosen from the run's length (bn_momentum_for), so
    # eval-mode statistics have converged on a demo run of a few dozen steps as on a long one.
    bn_momentum: float | None = None
    batch_size: int = 32
    eval_batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-5  # L2 on weight matrices (the reference's l2_penalty), not on biases or BatchNorm
    # "exponential": lr x lr_decay after every epoch (the reference decays 0.8 per 2M examples);
    # "cosine": linear warm-up over warmup_epochs, then cosine to lr_min_ratio x lr at max_epochs.
    lr_schedule: str = "exponential"
    lr_decay: float = 0.9
    warmup_epochs: int = 1
    lr_min_ratio: float = 0.05
    # Model selection: the epoch with the best value of this validation metric is kept.
    monitor: str = "val_gap"
    # Frame-level augmentation of training videos (ml/visual/data.py FrameAugment).
    augment: bool = False
    augment_p: float = 0.5
    augment_crop_min: float = 0.75
    augment_subset_min: float = 0.6
    gradient_clip_val: float = 1.0  # global gradient norm, as YouTube-8M's clip_gradient_norm
    max_epochs: int = 15
    min_epochs: int = 1
    patience: int = 3  # epochs without a val GAP gain of min_delta before stopping
    min_delta: float = 1e-3
    val_fraction: float = 0.15
    split_salt: str = SPLIT_SALT
    max_frames: int = DEFAULT_MAX_FRAMES
    shuffle_buffer: int = 256
    num_workers: int = 0
    seed: int = 0
    gap_k: int = 20
    label_threshold: float = 0.5  # soft targets at or above this count as positives for validation metrics
    accelerator: str = "auto"
    enable_progress_bar: bool = True
    # CPU threads for torch during training (None: torch's default, one per core). One by default: the
    # pipeline runs two Dagster runs on two cores, and when another process holds a core every
    # OpenMP parallel region waits for it (measured: a training step 5x slower with 2 threads than
    # with 1 on a shared 2-core machine).
    torch_threads: int | None = 1

    def validate(self) -> VisualTrainConfig:
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.batch_size < 2:
            raise ValueError("batch_size must be at least 2: BatchNorm needs more than one video per batch")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.max_epochs < 1 or self.min_epochs < 0 or self.patience < 0:
            raise ValueError("max_epochs must be >= 1, min_epochs and patience >= 0")
        if not (0.0 < self.lr_decay <= 1.0 and self.lr > 0):
            raise ValueError("lr must be > 0 and lr_decay in (0, 1]")
        if self.lr_schedule not in ("exponential", "cosine"):
            raise ValueError(f"lr_schedule must be exponential or cosine, got {self.lr_schedule!r}")
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {sorted(MONITORS)}, got {self.monitor!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VisualTrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def bn_momentum_for(train_videos: int, batch_size: int) -> float:
    """4 / (steps per epoch), within [0.01, 0.5].

    The running statistics forget their start as (1 - momentum)^steps. ml/visual/nextvlad.py's 0.01 suits
    runs of thousands of steps; a demo epoch is about ten steps, where 0.01 leaves the eval-mode
    statistics far from the training ones (measured on 300 synthetic videos: validation loss 11
    after ten epochs where 0.1 reached 3.5, badly scaled probabilities, though the ranking was fine;
    0.1 still needed six epochs to catch up, 0.4 one). With this rule every epoch moves the
    statistics at least 1 - e^-4 = 98% of the way, and runs of 400 steps an epoch or more keep 0.01.
    """
    steps = max(1, math.ceil(train_videos / batch_size))
    return float(min(0.5, max(0.01, 4.0 / steps)))


def build_network(config: VisualTrainConfig, feature_dim: int, num_classes: int, meta_dim: int = 0) -> nn.Module:
    """The classifier for ``config.arch``: both share ClassifierHead, so only the aggregation differs.

    ``config.bn_momentum`` None means ml/visual/nextvlad.py's default here; ``train_visual_model`` replaces
    it by ``bn_momentum_for`` the data before building.
    """
    momentum = BN_MOMENTUM if config.bn_momentum is None else config.bn_momentum
    if config.arch == "nextvlad":
        return NeXtVLADClassifier(
            feature_dim,
            num_classes,
            cluster_size=config.cluster_size,
            hidden_size=config.hidden_size,
            expansion=config.expansion,
            groups=config.groups,
            max_frames=config.max_frames,
            dropout=config.dropout,
            gating_reduction=config.gating_reduction,
            meta_dim=meta_dim,
            bn_momentum=momentum,
        )
    if config.arch == "meanpool":
        return MeanPoolClassifier(
            feature_dim,
            num_classes,
            hidden_size=config.hidden_size,
            dropout=config.dropout,
            gating_reduction=config.gating_reduction,
            meta_dim=meta_dim,
            bn_momentum=momentum,
        )
    raise ValueError(f"arch must be one of {ARCHS}, got {config.arch!r}")


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def load_network(checkpoint: Path, map_location: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The eval-mode network of a training checkpoint and its hyperparameters, without Lightning.

    The checkpoint holds plain types only (VisualModule saves them so), so it loads with
    ``weights_only=True`` and opening it cannot execute code.
    """
    import torch

    ckpt = torch.load(str(checkpoint), map_location=map_location, weights_only=True)
    hp = ckpt["hyper_parameters"]
    config = VisualTrainConfig.from_dict(hp.get("config") or {})
    network = build_network(config, int(hp["feature_dim"]), len(hp["categories"]), int(hp.get("meta_dim", 0)))
    state = {k.removeprefix("network."): v for k, v in ckpt["state_dict"].items() if k.startswith("network.")}
    network.load_state_dict(state)
    return network.eval(), hp
