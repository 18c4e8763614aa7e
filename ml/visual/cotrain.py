"""Pseudo-labels for the pool: the teacher's text evidence and the student's first look, combined.

A title tells the teacher one category well (the one it names) and says nothing of the rest: on the
demo's pool the teacher's calls are about 0.85 precise but find only about half of the true labels,
because most videos show a second category that no title mentions. Read as targets on their own, the
silent half becomes false negatives and the student gets worse than with the editor labels alone.
The frames see the second category; the text sees what the frames confuse. So each pool video's target
is the posterior of both views, treated as independent evidence over the same base rate:

    logit p = logit p_visual + logit p_text - logit base_rate

where ``p_visual`` is round one's score (trained on the editor labels) after a pooled Platt
calibration fitted on its cross-validated scores of the editor videos, ``p_text`` the teacher's
calibrated probability and ``base_rate`` the category's share among the editor videos. A video without
text keeps ``p_visual`` (self-training). Targets are soft: ``p`` with weight ``w x |2p - 1|``
(nothing where the evidence is even). docs/visual-model.md has the measurements behind each term.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

EPS = 1e-4


def logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(q / (1 - q))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -35, 35)))


def base_rates(targets: Mapping[str, np.ndarray], n_categories: int) -> np.ndarray:
    """Per category, the smoothed share of positives among the videos whose label is known."""
    if not targets:
        return np.full(n_categories, 0.5 / (n_categories + 1))
    y = np.stack(list(targets.values())).astype(np.float64)
    known = ~np.isnan(y)
    pos = np.where(known, y >= 0.5, False).sum(axis=0)
    return (pos + 0.5) / (known.sum(axis=0) + 1.0)


def fit_visual_calibration(scores: np.ndarray, labels: np.ndarray):  # -> PlattCalibrator
    """One Platt calibrator on the logits of cross-validated student scores, all categories pooled."""
    from ml.text.calibration import PlattCalibrator

    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    known = ~np.isnan(y) & ~np.isnan(s)
    if not known.any() or not (0 < (y[known] >= 0.5).sum() < known.sum()):
        return PlattCalibrator()
    return PlattCalibrator().fit(logit(s[known]), (y[known] >= 0.5).astype(np.float64))


def posterior(p_visual: np.ndarray, p_text: np.ndarray | None, base: np.ndarray) -> np.ndarray:
    """Combined probability; where the text has no score (NaN or no text), the visual one."""
    pv = np.asarray(p_visual, dtype=np.float64)
    if p_text is None:
        return pv
    pt = np.asarray(p_text, dtype=np.float64)
    both = sigmoid(logit(pv) + logit(np.nan_to_num(pt, nan=0.5)) - logit(base))
    return np.where(np.isnan(pt), pv, both)


def pool_targets(
    p_visual: Mapping[str, np.ndarray],
    p_text: Mapping[str, np.ndarray],
    base: np.ndarray,
    *,
    use_text: bool,
    use_self: bool,
    soft: bool,
    pseudo_weight: float,
    self_weight: float,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, str]]:
    """(targets, weights, source) for the pool videos: ``pseudo`` where text spoke, ``self`` elsewhere."""
    targets: dict[str, np.ndarray] = {}
    weights: dict[str, np.ndarray] = {}
    source: dict[str, str] = {}
    for vid, pv in p_visual.items():
        pt = p_text.get(vid) if use_text else None
        if pt is None and not use_self:
            continue
        p = posterior(pv, pt, base)
        w = pseudo_weight if pt is not None else self_weight
        if soft:
            targets[vid] = p.astype(np.float32)
            weights[vid] = (w * np.abs(2 * p - 1)).astype(np.float32)
        else:
            targets[vid] = (p >= 0.5).astype(np.float32)
            weights[vid] = np.full(len(p), w, np.float32)
        source[vid] = "pseudo" if pt is not None else "self"
    return targets, weights, source
