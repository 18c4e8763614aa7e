"""Padded batches of frame embeddings for scoring: numpy only, so serving never imports torch.

Training (ml/visual/data.py) turns the same batches into tensors; scoring (ml/visual/predictor.py)
feeds them to onnxruntime as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ml.frames.embedding_store import VideoEmbeddings, iter_videos

DEFAULT_MAX_FRAMES = 300


class Example(NamedTuple):
    video_id: str
    frames: np.ndarray  # float32 (n, D), n <= max_frames
    target: np.ndarray  # float32 (C,); empty when scoring
    meta: np.ndarray  # float32 (m,); empty when the model has no metadata
    weight: np.ndarray | None = None  # float32 (C,): loss weight per category; None means 1 everywhere


class Batch(NamedTuple):
    """Padded videos. numpy arrays from ``batch_videos``, torch tensors from ``collate``."""

    video_ids: list[str]
    frames: Any  # float32 (B, M, D), zeros past each video's length
    mask: Any  # bool (B, M), true on real frames
    meta: Any  # float32 (B, m)
    targets: Any  # float32 (B, C); (B, 0) when scoring
    n_frames: Any  # int64 (B,), before the max_frames cap
    weights: Any = None  # float32 (B, C) loss weights, like targets; None when scoring


def cap_frames(frames: np.ndarray, max_frames: int) -> np.ndarray:
    """At most ``max_frames`` rows, evenly spaced over the video so the whole of it stays represented."""
    if len(frames) <= max_frames:
        return frames
    keep = np.linspace(0, len(frames) - 1, max_frames).round().astype(np.int64)
    return frames[keep]


def pad(
    examples: Sequence[Example], max_frames: int = DEFAULT_MAX_FRAMES, n_frames: Sequence[int] | None = None
) -> Batch:
    """Pad to the longest video in the batch (at least one frame, so a frameless video still has a row)."""
    if not examples:
        raise ValueError("cannot pad an empty batch")
    frames = [cap_frames(e.frames, max_frames) for e in examples]
    longest = max(1, max(len(f) for f in frames))
    dim = examples[0].frames.shape[1]
    out = np.zeros((len(examples), longest, dim), dtype=np.float32)
    mask = np.zeros((len(examples), longest), dtype=bool)
    for i, f in enumerate(frames):
        out[i, : len(f)] = f
        mask[i, : len(f)] = True
    targets = np.stack([np.asarray(e.target, dtype=np.float32) for e in examples])
    weights = np.stack(
        [
            np.ones_like(t) if e.weight is None else np.asarray(e.weight, np.float32)
            for e, t in zip(examples, targets, strict=True)
        ]
    )
    return Batch(
        video_ids=[e.video_id for e in examples],
        frames=out,
        mask=mask,
        meta=np.stack([np.asarray(e.meta, dtype=np.float32) for e in examples]),
        targets=targets,
        n_frames=np.asarray([len(e.frames) for e in examples] if n_frames is None else n_frames, dtype=np.int64),
        weights=weights,
    )


def _meta_for(meta: Mapping[str, np.ndarray] | None, video_id: str, default: np.ndarray) -> np.ndarray:
    if not meta:
        return default
    vec = meta.get(video_id)
    return default if vec is None else np.asarray(vec, dtype=np.float32)


def meta_dim_of(meta: Mapping[str, np.ndarray] | None) -> int:
    """Width of the metadata vectors (0 without metadata); every vector must have it."""
    if not meta:
        return 0
    dims = {np.asarray(v).shape for v in meta.values()}
    if len(dims) != 1 or len(next(iter(dims))) != 1:
        raise ValueError(f"metadata vectors must all be 1-D of one length, got shapes {sorted(dims)}")
    return next(iter(dims))[0]


def batch_videos(
    videos: Iterable[VideoEmbeddings],
    meta: Mapping[str, np.ndarray] | None = None,
    *,
    meta_dim: int | None = None,
    default_meta: np.ndarray | None = None,
    batch_size: int = 64,
    max_frames: int = DEFAULT_MAX_FRAMES,
    length_window: int = 8,
) -> Iterator[Batch]:
    """Scoring batches (numpy) over any stream of videos, every video exactly once, frameless ones too.

    Videos are read ``batch_size * length_window`` at a time and sorted by length inside that window,
    so a batch holds videos of similar length and little compute goes to padding, while memory stays
    bounded. Output order is therefore not input order: use ``Batch.video_ids``. Videos missing from
    ``meta`` get ``default_meta`` (zeros if not given).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dim = meta_dim_of(meta) if meta_dim is None else meta_dim
    no_meta = np.zeros(dim, dtype=np.float32) if default_meta is None else np.asarray(default_meta, np.float32)
    no_target = np.zeros(0, dtype=np.float32)
    window: list[Example] = []

    def flush() -> Iterator[Batch]:
        window.sort(key=lambda e: len(e.frames))
        for i in range(0, len(window), batch_size):
            chunk = window[i : i + batch_size]
            yield pad(chunk, max_frames)
        window.clear()

    for v in videos:
        frames = np.asarray(v.embeddings, dtype=np.float32)
        window.append(Example(v.video_id, frames, no_target, _meta_for(meta, v.video_id, no_meta)))
        if len(window) >= batch_size * max(1, length_window):
            yield from flush()
    yield from flush()


def iter_eval_batches(
    shards: Sequence[Path],
    meta: Mapping[str, np.ndarray] | None = None,
    *,
    video_ids: Iterable[str] | None = None,
    meta_dim: int | None = None,
    batch_size: int = 64,
    max_frames: int = DEFAULT_MAX_FRAMES,
    length_window: int = 8,
) -> Iterator[Batch]:
    """``batch_videos`` over shards (optionally only some videos): for scoring and evaluation."""
    ids = None if video_ids is None else set(video_ids)
    videos = iter_videos([Path(s) for s in shards], video_ids=ids)
    return batch_videos(
        videos, meta, meta_dim=meta_dim, batch_size=batch_size, max_frames=max_frames, length_window=length_window
    )
