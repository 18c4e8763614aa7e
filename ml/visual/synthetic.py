"""A synthetic catalog of frame embeddings where frame-level aggregation matters, with its true labels.

For tests, benchmarks and the architecture table only: the pipeline never reads it. Its categories show
in a few frames of a video, and half of them ("blend") leave the video's mean unchanged, so a model
that averages frames cannot see them and one that looks at individual frames (NeXtVLAD) can; the
teacher's pseudo-labels are its true labels with known noise. NumPy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml.frames.embedding_store import VideoEmbeddings, write_shard


@dataclass
class SyntheticCatalog:
    shards: list[Path]
    categories: list[str]
    labels: dict[str, np.ndarray]  # true 0/1 per video
    targets: dict[str, np.ndarray]  # noisy teacher pseudo-labels (hard 0/1) per video
    kinds: list[str]  # per category: "distinct" or "blend"
    n_frames: dict[str, int] = field(default_factory=dict)


def _sparse_prototype(rng: np.random.Generator, dim: int, density: float = 0.25) -> np.ndarray:
    """Non-negative and sparse like pooled ReLU6 features (EfficientNet-Lite's live in [0, 6])."""
    return (rng.gamma(1.0, 0.8, dim) * (rng.random(dim) < density)).astype(np.float32)


def synthetic_catalog(
    directory: Path,
    n_videos: int,
    *,
    dim: int = 64,
    n_categories: int = 8,
    frames: tuple[int, int] = (10, 60),
    n_background: int = 12,
    blend_share: float = 0.5,
    label_noise: tuple[float, float] = (0.1, 0.01),
    videos_per_shard: int = 100,
    seed: int = 0,
) -> SyntheticCatalog:
    """Write shards of synthetic videos whose categories show in a few frames only.

    Each video is 10-60 frames drawn from a random mixture of three of ``n_background`` sparse
    non-negative prototypes. Each positive category inserts 1-3 frames of its own prototype. A
    "distinct" category's prototype is a new direction, so its frames also shift the video's mean; a
    "blend" category's prototype is an equal mix of two background prototypes, so the mean of a
    video with it is also the mean of some video of background frames only: mean pooling cannot see
    it, an aggregation that looks at individual frames can. ``targets`` mimic a teacher: each true
    positive is missed with probability ``label_noise[0]``, each negative becomes a positive with
    ``label_noise[1]``.
    """
    rng = np.random.default_rng(seed)
    background = np.stack([_sparse_prototype(rng, dim) for _ in range(n_background)])
    n_blend = round(n_categories * blend_share)
    kinds = ["distinct"] * (n_categories - n_blend) + ["blend"] * n_blend
    prototypes = []
    for kind in kinds:
        if kind == "distinct":
            prototypes.append(_sparse_prototype(rng, dim))
        else:
            a, b = rng.choice(n_background, size=2, replace=False)
            prototypes.append(0.5 * (background[a] + background[b]))
    prototypes = np.stack(prototypes)
    categories = [f"syn{c:03d}" for c in range(n_categories)]
    directory = Path(directory)
    labels: dict[str, np.ndarray] = {}
    targets: dict[str, np.ndarray] = {}
    lengths: dict[str, int] = {}

    def frame_of(proto: np.ndarray) -> np.ndarray:
        noisy = proto * rng.lognormal(0.0, 0.25, dim) + np.abs(rng.normal(0.0, 0.03, dim))
        return np.clip(noisy, 0.0, 6.0).astype(np.float32)

    def video(i: int) -> VideoEmbeddings:
        vid = f"syn-{seed}-{i:06d}"
        n = int(rng.integers(frames[0], frames[1] + 1))
        mix_ids = rng.choice(n_background, size=3, replace=False)
        mix = rng.dirichlet(np.ones(3))
        k = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
        positives = rng.choice(n_categories, size=k, replace=False)
        rows = [frame_of(background[mix_ids[rng.choice(3, p=mix)]]) for _ in range(n)]
        for c in positives:
            for slot in rng.choice(n, size=min(n, int(rng.integers(1, 4))), replace=False):
                rows[slot] = frame_of(prototypes[c])
        y = np.zeros(n_categories, dtype=np.float32)
        y[positives] = 1.0
        noisy = y.copy()
        noisy[(y == 1) & (rng.random(n_categories) < label_noise[0])] = 0.0
        noisy[(y == 0) & (rng.random(n_categories) < label_noise[1])] = 1.0
        labels[vid], targets[vid], lengths[vid] = y, noisy, n
        return VideoEmbeddings(vid, np.arange(n, dtype=np.float32), np.stack(rows))

    shards = []
    for start in range(0, n_videos, videos_per_shard):
        path = directory / f"syn{start // videos_per_shard:05d}.parquet"
        write_shard(
            path, (video(i) for i in range(start, min(n_videos, start + videos_per_shard))), encoder="synthetic"
        )
        shards.append(path)
    return SyntheticCatalog(shards, categories, labels, targets, kinds, lengths)
