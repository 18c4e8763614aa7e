"""Thresholds holding 80% precision by a confidence bound: the rule, its guards, and a brute-force check."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import beta, binomtest

from ml.thresholds import (
    ThresholdPolicy,
    clopper_pearson_lower,
    midpoint,
    precision_coverage_curve,
    precision_interval,
    select_threshold,
    threshold_vector,
    wilson_lower,
)

LOOSE = ThresholdPolicy(min_support=1, confidence=0.5)  # a 50% one-sided bound is the point estimate


def independent_lower(k: int, n: int, confidence: float, bound: str) -> float:
    """One-sided lower bound: scipy's two-sided interval at the matching level, or the beta quantile itself."""
    if bound != "wilson":
        return float(beta.ppf(1 - confidence, k, n - k + 1)) if k else 0.0  # Clopper-Pearson's definition
    if confidence == 0.5:
        return k / n  # z = 0: the Wilson bound is the point estimate
    return binomtest(k, n).proportion_ci(confidence_level=1 - 2 * (1 - confidence), method="wilson").low


def brute_force(scores, labels, policy):
    """Emitted set of the rule, written from its definition: every cut, its bound, the objective."""
    keep = np.isfinite(scores)
    s, y = scores[keep], labels[keep].astype(bool)
    positives = int(y.sum())
    best = None
    for cut in sorted(set(s.tolist()), reverse=True):
        emitted = s >= cut
        tp, n = int((emitted & y).sum()), int(emitted.sum())
        if tp < policy.min_support or independent_lower(tp, n, policy.confidence, policy.bound) < (
            policy.target_precision - 1e-9
        ):
            continue
        f1 = 2 * tp / (n + positives)
        if best is None or policy.objective == "recall" or f1 >= best[0] - 1e-12:
            best = (f1, cut)
    return None if best is None else best[1]


def emitted_by(threshold, scores):
    return np.where(np.isfinite(scores), scores >= threshold, False)


def test_simple_case_and_the_threshold_sits_in_the_gap():
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    r = select_threshold(scores, np.array([1, 1, 1, 0, 0]), LOOSE)
    assert r.enabled and r.precision == 1.0 and r.recall == 1.0 and r.predicted == 3
    # Between 0.7 (last in) and 0.2 (first out), in logit space: the same decisions, more room for new positives.
    assert 0.2 < r.threshold < 0.7
    assert r.threshold == pytest.approx(midpoint(0.7, 0.2))
    assert emitted_by(r.threshold, scores).tolist() == [True, True, True, False, False]


@pytest.mark.parametrize("rank", [1, 3, 6])
def test_one_negative_near_the_top_does_not_wipe_out_a_category(rank):
    """60 positives and a single negative at rank 1, 3 or 6: the category keeps full recall at 60/61."""
    scores = np.linspace(0.99, 0.40, 61)
    labels = np.ones(61, dtype=int)
    labels[rank - 1] = 0
    scores = np.r_[scores, np.linspace(0.30, 0.01, 200)]  # a clean gap, then 200 negatives
    labels = np.r_[labels, np.zeros(200, dtype=int)]
    r = select_threshold(scores, labels, ThresholdPolicy())
    assert r.enabled and r.recall == 1.0 and r.true_positives == 60 and r.predicted == 61
    assert r.precision == pytest.approx(60 / 61) and r.lower_bound >= 0.8


def test_a_lower_cut_holding_the_bound_is_not_missed():
    """The old running minimum capped recall at a negative at rank 5; this cut holds 0.86 at full recall."""
    scores = np.linspace(1.0, 0.3, 70)
    labels = np.ones(70, dtype=int)
    labels[[4, 20, 30, 40, 50, 55, 60, 65, 66, 69]] = 0
    r = select_threshold(scores, labels, ThresholdPolicy(objective="recall", confidence=0.6))
    assert r.enabled and r.recall == 1.0


