"""Per-category thresholds whose precision is certified with a confidence bound that covers the scan.

THE PROMISE (the sentence README, docs, the UI and ``vidcat explain`` repeat; ``PROMISE``): for each
emitted category and source, precision on videos like the certification set is at least 80% with
95% confidence (one-sided Clopper-Pearson, fixed-sequence testing over the cuts).

How a cut is certified (``scan = "fixed-sequence"``, the default). Cuts are tested from the highest
score down, in a fixed order, each at the full confidence: a cut passes when the one-sided lower bound
of its precision (Clopper-Pearson by default) reaches ``target_precision``. Testing stops at the first
cut that fails; every cut that passed is certified, all of them together (fixed-sequence testing: the
family-wise error is that of one test, Learn-then-Test, Angelopoulos et al. 2021), so picking the best
F1 among them is not a winner's curse. The sequence starts at the first cut that emits
``min_emitted(policy)`` verified videos, the fewest whose bound can reach the target at all (14 at
80% and 95%): a test that cannot pass spends nothing and stopping there would certify nothing.
A cut also needs ``min_support`` verified positives above it. A category with no certified cut is
*not emitted* by that source, with the reason and how many more verified positives it would need.

``scan = "none"`` keeps the old rule (every cut whose bound passes is eligible, the best F1 among
them): it is optimistic, since the best of many cuts is kept, and is there for comparisons only; its
``promise()`` says so and claims no confidence. A Wilson bound's coverage is approximate, and its
sentence says "about". ``promise(units="scenes")`` is the sentence for scene thresholds.

A cut separates the lowest emitted score from the highest one left out; the threshold is put in the
middle of that gap (in logit space, scores being probabilities), not on the lowest emitted score.
Both give the same decisions on the verified labels; the choice was made on gold's out-of-fold
folds (docs/fusion.md), not on the locked test.

Why a bound and no running minimum: precision measured on 20-60 verified positives is noisy, and the
bound widens exactly where the sample is small. The same policy sets the teacher's pseudo-label cuts
(at 90% on its held-out editor scores) and the fusion thresholds (at 80% on gold). Thresholds are only
ever set on human labels: on pseudo-labels they would measure agreement with the teacher.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

BOUNDS = ("wilson", "clopper-pearson")
OBJECTIVES = ("f1", "recall")
SCANS = ("fixed-sequence", "none")
PLACEMENTS = ("midpoint", "lowest")
# The teacher's pseudo-label gate (ml/text/pseudo_labels.py): an internal quality gate on training data,
# not the promise, so a Wilson bound at 80% over the scanned cuts.
PSEUDO_LABEL_BOUND = {"bound": "wilson", "confidence": 0.80, "scan": "none"}
PROMISE = (
    "for each emitted category and source, precision on {units} like the certification set is at least "
    "{target} with {confidence} confidence ({method}, fixed-sequence testing over the cuts)"
)
# Without the fixed sequence the best of many cuts is kept: the bound is the chosen cut's own, and no
# confidence for new videos follows from it, so the sentence says only what was measured.
PROMISE_UNCORRECTED = (
    "for each emitted category and source, the one-sided {confidence} {bound} lower bound of precision on the "
    "certification set's {units} reaches {target} at the chosen cut; the cut is the best of many, so no "
    "confidence is claimed for {units} like the certification set"
)
UNITS = ("videos", "scenes")


def percent(x: float) -> str:
    """0.8 as 80% and 0.825 as 82.5%: a promise must not round its own target."""
    return f"{round(x * 100, 2):g}%"


@dataclass(frozen=True)
class ThresholdPolicy:
    target_precision: float = 0.80
    min_support: int = 5  # verified positives at or above an eligible cut
    bound: str = "clopper-pearson"
    confidence: float = 0.95  # one-sided
    objective: str = "f1"
    scan: str = "fixed-sequence"
    # Where the threshold sits in the gap below the cut: the logit midpoint (default, chosen out of fold
    # on certification gold by ``bench/threshold_placement.py``) or on the lowest emitted score.
    placement: str = "midpoint"

    def __post_init__(self) -> None:
        if not 0 < self.target_precision < 1:
            raise ValueError("target_precision must be in (0, 1)")
        if self.bound not in BOUNDS:
            raise ValueError(f"bound must be one of {BOUNDS}, got {self.bound!r}")
        if not 0.5 <= self.confidence < 1:
            raise ValueError("confidence must be in [0.5, 1)")
        if self.min_support < 1:
            raise ValueError("min_support must be >= 1")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.scan not in SCANS:
            raise ValueError(f"scan must be one of {SCANS}, got {self.scan!r}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {self.placement!r}")

    def promise(self, units: str = "videos") -> str:
        """The promise these thresholds keep, in words (the same sentence everywhere).

        ``units``: what a gold row is, "videos" or "scenes". Clopper-Pearson over scenes takes the
        scenes as independent, which scenes of one gold video are not, so the scene sentence says so.
        """
        if units not in UNITS:
            raise ValueError(f"units must be one of {UNITS}, got {units!r}")
        bound = {"clopper-pearson": "Clopper-Pearson", "wilson": "Wilson"}[self.bound]
        target, confidence = percent(self.target_precision), percent(self.confidence)
        if self.scan != "fixed-sequence":
            return PROMISE_UNCORRECTED.format(units=units, target=target, confidence=confidence, bound=bound)
        method = f"one-sided {bound}"
        if self.bound == "wilson":  # its coverage is approximate, and the sentence says so
            confidence, method = f"about {confidence}", f"{method}, an approximate bound"
        if units == "scenes":
            method += ", scenes taken as independent"
        return PROMISE.format(units=units, target=target, confidence=confidence, method=method)


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
    more_positives: int = 0  # verified positives still needed before a cut could be certified (0: not the limit)

    def as_dict(self) -> dict:
        return asdict(self)


def _z(confidence: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(confidence)


def wilson_lower(successes: int, n: int, confidence: float) -> float:
    return float(wilson_lower_array(np.array([successes]), np.array([n]), confidence)[0])


def wilson_lower_array(successes: np.ndarray, n: np.ndarray, confidence: float) -> np.ndarray:
    """One-sided Wilson score lower bound of successes / n, elementwise (0 where n is 0)."""
    z = _z(confidence)
    s = np.asarray(successes, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    safe = np.maximum(m, 1.0)
    p = s / safe
    denom = 1 + z * z / safe
    centre = p + z * z / (2 * safe)
    margin = z * np.sqrt(p * (1 - p) / safe + z * z / (4 * safe * safe))
    return np.where(m > 0, np.maximum(0.0, (centre - margin) / denom), 0.0)


def clopper_pearson_lower(successes: int, n: int, confidence: float) -> float:
    return float(clopper_pearson_lower_array(np.array([successes]), np.array([n]), confidence)[0])


def clopper_pearson_lower_array(successes: np.ndarray, n: np.ndarray, confidence: float) -> np.ndarray:
    """One-sided exact (beta) lower bound, elementwise (0 where there is no success)."""
    from scipy.stats import beta

    s = np.asarray(successes, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        lb = beta.ppf(1 - confidence, np.maximum(s, 1e-12), np.maximum(m - s + 1, 1e-12))
    return np.where((s > 0) & (m > 0), lb, 0.0)


def lower_bound(successes: int, n: int, policy: ThresholdPolicy) -> float:
    return float(lower_bounds(np.array([successes]), np.array([n]), policy)[0])


def lower_bounds(successes: np.ndarray, n: np.ndarray, policy: ThresholdPolicy) -> np.ndarray:
    if policy.bound == "wilson":
        return wilson_lower_array(successes, n, policy.confidence)
    return clopper_pearson_lower_array(successes, n, policy.confidence)


def _cuts(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cut scores, true positives, emitted) at every cut between distinct scores, highest cut first."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last_of_run = np.r_[s[1:] != s[:-1], True]  # ties are all in or all out
    return s[last_of_run], np.cumsum(y)[last_of_run], np.nonzero(last_of_run)[0] + 1


def midpoint(low_in: float, high_out: float | None) -> float:
    """A threshold between the lowest emitted score and the highest one left out (None: nothing left out).

    Logit midpoint for probabilities, arithmetic otherwise; strictly above ``high_out`` and at most
    ``low_in``, so the decisions on the scores it was chosen on do not change.
    """
    if high_out is None or not np.isfinite(high_out):
        return float(low_in)
    if 0.0 < high_out < low_in < 1.0:
        logit = (math.log(low_in / (1 - low_in)) + math.log(high_out / (1 - high_out))) / 2
        mid = 1.0 / (1.0 + math.exp(-logit))
    else:
        mid = (low_in + high_out) / 2
    return float(mid) if high_out < mid <= low_in else float(low_in)


def min_emitted(policy: ThresholdPolicy) -> int:
    """The fewest verified videos a cut must emit for its lower bound to reach the target (all correct)."""
    n = 1
    while lower_bound(n, n, policy) < policy.target_precision and n < 100_000:
        n += 1
    return n


def _not_certified(
    policy: ThresholdPolicy,
    certified: np.ndarray,
    passing: np.ndarray,
    lb: np.ndarray,
    precision: np.ndarray,
    tp: np.ndarray,
    n: np.ndarray,
    start: int,
) -> tuple[str, int]:
    """Why no cut is eligible, and the verified positives still needed (0 where support is not the limit).

    Two different failures, told apart because they call for different work: the bound failing
    (better scores or cleaner gold) and too few positives above a cut that holds (more gold). Under
    the fixed sequence the cut named is where the sequence stopped; cuts below it were never tested,
    so their bounds say nothing.
    """
    at = f"the {policy.bound} bound at {percent(policy.confidence)}"
    target, support = percent(policy.target_precision), policy.min_support
    if policy.scan == "fixed-sequence":
        stop = start + int(certified[start:].sum())  # the first cut that failed (len: none failed)
        if not certified.any():
            return (
                f"no cut certified: the fixed sequence stops at its first cut ({int(n[stop])} emitted, precision "
                f"{precision[stop]:.2f}), where {at} is {lb[stop]:.2f}, below {target}"
            ), 0
        last = stop - 1
        tail = f", and stops at {int(n[stop])} emitted ({at} {lb[stop]:.2f}, below {target})" if stop < len(n) else ""
        return (
            f"too little support: the fixed sequence certifies cuts down to {int(n[last])} emitted with "
            f"{int(tp[last])} verified positives{tail}; a cut needs {support} positives above it"
        ), support - int(tp[last])
    if passing.any():
        last = int(np.flatnonzero(passing)[-1])  # true positives grow down the cuts: the most support
        return (
            f"too little support: the cuts where {at} reaches {target} have at most {int(tp[last])} verified "
            f"positives above them; a cut needs {support}"
        ), support - int(tp[last])
    j = int(np.argmax(lb))
    return (
        f"no cut certified: {at} never reaches {target} at any cut (best {lb[j]:.2f} at precision "
        f"{precision[j]:.2f}, {int(n[j])} emitted)"
    ), 0


def select_threshold(scores: np.ndarray, labels: np.ndarray, policy: ThresholdPolicy = DEFAULT_POLICY) -> Threshold:
    """The threshold of one category from its scores and 0/1 verified labels over judged videos."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    if scores.shape != labels.shape:
        raise ValueError("scores and labels differ in shape")
    keep = np.isfinite(scores)  # a missing score (no text, no frames) is not a judgement of the source
    scores, labels = scores[keep], labels[keep]
    positives = int(labels.sum())
    n_min = min_emitted(policy)
    need = max(0, max(n_min, policy.min_support) - positives)
    if positives == 0:
        return Threshold(None, None, None, 0, 0, 0, None, False, "no verified positives", need)
    cut, tp, n = _cuts(scores, labels)
    precision = tp / n
    lb = lower_bounds(tp, n, policy)
    supported = tp >= policy.min_support
    passing = lb >= policy.target_precision
    start = int(np.searchsorted(n, n_min))  # n grows down the cuts: the first cut emitting n_min
    if policy.scan == "fixed-sequence":
        certified = np.zeros(len(cut), bool)
        for i in range(start, len(cut)):
            if not passing[i]:
                break
            certified[i] = True
    else:
        certified = passing
    eligible = supported & certified
    if not eligible.any():
        if positives < max(n_min, policy.min_support):
            reason = (
                f"{positives} verified positive(s) with a score: a cut needs {n_min} verified videos above it "
                f"and {policy.min_support} positives to be certified ({need} more verified positives)"
            )
        else:
            reason, need = _not_certified(policy, certified, passing, lb, precision, tp, n, start)
        return Threshold(None, None, None, 0, 0, positives, None, False, reason, need)
    idx = np.flatnonzero(eligible)
    if policy.objective == "recall":
        i = int(idx[-1])  # the lowest eligible cut: the largest emitted set that keeps the promise
    else:
        f1 = 2 * tp[idx] / (n[idx] + positives)
        best = f1.max()
        i = int(idx[np.flatnonzero(np.isclose(f1, best, rtol=0, atol=1e-12))[-1]])  # ties: the lower cut
    return Threshold(
        threshold=(
            midpoint(float(cut[i]), float(cut[i + 1]) if i + 1 < len(cut) else None)
            if policy.placement == "midpoint"
            else float(cut[i])
        ),
        precision=float(precision[i]),
        recall=float(tp[i] / positives),
        true_positives=int(tp[i]),
        predicted=int(n[i]),
        positives=positives,
        lower_bound=float(lb[i]),
        enabled=True,
        reason="ok",
    )


