"""Scene thresholds, certified like the video thresholds: on verified (gold) scenes, same policy.

A gold video carries its scenes as an editor verified them: time ranges, each with its category. The
scenes the detector finds in that video are the units the promise is about, so each detected scene is
judged against those ranges: it is a positive for a category when the category covers at least
``min_share`` of its duration (a majority, by default). The thresholds are then
``ml.thresholds.select_thresholds`` on (scene scores, scene truth) at the configured bound and
confidence: the same fixed-sequence Clopper-Pearson cut as for videos, so the promise reads the same
with "scenes" for "videos", and one more clause: the bound counts each scene as an independent draw,
which scenes of one gold video are not (docs/segments.md).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from ml.segments.scenes import Scene
from ml.thresholds import DEFAULT_POLICY, Threshold, ThresholdPolicy, select_thresholds, threshold_vector

TimeRange = tuple[float, float, str]  # (start s, end s, category id)


def scene_truth(
    scenes: Sequence[Scene], ranges: Sequence[TimeRange], categories: Sequence[str], min_share: float = 0.5
) -> np.ndarray:
    """Bool ``(len(scenes), len(categories))``: category ``c`` covers at least ``min_share`` of the scene.

    ``ranges`` may overlap (two categories at once) and need not cover the video; a category outside
    ``categories`` is ignored.
    """
    col = {c: j for j, c in enumerate(categories)}
    cover = np.zeros((len(scenes), len(categories)))
    for start, end, category in ranges:
        j = col.get(str(category))
        if j is None:
            continue
        for i, s in enumerate(scenes):
            cover[i, j] += max(0.0, min(end, s.end_s) - max(start, s.start_s))
    lengths = np.array([max(s.duration_s, 1e-9) for s in scenes])[:, None]
    return cover / lengths >= min_share - 1e-9


def certify_scene_thresholds(
    scores: np.ndarray, truth: np.ndarray, policy: ThresholdPolicy = DEFAULT_POLICY
) -> list[Threshold]:
    """Per category: the scene threshold certified on gold scenes (``ml.thresholds``), or why not.

    ``scores`` ``(S, C)`` are the student's scene scores of the gold videos' detected scenes (NaN: not
    scored), ``truth`` ``(S, C)`` their verified labels (``scene_truth``).
    """
    scores = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(truth, dtype=bool)
    if scores.shape != truth.shape:
        raise ValueError(f"scores {scores.shape} and truth {truth.shape} differ in shape")
    return select_thresholds(scores, truth, policy)


def emitted(scores: np.ndarray, thresholds: Sequence[Threshold]) -> np.ndarray:
    """Bool ``(S, C)``: the categories each scene is given (a score at or above a certified threshold)."""
    cut = threshold_vector(list(thresholds))
    with np.errstate(invalid="ignore"):
        return np.asarray(scores, dtype=np.float64) >= cut[None, :]


def scene_categories(scores: np.ndarray, thresholds: Sequence[Threshold], categories: Sequence[str]) -> list[list[str]]:
    """The category ids each scene is given, highest score first."""
    fired = emitted(scores, thresholds)
    out = []
    for row, s in zip(fired, np.asarray(scores), strict=True):
        idx = np.flatnonzero(row)
        out.append([categories[j] for j in idx[np.argsort(-s[idx], kind="stable")]])
    return out


def best_category(
    scores: np.ndarray, categories: Sequence[str], certified: Collection[str]
) -> tuple[str, float, bool] | None:
    """A scene's best category by the student's score, that score, and whether the category has a
    certified scene threshold; None for a scene without a score (no frame).

    What says why a scene was given nothing: below its certified threshold, or no threshold to pass.
    """
    row = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(row).any():
        return None
    j = int(np.nanargmax(row))
    return categories[j], float(row[j]), categories[j] in certified