def test_unreachable_category_is_not_emitted():
    r = select_threshold(np.linspace(1, 0, 20), np.array([0, 1] * 10), ThresholdPolicy())
    assert not r.enabled and r.threshold is None and "bound never reaches 80%" in r.reason
    assert threshold_vector([r])[0] == np.inf


def test_minimum_support_and_confidence_bound():
    r = select_threshold(np.array([0.9, 0.8, 0.1]), np.array([1, 1, 0]), ThresholdPolicy(min_support=4))
    assert not r.enabled and "only 2 verified positive" in r.reason
    # 9 right out of 11 is a point precision of 0.82: enough for the point estimate, not for a 95% bound
    # (Wilson 0.57), and no smaller cut has the support for one either (5 of 5 bounds at 0.65).
    s = np.linspace(1, 0.01, 20)
    y = np.array([1] * 5 + [0] + [1] * 4 + [0] * 10)
    point = select_threshold(s, y, ThresholdPolicy(min_support=3, confidence=0.5, objective="recall"))
    assert point.enabled and point.predicted == 11 and point.precision == pytest.approx(9 / 11)
    strict = select_threshold(s, y, ThresholdPolicy(min_support=3, confidence=0.95, objective="recall"))
    assert not strict.enabled and "bound never reaches 80%" in strict.reason
    assert wilson_lower(9, 11, 0.95) < 0.8 and wilson_lower(5, 5, 0.95) < 0.8


def test_bounds_against_independent_formulas():
    for k, n in [(8, 10), (19, 20), (3, 3), (40, 50)]:
        for conf in (0.8, 0.9, 0.95):
            exact = binomtest(k, n).proportion_ci(confidence_level=1 - 2 * (1 - conf), method="exact").low
            assert clopper_pearson_lower(k, n, conf) == pytest.approx(exact, abs=1e-9)
            assert wilson_lower(k, n, conf) == pytest.approx(independent_lower(k, n, conf, "wilson"), abs=1e-9)
    low, high = precision_interval(18, 20, 0.95)
    ci = binomtest(18, 20).proportion_ci(confidence_level=0.95, method="wilson")
    assert (low, high) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_ties_enter_together_and_nan_is_unscored():
    scores = np.array([0.9, 0.5, 0.5, 0.5, np.nan, np.nan])
    labels = np.array([1, 1, 0, 1, 0, 0])
    r = select_threshold(scores, labels, ThresholdPolicy(target_precision=0.7, min_support=1, confidence=0.5))
    assert r.predicted == 4 and r.positives == 3  # the NaN rows are not judged
    assert r.threshold == 0.5  # nothing below the tie: the threshold is the tie itself


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("objective", ["f1", "recall"])
@pytest.mark.parametrize("bound", ["wilson", "clopper-pearson"])
def test_matches_brute_force(seed, objective, bound):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(10, 90))
    labels = rng.random(n) < 0.4
    scores = np.round(np.clip(labels * rng.normal(0.35, 0.25, n) + rng.random(n) * 0.6, 0.001, 0.999), 2)
    policy = ThresholdPolicy(
        min_support=2, confidence=float(rng.choice([0.5, 0.8, 0.9])), bound=bound, objective=objective
    )
    r = select_threshold(scores, labels, policy)
    expected = brute_force(scores, labels, policy)
    if expected is None:
        assert not r.enabled
    else:
        assert r.enabled
        assert emitted_by(r.threshold, scores).tolist() == emitted_by(expected, scores).tolist()


def test_policy_refuses_bad_values():
    for bad in (
        {"target_precision": 1.0},
        {"bound": "none"},
        {"confidence": 0.3},
        {"objective": "precision"},
        {"min_support": 0},
    ):
        with pytest.raises(ValueError):
            ThresholdPolicy(**bad)


def test_precision_coverage_curve():
    t, p, c = precision_coverage_curve(np.array([0.9, 0.8, np.nan, 0.1]), np.array([1, 0, 1, 1]))
    assert t.tolist() == [0.9, 0.8, 0.1]
    assert p.tolist() == [1.0, 0.5, 2 / 3]
    assert c.tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])