def select_thresholds(
    scores: np.ndarray, labels: np.ndarray, policy: ThresholdPolicy = DEFAULT_POLICY
) -> list[Threshold]:
    """Per category (column). NaN scores mark videos the source did not score."""
    return [select_threshold(scores[:, j], labels[:, j], policy) for j in range(scores.shape[1])]


def cv_splits(n: int, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` seeded (train, test) index splits of ``n`` videos, each video in one test part."""
    parts = np.array_split(np.random.default_rng(seed).permutation(n), k)
    return [(np.concatenate([p for j, p in enumerate(parts) if j != i]), parts[i]) for i in range(k)]


def out_of_fold_emitted(
    scores: np.ndarray, labels: np.ndarray, policy: ThresholdPolicy, folds: int = 5, seed: int = 0
) -> np.ndarray:
    """What certified cuts emit on videos they were not certified on: each fold's cuts come from the
    other folds. The figure two scorers may be compared on at the promise without judging cuts on the
    videos that placed them."""
    emitted = np.zeros(labels.shape, bool)
    for train, test in cv_splits(len(labels), max(2, min(folds, len(labels) // 4)), seed):
        cuts = threshold_vector(select_thresholds(scores[train], labels[train], policy))
        emitted[test] = np.nan_to_num(scores[test], nan=-np.inf) >= cuts
    return emitted


def threshold_vector(thresholds: list[Threshold]) -> np.ndarray:
    """Thresholds as an array for `predict_at_thresholds`; disabled categories get +inf (never emitted)."""
    return np.array([t.threshold if t.enabled and t.threshold is not None else np.inf for t in thresholds])


def precision_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Wilson interval of a precision, for reports (``confidence`` is the interval's coverage)."""
    if n == 0:
        return (math.nan, math.nan)
    one_sided = 1 - (1 - confidence) / 2
    low = wilson_lower(successes, n, one_sided)
    high = 1 - wilson_lower(n - successes, n, one_sided)
    return (low, high)


def precision_coverage_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, precision, coverage = share of judged videos at or above) for plotting one category."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    keep = np.isfinite(scores)
    scores, labels = scores[keep], labels[keep]
    if scores.size == 0:
        return np.array([]), np.array([]), np.array([])
    cut, tp, n = _cuts(scores, labels)
    return cut, tp / n, n / scores.size
