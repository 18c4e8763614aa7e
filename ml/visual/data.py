"""Training and scoring data for the visual model, streamed from the embedding shards.

The catalog's frame embeddings do not fit in memory at scale (a million videos of up to 300 x 1280
uint8 codes is hundreds of GB), so nothing here loads a split: ``ShardStream`` walks the shards one
row group at a time, keeps a bounded shuffle buffer of videos (as uint8 codes, 4x smaller than
floats; they are dequantized when they leave the buffer) and yields one video at a time. Every
shard is opened once per pass; the shard order is reshuffled each epoch from ``(seed, epoch)`` so a
run is reproducible and epochs still differ.

The train/validation split is a hash of the video id, not a random draw: the same video lands on
the same side in every run, whatever the seed, the catalog size or the order rows come back in, so
a retrained model is validated on videos its predecessor never trained on either.

Targets are float vectors aligned with the model's categories: 1/0 editor labels or hard
pseudo-labels, calibrated teacher scores (soft targets), or NaN where nobody said anything about a
category (left out of the loss). Weights, when given, are a second vector per video: how much each
known target counts in the loss (a human label 1, a pseudo-label its confidence). Validation GAP
binarizes targets at 0.5.

Training examples can be augmented at the frame level (``FrameAugment``): a temporal crop and a
random subset of the frames, drawn from ``(seed, epoch, worker)`` so a run is reproducible. A video
seen through a different subset of its frames each epoch is how a few hundred labelled videos teach
an aggregation that does not memorise one fixed bag of frames.

torch and Lightning are imported at module level: only training and scoring code imports this module.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ml.frames.embedding_store import Quantization, dequantize, iter_videos, read_metadata
from ml.visual.batches import (  # noqa: F401 - re-exported: the training side's batch vocabulary
    DEFAULT_MAX_FRAMES,
    Batch,
    Example,
    _meta_for,
    batch_videos,
    cap_frames,
    iter_eval_batches,
    meta_dim_of,
    pad,
)

SPLIT_SALT = "vidcat-visual-split-v1"
# Below this many wanted ids, iter_videos filters row groups itself (skipping those without any);
# above it, its per-row-group set conversion costs more than filtering the ids here.
ROW_GROUP_FILTER_MAX_IDS = 4096


# ---------------------------------------------------------------------------------------------------
# Splits and targets


def split_position(video_id: str, salt: str = SPLIT_SALT) -> float:
    """A uniform number in [0, 1) fixed by the id alone: the video's place in every split."""
    digest = hashlib.sha256(f"{salt}\x00{video_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def is_validation(video_id: str, val_fraction: float, salt: str = SPLIT_SALT) -> bool:
    return split_position(video_id, salt) < val_fraction


def split_ids(video_ids: Iterable[str], val_fraction: float, salt: str = SPLIT_SALT) -> tuple[list[str], list[str]]:
    """(train, validation) ids, each sorted; the same ids always split the same way."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    train, val = [], []
    for vid in sorted(set(video_ids)):
        (val if is_validation(vid, val_fraction, salt) else train).append(vid)
    return train, val


def targets_from_rows(
    rows: Iterable[Mapping[str, Any] | Sequence[Any]], categories: Sequence[str], *, unknown: float = 0.0
) -> dict[str, np.ndarray]:
    """video_id -> float32 target vector from ``pseudo_labels`` rows (video_id, category_id, target).

    A (video, category) pair without a row gets ``unknown``: 0.0 treats the teacher's silence as a
    negative (YouTube-8M style, every unlisted class is negative); NaN leaves it out of the loss.
    Rows for categories the model does not cover are ignored.
    """
    index = {str(c): i for i, c in enumerate(categories)}
    out: dict[str, np.ndarray] = {}
    for row in rows:
        if isinstance(row, Mapping):
            vid, cat, target = row["video_id"], row["category_id"], row["target"]
        else:
            vid, cat, target = row[0], row[1], row[2]
        j = index.get(str(cat))
        if j is None:
            continue
        vec = out.get(str(vid))
        if vec is None:
            vec = out[str(vid)] = np.full(len(index), unknown, dtype=np.float32)
        vec[j] = float(target)
    return out


def binarize(targets: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Boolean labels from hard or soft targets; unknown (NaN) counts as negative."""
    t = np.asarray(targets, dtype=np.float32)
    return np.nan_to_num(t, nan=0.0) >= threshold


# ---------------------------------------------------------------------------------------------------
# Examples and batches


def collate(examples: Sequence[Example], max_frames: int = DEFAULT_MAX_FRAMES) -> Batch:
    """DataLoader collate: ``pad`` then torch tensors (no copies of the padded arrays)."""
    b = pad(examples, max_frames)
    return Batch(
        b.video_ids,
        torch.from_numpy(b.frames),
        torch.from_numpy(b.mask),
        torch.from_numpy(b.meta),
        torch.from_numpy(b.targets),
        torch.from_numpy(b.n_frames),
        torch.from_numpy(b.weights),
    )


@dataclass(frozen=True)
class FrameAugment:
    """Frame-level augmentation of a training video (never of validation or scoring).

    With probability ``p`` a video is seen through a temporal crop (a contiguous window of at least
    ``crop_min`` of its frames; 1.0 turns cropping off) and then a random subset of at least
    ``subset_min`` of the remaining frames, in their original order. A video always keeps one frame.
    """

    p: float = 0.5
    crop_min: float = 0.75
    subset_min: float = 0.6

    def __post_init__(self) -> None:
        if not (0.0 <= self.p <= 1.0 and 0.0 < self.crop_min <= 1.0 and 0.0 < self.subset_min <= 1.0):
            raise ValueError("FrameAugment needs p in [0, 1] and crop_min, subset_min in (0, 1]")

    def __call__(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(frames)
        if n <= 1 or rng.random() >= self.p:
            return frames
        length = max(1, int(np.ceil(n * rng.uniform(self.crop_min, 1.0))))
        start = int(rng.integers(0, n - length + 1))
        window = frames[start : start + length]
        keep = max(1, int(np.ceil(len(window) * rng.uniform(self.subset_min, 1.0))))
        chosen = np.sort(rng.choice(len(window), size=keep, replace=False))
        return window[chosen]


# ---------------------------------------------------------------------------------------------------
# Streaming


def _shuffle_buffer(items: Iterable[Any], size: int, rng: np.random.Generator) -> Iterator[Any]:
    """Approximate shuffle in bounded memory: each new item replaces a random one that leaves."""
    buffer: list[Any] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        j = int(rng.integers(size))
        yield buffer[j]
        buffer[j] = item
    for j in rng.permutation(len(buffer)):
        yield buffer[j]


class ShardStream(IterableDataset):
    """Videos of the shards as ``Example``s, restricted to ``video_ids`` (and, when given, to ``targets``).

    One pass opens every shard once. With ``shuffle`` the shard order is a permutation drawn from
    ``(seed, epoch)`` and videos pass through a shuffle buffer of ``buffer_size``; without it, videos
    come in shard order. With DataLoader workers, shards are dealt round-robin to workers after the
    permutation, so no shard is read by two workers. Videos without frames are skipped (nothing to
    learn from), as are videos without a target when targets are given.
    """

    def __init__(
        self,
        shards: Sequence[Path],
        targets: Mapping[str, np.ndarray] | None = None,
        meta: Mapping[str, np.ndarray] | None = None,
        *,
        video_ids: Iterable[str] | None = None,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        buffer_size: int = 256,
        max_frames: int = DEFAULT_MAX_FRAMES,
        meta_dim: int | None = None,
        weights: Mapping[str, np.ndarray] | None = None,
        augment: FrameAugment | None = None,
    ) -> None:
        super().__init__()
        self.shards = [Path(s) for s in shards]
        self.targets = targets
        self.weights = weights
        self.augment = augment
        self.meta = meta
        wanted = None if video_ids is None else set(video_ids)
        if targets is not None:
            wanted = set(targets) if wanted is None else wanted & set(targets)
        self.wanted = wanted
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = epoch
        self.buffer_size = max(1, buffer_size)
        self.max_frames = max_frames
        self.meta_dim = meta_dim_of(meta) if meta_dim is None else meta_dim
        self._no_meta = np.zeros(self.meta_dim, dtype=np.float32)
        self._no_target = np.zeros(0, dtype=np.float32)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def shard_order(self, epoch: int | None = None) -> list[Path]:
        if not self.shuffle:
            return list(self.shards)
        rng = np.random.default_rng([self.seed, self.epoch if epoch is None else epoch])
        return [self.shards[i] for i in rng.permutation(len(self.shards))]

    def _codes(self, shards: Sequence[Path]) -> Iterator[tuple[str, np.ndarray, Quantization]]:
        """(video_id, uint8 codes, quantization) of the wanted videos, shard after shard."""
        wanted = self.wanted
        for path in shards:
            q = Quantization.from_dict(read_metadata(path)["quantization"])
            pushdown = wanted if wanted is not None and len(wanted) <= ROW_GROUP_FILTER_MAX_IDS else None
            for video in iter_videos(path, video_ids=pushdown, dequantized=False):
                if wanted is not None and video.video_id not in wanted:
                    continue
                if video.n_frames == 0:
                    continue
                yield video.video_id, cap_frames(video.embeddings, self.max_frames), q

    def _example(self, item: tuple[str, np.ndarray, Quantization], rng: np.random.Generator | None) -> Example:
        vid, codes, q = item
        target = self._no_target if self.targets is None else np.asarray(self.targets[vid], dtype=np.float32)
        weight = None if self.weights is None else self.weights.get(vid)
        if self.augment is not None and rng is not None:
            codes = self.augment(codes, rng)
        return Example(vid, dequantize(codes, q), target, _meta_for(self.meta, vid, self._no_meta), weight)

    def __iter__(self) -> Iterator[Example]:
        shards = self.shard_order()
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        items = self._codes(shards[worker::workers])
        if self.shuffle:
            items = _shuffle_buffer(items, self.buffer_size, np.random.default_rng([self.seed, self.epoch, worker]))
        # A stream of its own for augmentation, so switching it on or off leaves the shuffle unchanged.
        rng = np.random.default_rng([self.seed, self.epoch, worker, 1]) if self.augment is not None else None
        for item in items:
            yield self._example(item, rng)


# ---------------------------------------------------------------------------------------------------
# Lightning data module


class VisualDataModule(pl.LightningDataModule):
    """Train and validation streams over the same shards, split by ``split_ids``.

    The training loader is rebuilt every epoch (the trainer runs with
    ``reload_dataloaders_every_n_epochs=1``) with the trainer's current epoch, which reshuffles the
    shard order also when DataLoader workers receive a fresh copy of the dataset each epoch.
    """

    def __init__(
        self,
        shards: Sequence[Path],
        targets: Mapping[str, np.ndarray],
        meta: Mapping[str, np.ndarray] | None = None,
        *,
        val_fraction: float = 0.15,
        split_salt: str = SPLIT_SALT,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        max_frames: int = DEFAULT_MAX_FRAMES,
        shuffle_buffer: int = 256,
        seed: int = 0,
        num_workers: int = 0,
        weights: Mapping[str, np.ndarray] | None = None,
        augment: FrameAugment | None = None,
    ) -> None:
        super().__init__()
        if not shards:
            raise ValueError("no embedding shards to train on")
        self.shards = [Path(s) for s in shards]
        self.targets = targets
        self.weights = weights
        self.augment = augment
        self.meta = meta
        self.meta_dim = meta_dim_of(meta)
        self.train_ids, self.val_ids = split_ids(targets, val_fraction, split_salt)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.max_frames = max_frames
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.num_workers = num_workers

    def _epoch(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.current_epoch) if trainer is not None else 0

    def train_dataset(self, epoch: int | None = None) -> ShardStream:
        return ShardStream(
            self.shards,
            self.targets,
            self.meta,
            video_ids=self.train_ids,
            shuffle=True,
            seed=self.seed,
            epoch=self._epoch() if epoch is None else epoch,
            buffer_size=self.shuffle_buffer,
            max_frames=self.max_frames,
            meta_dim=self.meta_dim,
            weights=self.weights,
            augment=self.augment,
        )

    def val_dataset(self) -> ShardStream:
        return ShardStream(
            self.shards,
            self.targets,
            self.meta,
            video_ids=self.val_ids,
            shuffle=False,
            max_frames=self.max_frames,
            meta_dim=self.meta_dim,
            weights=self.weights,
        )

    def _loader(self, dataset: ShardStream, batch_size: int) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=self.num_workers,
            collate_fn=functools.partial(collate, max_frames=self.max_frames),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset(), self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset(), self.eval_batch_size)
