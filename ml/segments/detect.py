"""Scene boundaries from the 1 fps frame embeddings the frame stage stored: no second decode.

A cut changes what the encoder sees all at once, so the embedding jumps between two consecutive
samples; a cross-fade spreads that jump over the samples inside the fade. Two signals, one value
per gap between consecutive frames ``t`` and ``t + 1``:

* ``consecutive``: the distance between the two frames.
* ``window``: the distance between the mean of the ``window`` frames before the gap and the mean of
  the ``window`` frames after it (shorter windows at the video's ends). Averaging smooths a scene's own
  motion and sums a fade's steps into one peak.

The distance is cosine, or Euclidean over the video's median frame norm (so one threshold fits
videos of any brightness or texture).

Peaks are picked greedily, highest first: a gap whose signal reaches ``threshold`` becomes a
boundary unless it lies closer than ``min_scene_s`` to the video's start or end or to a boundary
already taken. The boundary's time is the midpoint between the two frames (at 1 fps at most 0.5 s
from the cut). The method and its parameters are chosen on the segment benchmark's gold share
(docs/segments.md); ``DEFAULT_DETECTOR`` is that choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.segments.scenes import Scene, tile, video_duration

METHODS = ("consecutive", "window")
METRICS = ("cosine", "euclidean")


@dataclass(frozen=True)
class DetectorParams:
    """How boundaries are found (``method`` one of ``METHODS``; ``window`` only for ``"window"``)."""

    method: str = "window"
    window: int = 3
    threshold: float = 0.26
    min_scene_s: float = 3.0
    metric: str = "cosine"  # or "euclidean": distance between the two sides over the video's median frame norm

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if self.window < 1:
            raise ValueError("window must be >= 1")
        if self.min_scene_s < 0:
            raise ValueError("min_scene_s must be >= 0")


DEFAULT_DETECTOR = DetectorParams()


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def _distance(before: np.ndarray, after: np.ndarray, scale: float, metric: str) -> np.ndarray:
    """Row-wise distance between two sides of each gap; ``scale`` makes Euclidean distances comparable."""
    if metric == "cosine":
        return 1.0 - np.sum(_unit(before) * _unit(after), axis=1)
    return np.linalg.norm(before - after, axis=1) / max(scale, 1e-12)


def boundary_signal(embeddings: np.ndarray, params: DetectorParams = DEFAULT_DETECTOR) -> np.ndarray:
    """One distance per gap between consecutive frames, ``(N - 1,)`` for ``N`` frames."""
    e = np.asarray(embeddings, dtype=np.float64)
    n = len(e)
    if n < 2:
        return np.zeros(0)
    scale = float(np.median(np.linalg.norm(e, axis=1)))
    if params.method == "consecutive":
        return _distance(e[:-1], e[1:], scale, params.metric)
    w = params.window
    csum = np.vstack([np.zeros((1, e.shape[1])), np.cumsum(e, axis=0)])
    gaps = np.arange(1, n)  # the gap before frame g
    lo = np.maximum(gaps - w, 0)
    hi = np.minimum(gaps + w, n)
    before = (csum[gaps] - csum[lo]) / (gaps - lo)[:, None]
    after = (csum[hi] - csum[gaps]) / (hi - gaps)[:, None]
    return _distance(before, after, scale, params.metric)


def pick_boundaries(
    signal: np.ndarray, timestamps: np.ndarray, duration_s: float, params: DetectorParams = DEFAULT_DETECTOR
) -> list[float]:
    """Boundary times (sorted) from a gap signal: greedy peaks at or above the threshold, spaced ``min_scene_s``."""
    ts = np.asarray(timestamps, dtype=np.float64)
    times = (ts[:-1] + ts[1:]) / 2.0
    taken: list[float] = []
    for g in np.argsort(-np.asarray(signal), kind="stable"):
        if signal[g] < params.threshold:
            break
        t = float(times[g])
        if t < params.min_scene_s or duration_s - t < params.min_scene_s:
            continue
        if all(abs(t - b) >= params.min_scene_s for b in taken):
            taken.append(t)
    return sorted(taken)


def detect_scenes(
    timestamps: np.ndarray,
    embeddings: np.ndarray,
    duration_s: float | None = None,
    params: DetectorParams = DEFAULT_DETECTOR,
    fps: float = 1.0,
) -> list[Scene]:
    """A video's scenes from its stored frame embeddings; they tile ``[0, duration]`` (``scenes.tile``).

    ``duration_s``: the probed duration (None: one sampling step past the last frame).
    """
    ts = np.asarray(timestamps, dtype=np.float64)
    duration = video_duration(ts, fps, duration_s)
    if duration <= 0:
        raise ValueError("a video without frames or duration has no scenes")
    signal = boundary_signal(embeddings, params)
    return tile(pick_boundaries(signal, ts, duration, params), ts, duration)
