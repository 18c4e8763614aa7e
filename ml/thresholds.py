"""Per-category thresholds that hold a target precision (80%) on human-verified labels.

The threshold of a category and source is the lowest score t such that precision stays at or above
the target for every cut at or above t (not just at t: precision curves are not monotone, and a
threshold sitting in a lucky dip would let a worse region through). Two guards make the estimate
trustworthy on small gold sets:
- a minimum support: at least ``min_true_positives`` verified positives above the threshold;
- a confidence bound: the precision's lower confidence bound (Wilson score or Clopper-Pearson,
  one-sided at ``confidence``) must also reach ``min_lower_bound`` at the chosen cut.
A category that cannot satisfy all three is *not emitted* by that source. Thresholds are only ever
set on human-verified labels: on pseudo-labels they would measure agreement with the teacher.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ThresholdPolicy:
    target_precision: float = 0.80
    min_true_positives: int = 4
    bound: str = "wilson"  # wilson, clopper-pearson or none
    confidence: float = 0.80  # one-sided
    min_lower_bound: float = 0.55

    def __post_init__(self) -> None:
        if not 0 < self.target_precision < 1:
            raise ValueError("target_precision must be in (0, 1)")
        if self.bound not in ("wilson", "clopper-pearson", "none"):
            raise ValueError("bound must be wilson, clopper-pearson or none")
        if not 0.5 <= self.confidence < 1:
            raise ValueError("confidence must be in [0.5, 1)")


DEFAULT_POLICY = ThresholdPolicy()


@dataclass(frozen=True)
class Threshold:
    threshold: float | None  # None: this source does not emit the category
    precision: float | None
    recall: float | None
    true_positives: int
    predicted: int
    positives: int
    lower_bound: float | None
    enabled: bool
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def _z(confidence: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(confidence)


def wilson_lower(successes: int, n: int, confidence: float) -> float:
    if n == 0:
        return 0.0
    z = _z(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - margin) / denom)


def clopper_pearson_lower(successes: int, n: int, confidence: float) -> float:
    if successes == 0 or n == 0:
        return 0.0
    from scipy.stats import beta

    return float(beta.ppf(1 - confidence, successes, n - successes + 1))


def lower_bound(successes: int, n: int, policy: ThresholdPolicy) -> float:
    if policy.bound == "wilson":
        return wilson_lower(successes, n, policy.confidence)
    if policy.bound == "clopper-pearson":
        return clopper_pearson_lower(successes, n, policy.confidence)
    return successes / n if n else 0.0


def select_threshold(scores: np.ndarray, labels: np.ndarray, policy: ThresholdPolicy = DEFAULT_POLICY) -> Threshold:
    """The threshold of one category from its scores and 0/1 verified labels over judged videos."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    if scores.shape != labels.shape:
        raise ValueError("scores and labels differ in shape")
    keep = np.isfinite(scores)  # a missing score (no text) is not a judgement of the source
    scores, labels = scores[keep], labels[keep]
    positives = int(labels.sum())
    if positives == 0:
        return Threshold(None, None, None, 0, 0, 0, None, False, "no verified positives")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    # Cut after the last item of each run of equal scores: ties are all in or all out.
    last_of_run = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(y)[last_of_run]
    n = np.nonzero(last_of_run)[0] + 1
    cut_scores = s[last_of_run]
    precision = tp / n
    # For each cut, the worst precision at it or at any higher threshold (any earlier cut).
    running_min = np.minimum.accumulate(precision)
    ok = np.nonzero(running_min >= policy.target_precision)[0]
    if ok.size == 0:
        best = float(precision.max())
        return Threshold(
            None,
            None,
            None,
            0,
            0,
            positives,
            None,
            False,
            f"precision never holds {policy.target_precision:.0%} (best single cut {best:.0%})",
        )
    i = int(ok[-1])  # the lowest threshold whose whole upper region holds the target
    tp_i, n_i = int(tp[i]), int(n[i])
    lb = lower_bound(tp_i, n_i, policy)
    result = dict(
        threshold=float(cut_scores[i]),
        precision=float(precision[i]),
        recall=tp_i / positives,
        true_positives=tp_i,
        predicted=n_i,
        positives=positives,
        lower_bound=lb,
    )
    if tp_i < policy.min_true_positives:
        return Threshold(
            **result,
            enabled=False,
            reason=f"only {tp_i} verified positive(s) above the threshold (< {policy.min_true_positives})",
        )
    if lb < policy.min_lower_bound:
        return Threshold(
            **result, enabled=False, reason=f"{policy.bound} lower bound {lb:.2f} < {policy.min_lower_bound:.2f}"
        )
    return Threshold(**result, enabled=True, reason="ok")


def select_thresholds(
    scores: np.ndarray, labels: np.ndarray, policy: ThresholdPolicy = DEFAULT_POLICY
) -> list[Threshold]:
    """Per category (column). NaN scores mark videos the source did not score."""
    return [select_threshold(scores[:, j], labels[:, j], policy) for j in range(scores.shape[1])]


def threshold_vector(thresholds: list[Threshold]) -> np.ndarray:
    """Thresholds as an array for `predict_at_thresholds`; disabled categories get +inf (never emitted)."""
    return np.array([t.threshold if t.enabled and t.threshold is not None else np.inf for t in thresholds])


def precision_coverage_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, precision, coverage = share of judged videos at or above) for plotting one category."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    keep = np.isfinite(scores)
    scores, labels = scores[keep], labels[keep]
    if scores.size == 0:
        return np.array([]), np.array([]), np.array([])
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last = np.r_[s[1:] != s[:-1], True]
    n = np.nonzero(last)[0] + 1
    return s[last], np.cumsum(y)[last] / n, n / scores.size
