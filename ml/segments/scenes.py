"""The scene: a time range of a video and the run of sampled frames inside it.

Scenes of one video tile ``[0, duration]``: the first starts at 0, each ends where the next starts and
the last ends at the duration, so every second of the video belongs to exactly one scene (what ad
serving and the per-second evaluation read). A boundary lies between two sampled frames, so each
scene owns a contiguous run of frames: the student scores exactly those.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scene:
    """One scene: ``[start_s, end_s)`` in seconds and its frames ``[first_frame, end_frame)``."""

    start_s: float
    end_s: float
    first_frame: int
    end_frame: int  # exclusive

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def n_frames(self) -> int:
        return self.end_frame - self.first_frame


def video_duration(timestamps: np.ndarray, fps: float = 1.0, duration_s: float | None = None) -> float:
    """The duration scenes tile: the probed one when known, else one sampling step past the last frame.

    A probed duration that does not lie past the last frame (a header that claims less than the file
    holds) is extended one sampling step past it: scenes are half-open, so a scene ending at the last
    frame's time would leave that frame in none. Otherwise the probed duration stands, so a normal
    video's last scene ends where the video does, not up to a step beyond.
    """
    last = float(timestamps[-1]) + 1.0 / fps if len(timestamps) else 0.0
    if duration_s is None or not np.isfinite(duration_s) or duration_s <= 0:
        return last
    if len(timestamps) and float(duration_s) <= float(timestamps[-1]):
        return last
    return float(duration_s)


def tile(boundaries: Sequence[float], timestamps: np.ndarray, duration_s: float) -> list[Scene]:
    """Scenes cut at ``boundaries`` (seconds, any order); those outside ``(0, duration)`` are dropped.

    A frame at time ``t`` belongs to the scene whose range holds ``t``.
    """
    ts = np.asarray(timestamps, dtype=np.float64)
    if duration_s <= 0:
        raise ValueError(f"duration must be positive, got {duration_s}")
    cuts = sorted({float(b) for b in boundaries if 0.0 < float(b) < duration_s})
    edges = [0.0, *cuts, float(duration_s)]
    frame_edges = [0, *(int(np.searchsorted(ts, c, side="left")) for c in cuts), len(ts)]
    return [Scene(edges[i], edges[i + 1], frame_edges[i], frame_edges[i + 1]) for i in range(len(edges) - 1)]


def check_tiling(scenes: Sequence[Scene], duration_s: float, n_frames: int | None = None, tol: float = 1e-6) -> None:
    """Raise ValueError unless the scenes tile ``[0, duration]`` in order with no gap or overlap."""
    if not scenes:
        raise ValueError("a video has at least one scene")
    if abs(scenes[0].start_s) > tol or abs(scenes[-1].end_s - duration_s) > tol:
        raise ValueError(f"scenes span [{scenes[0].start_s}, {scenes[-1].end_s}], not [0, {duration_s}]")
    for a, b in itertools.pairwise(scenes):
        if abs(a.end_s - b.start_s) > tol or a.end_frame != b.first_frame:
            raise ValueError(f"scenes [{a.start_s}, {a.end_s}) and [{b.start_s}, {b.end_s}) do not meet")
    for s in scenes:
        if not s.end_s > s.start_s or s.end_frame < s.first_frame:
            raise ValueError(f"scene [{s.start_s}, {s.end_s}) is empty or reversed")
    if scenes[0].first_frame != 0 or (n_frames is not None and scenes[-1].end_frame != n_frames):
        raise ValueError("the scenes' frames do not cover the video's frames")


def boundaries_of(scenes: Sequence[Scene]) -> list[float]:
    """The times where one scene ends and the next begins."""
    return [s.start_s for s in scenes[1:]]
