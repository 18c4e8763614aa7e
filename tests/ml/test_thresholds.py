"""Threshold selection at 80% precision: the rule, its guards, and a brute-force check."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from ml.thresholds import (
    ThresholdPolicy,
    clopper_pearson_lower,
    precision_coverage_curve,
    select_threshold,
    threshold_vector,
    wilson_lower,
)

LOOSE = ThresholdPolicy(min_true_positives=1, bound="none", min_lower_bound=0.0)


def brute_force(scores, labels, target):
    """Lowest t among observed scores such that every cut at or above t has precision >= target."""
    best = None
    for t in sorted(set(scores.tolist()), reverse=True):
        ok = all(labels[scores >= u].mean() >= target for u in set(scores.tolist()) if u >= t)
        if not ok:
            break
        best = t
    return best


def test_simple_case():
    r = select_threshold(np.array([0.9, 0.8, 0.7, 0.6, 0.5]), np.array([1, 1, 1, 0, 0]), LOOSE)
    assert r.enabled and r.threshold == 0.7 and r.precision == 1.0 and r.recall == 1.0 and r.predicted == 3


def test_precision_must_hold_above_not_only_at_the_threshold():
    scores = np.arange(10, 0, -1) / 10
    labels = np.array([1, 0, 1, 1, 1, 1, 1, 1, 0, 0])
    # Cut at 0.3 has precision 7/8 = 0.875 >= 0.8, but the cut at 0.9 has 1/2: the region is not safe.
    r = select_threshold(scores, labels, LOOSE)
    assert r.threshold == 1.0 and r.predicted == 1
    assert brute_force(scores, labels, 0.8) == 1.0


def test_unreachable_category_is_not_emitted():
    r = select_threshold(np.linspace(1, 0, 20), np.array([0, 1] * 10), LOOSE)
    assert not r.enabled and r.threshold is None and "never holds 80%" in r.reason
    assert threshold_vector([r])[0] == np.inf


def test_minimum_support_and_confidence_bound():
    scores, labels = np.array([0.9, 0.8, 0.1]), np.array([1, 1, 0])
    r = select_threshold(scores, labels, ThresholdPolicy(min_true_positives=4))
    assert not r.enabled and "only 2 verified positive" in r.reason and r.threshold == 0.8
    # The lowest safe cut takes 11 videos, 9 right: point precision 0.82 passes 0.8, a 95% Wilson lower
    # bound of about 0.57 does not reach 0.7.
    s = np.linspace(1, 0.01, 20)
    y = np.array([1] * 5 + [0] + [1] * 4 + [0] * 10)
    strict = ThresholdPolicy(min_true_positives=3, bound="wilson", confidence=0.95, min_lower_bound=0.7)
    r = select_threshold(s, y, strict)
    assert r.precision == pytest.approx(9 / 11) and not r.enabled and "lower bound" in r.reason
    assert select_threshold(s, y, ThresholdPolicy(min_true_positives=3, bound="none", min_lower_bound=0.7)).enabled


def test_bounds_against_independent_formulas():
    for k, n in [(8, 10), (19, 20), (3, 3), (40, 50)]:
        for conf in (0.8, 0.9, 0.95):
            exact = binomtest(k, n).proportion_ci(confidence_level=1 - 2 * (1 - conf), method="exact").low
            assert clopper_pearson_lower(k, n, conf) == pytest.approx(exact, abs=1e-9)
            wilson = binomtest(k, n).proportion_ci(confidence_level=1 - 2 * (1 - conf), method="wilson").low
            assert wilson_lower(k, n, conf) == pytest.approx(wilson, abs=1e-9)


def test_ties_enter_together_and_nan_is_unscored():
    scores = np.array([0.9, 0.5, 0.5, 0.5, np.nan, np.nan])
    labels = np.array([1, 1, 0, 1, 0, 0])
    r = select_threshold(
        scores, labels, ThresholdPolicy(target_precision=0.7, min_true_positives=1, bound="none", min_lower_bound=0)
    )
    assert r.threshold == 0.5 and r.predicted == 4 and r.positives == 3  # the NaN rows are not judged


@pytest.mark.parametrize("seed", range(25))
def test_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    labels = rng.random(n) < 0.4
    scores = np.round(np.clip(labels * rng.normal(0.3, 0.25, n) + rng.random(n) * 0.7, 0, 1), 2)
    r = select_threshold(scores, labels, LOOSE)
    expected = brute_force(scores, labels.astype(float), 0.8) if labels.any() else None
    assert (r.threshold if r.enabled else None) == expected


def test_precision_coverage_curve():
    t, p, c = precision_coverage_curve(np.array([0.9, 0.8, np.nan, 0.1]), np.array([1, 0, 1, 1]))
    assert t.tolist() == [0.9, 0.8, 0.1]
    assert p.tolist() == [1.0, 0.5, 2 / 3]
    assert c.tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])
