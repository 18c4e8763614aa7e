"""Out-of-distribution score: how unlike the student's training videos a video's frames are.

A student trained on one distribution (last year's uploads, one country, one kind of creator; on the
demo, synthetic scenes) scores anything; on a video unlike everything it learnt from, its confident
calls are guesses. The visual source abstains on such videos instead (ml/fusion/stage.py).

The score compares a video's mean-pooled frame embedding with its ``k`` nearest training videos
(centred on the training mean, in units of their root-mean-square spread) two ways, each divided by
its median over the training videos left out one at a time, and keeps the larger:
- the mean cosine distance: a video whose features point elsewhere (real footage against the demo's
  drawn scenes, a new kind of content) - on the demo it separates all 30 shared real clips, colour
  bars included, where a Euclidean distance lets the bars through;
- the mean Euclidean distance: a video out along the direction of some training videos has their
  direction but not their place, and only a distance sees that.
So 1.0 is a typical training video and the score reads as "times further than usual". k-NN rather
than a Mahalanobis distance: it needs no covariance of 1280 dimensions from a few hundred videos,
and it is not fooled by a video far from every training video but close to their average.

Calibration: the threshold is the ``1 - flag_share`` quantile of the scores of in-distribution
videos that are not in the reference: the student's validation videos, and every reference video
scored leave-one-out against the others. So about ``flag_share`` (default 3%) of videos like the
training data are flagged, by construction, and everything the model is stored with says how many
calibration videos that rests on.

Stored with the model (``ood.npz``): the reference (at most ``MAX_REFERENCE`` videos, a seeded
sample, float16), the mean, ``k``, the threshold and the calibration figures. NumPy only: scoring
never imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

OOD_NAME = "ood.npz"
DEFAULT_K = 5
DEFAULT_FLAG_SHARE = 0.03
MAX_REFERENCE = 10_000
CHUNK = 1024


def mean_pool(frames: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(B, M, D) padded frames (+ mask) -> (B, D) mean of the real frames; (n, D) -> (D,)."""
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim == 2:
        return frames.mean(axis=0) if len(frames) else np.zeros(frames.shape[1], np.float32)
    if mask is None:
        return frames.mean(axis=1)
    m = np.asarray(mask, dtype=np.float32)[..., None]
    return (frames * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)


@dataclass
class OodDetector:
    reference: np.ndarray  # (n, D) float32, centred and scaled
    mean: np.ndarray  # (D,)
    k: int
    threshold: float
    calibration: dict[str, Any]
    reference_ids: list[str]
    scale: float = 1.0  # root-mean-square distance of the training videos to their mean
    cosine_unit: float = 1.0  # median leave-one-out cosine k-NN distance of the training videos
    euclid_unit: float = 1.0  # the same for the Euclidean distance

    def _prepare(self, pooled: np.ndarray) -> np.ndarray:
        x = np.asarray(pooled, dtype=np.float32).reshape(-1, self.mean.shape[0]) - self.mean
        return x / np.float32(self.scale)

    def distances(self, pooled: np.ndarray, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(cosine, Euclidean) mean distances of each row of ``pooled`` (B, D) to its k nearest reference videos.

        ``exclude_self``: ``pooled`` are the reference rows themselves, in order; each skips its own
        row (leave-one-out), which is how the reference calibrates itself.
        """
        x = self._prepare(pooled)
        n = len(self.reference)
        k = min(self.k, n - 1 if exclude_self else n)
        if k < 1:
            return np.full(len(x), np.nan, np.float32), np.full(len(x), np.nan, np.float32)
        ref = self.reference.astype(np.float32)
        ref_sq = (ref**2).sum(axis=1)
        ref_unit = ref / np.maximum(np.sqrt(ref_sq), 1e-12)[:, None]
        cos = np.empty(len(x), np.float32)
        euc = np.empty(len(x), np.float32)
        for start in range(0, len(x), CHUNK):
            chunk = x[start : start + CHUNK]
            sq = (chunk**2).sum(axis=1)
            dot = chunk @ ref.T
            d2 = np.maximum(sq[:, None] + ref_sq[None, :] - 2.0 * dot, 0.0)
            dc = 1.0 - (chunk / np.maximum(np.sqrt(sq), 1e-12)[:, None]) @ ref_unit.T
            if exclude_self:
                rows = np.arange(len(chunk))
                d2[rows, start + rows] = np.inf
                dc[rows, start + rows] = np.inf
            euc[start : start + CHUNK] = np.sqrt(np.partition(d2, k - 1, axis=1)[:, :k]).mean(axis=1)
            cos[start : start + CHUNK] = np.partition(dc, k - 1, axis=1)[:, :k].mean(axis=1)
        return cos, euc

    def combine(self, cos: np.ndarray, euc: np.ndarray) -> np.ndarray:
        return np.maximum(cos / self.cosine_unit, euc / self.euclid_unit).astype(np.float32)

    def scores(self, pooled: np.ndarray, exclude_self: bool = False) -> np.ndarray:
        """The score: the larger of the two distances, each in units of its typical training value."""
        return self.combine(*self.distances(pooled, exclude_self))

    def flag(self, scores: np.ndarray) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        return np.where(np.isfinite(s), s > self.threshold, False)

    def save(self, directory: Path) -> Path:
        path = Path(directory) / OOD_NAME
        np.savez_compressed(
            path,
            reference=self.reference.astype(np.float16),
            mean=self.mean.astype(np.float32),
            k=np.int64(self.k),
            threshold=np.float64(self.threshold),
            scale=np.float64(self.scale),
            cosine_unit=np.float64(self.cosine_unit),
            euclid_unit=np.float64(self.euclid_unit),
            reference_ids=np.asarray(self.reference_ids, dtype=str),
            calibration_keys=np.asarray(list(self.calibration), dtype=str),
            calibration_values=np.asarray([float(v) for v in self.calibration.values()], dtype=np.float64),
        )
        return path


def load_detector(directory: Path) -> OodDetector | None:
    """The model's detector, or None for a model stored without one (trained before it existed)."""
    path = Path(directory) / OOD_NAME
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        return OodDetector(
            reference=z["reference"].astype(np.float32),
            mean=z["mean"],
            k=int(z["k"]),
            threshold=float(z["threshold"]),
            calibration=dict(zip(z["calibration_keys"].tolist(), z["calibration_values"].tolist(), strict=True)),
            reference_ids=z["reference_ids"].tolist(),
            scale=float(z["scale"]),
            cosine_unit=float(z["cosine_unit"]),
            euclid_unit=float(z["euclid_unit"]),
        )


def fit_detector(
    train: Mapping[str, np.ndarray],
    heldout: Mapping[str, np.ndarray],
    *,
    k: int = DEFAULT_K,
    flag_share: float = DEFAULT_FLAG_SHARE,
    max_reference: int = MAX_REFERENCE,
    seed: int = 0,
) -> OodDetector:
    """Reference = the training videos' pooled embeddings; threshold from held-out in-distribution scores.

    ``train`` / ``heldout``: video id -> mean-pooled embedding (D,). The held-out scores are those of
    ``heldout`` against the reference and of the reference leave-one-out.
    """
    if not 0 < flag_share < 0.5:
        raise ValueError(f"flag_share must be in (0, 0.5), got {flag_share}")
    ids = sorted(train)
    if len(ids) < 2:
        raise ValueError(f"an out-of-distribution reference needs at least 2 training videos, got {len(ids)}")
    if len(ids) > max_reference:
        pick = np.sort(np.random.default_rng(seed).choice(len(ids), size=max_reference, replace=False))
        ids = [ids[i] for i in pick]
    raw = np.stack([np.asarray(train[v], dtype=np.float32) for v in ids])
    mean = raw.mean(axis=0)
    scale = float(np.sqrt(((raw - mean) ** 2).sum(axis=1).mean())) or 1.0
    reference = (raw - mean) / np.float32(scale)
    detector = OodDetector(reference, mean, k, np.inf, {}, ids, scale)
    loo_cos, loo_euc = detector.distances(raw, exclude_self=True)
    ok = np.isfinite(loo_cos) & np.isfinite(loo_euc)
    if ok.any():
        detector.cosine_unit = float(np.median(loo_cos[ok])) or 1.0
        detector.euclid_unit = float(np.median(loo_euc[ok])) or 1.0
    loo = detector.combine(loo_cos, loo_euc)
    held_ids = sorted(heldout)
    held = detector.scores(np.stack([heldout[v] for v in held_ids])) if held_ids else np.zeros(0, np.float32)
    calib = np.concatenate([loo[np.isfinite(loo)], held[np.isfinite(held)]])
    detector.threshold = float(np.quantile(calib, 1.0 - flag_share)) if len(calib) else np.inf
    detector.calibration = {
        "flag_share": flag_share,
        "reference_videos": len(ids),
        "calibration_videos": len(calib),
        "heldout_videos": len(held_ids),
        "heldout_flagged_share": float((held > detector.threshold).mean()) if len(held) else float("nan"),
        "median_score": float(np.median(calib)) if len(calib) else float("nan"),
    }
    return detector


def pooled_by_video(videos: Iterable[Any], wanted: set[str] | None = None) -> dict[str, np.ndarray]:
    """video id -> mean-pooled embedding, from ``VideoEmbeddings`` (frameless videos skipped)."""
    out: dict[str, np.ndarray] = {}
    for v in videos:
        if (wanted is None or v.video_id in wanted) and v.n_frames:
            out[v.video_id] = mean_pool(np.asarray(v.embeddings, dtype=np.float32))
    return out


def split_pooled(
    pooled: Mapping[str, np.ndarray], train_ids: Sequence[str], val_ids: Sequence[str]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    return (
        {v: pooled[v] for v in train_ids if v in pooled},
        {v: pooled[v] for v in val_ids if v in pooled},
    )
