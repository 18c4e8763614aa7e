"""Thresholds certified at 80% precision by a confidence bound covering the scan: the rule, its guards,
a brute-force reference written from the definition, and the promise checked by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import beta, binomtest

from ml.thresholds import (
    ThresholdPolicy,
    clopper_pearson_lower,
    midpoint,
    out_of_fold_emitted,
    precision_coverage_curve,
    precision_interval,
    select_threshold,
    threshold_vector,
    wilson_lower,
)

# A 50% one-sided Wilson bound is the point estimate; without the scan correction: the rule's mechanics alone.
LOOSE = ThresholdPolicy(min_support=1, confidence=0.5, bound="wilson", scan="none")
OLD = ThresholdPolicy(bound="wilson", confidence=0.8, scan="none")  # every passing cut eligible


def independent_lower(k: int, n: int, confidence: float, bound: str) -> float:
    """One-sided lower bound: scipy's two-sided interval at the matching level, or the beta quantile itself."""
    if bound != "wilson":
        return float(beta.ppf(1 - confidence, k, n - k + 1)) if k else 0.0  # Clopper-Pearson's definition
    if confidence == 0.5:
        return k / n  # z = 0: the Wilson bound is the point estimate
    return binomtest(k, n).proportion_ci(confidence_level=1 - 2 * (1 - confidence), method="wilson").low


def brute_force(scores, labels, policy):
    """Emitted set of the rule, written from its definition: every cut from the top, its bound, the objective.

    Fixed-sequence: cuts emitting fewer than the fewest videos whose bound could pass are skipped; the
    first cut after them that fails ends the sequence.
    """
    keep = np.isfinite(scores)
    s, y = scores[keep], labels[keep].astype(bool)
    positives = int(y.sum())
    n_min = next(
        m
        for m in range(1, 10_000)
        if independent_lower(m, m, policy.confidence, policy.bound) >= policy.target_precision
    )
    best = None
    for cut in sorted(set(s.tolist()), reverse=True):
        emitted = s >= cut
        tp, n = int((emitted & y).sum()), int(emitted.sum())
        passes = independent_lower(tp, n, policy.confidence, policy.bound) >= policy.target_precision - 1e-9
        if policy.scan == "fixed-sequence":
            if n < n_min:
                continue
            if not passes:
                break
        if tp < policy.min_support or not passes:
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


def test_placement_lowest_sits_on_the_last_score_in_with_the_same_decisions():
    from dataclasses import replace

    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    labels = np.array([1, 1, 1, 0, 0])
    mid = select_threshold(scores, labels, LOOSE)
    low = select_threshold(scores, labels, replace(LOOSE, placement="lowest"))
    assert low.threshold == 0.7 and mid.threshold < 0.7
    assert emitted_by(low.threshold, scores).tolist() == emitted_by(mid.threshold, scores).tolist()
    assert (low.precision, low.recall, low.lower_bound) == (mid.precision, mid.recall, mid.lower_bound)
    with pytest.raises(ValueError, match="placement must be one of"):
        ThresholdPolicy(placement="top")


def _sixty_positives_and_one_negative_at(rank: int) -> tuple[np.ndarray, np.ndarray]:
    scores = np.linspace(0.99, 0.40, 61)
    labels = np.ones(61, dtype=int)
    labels[rank - 1] = 0
    scores = np.r_[scores, np.linspace(0.30, 0.01, 200)]  # a clean gap, then 200 negatives
    return scores, np.r_[labels, np.zeros(200, dtype=int)]


@pytest.mark.parametrize("rank", [1, 3, 6])
def test_without_the_scan_one_negative_near_the_top_does_not_wipe_out_a_category(rank):
    """The old rule (no correction for the scan): the category keeps full recall at 60/61."""
    r = select_threshold(*_sixty_positives_and_one_negative_at(rank), OLD)
    assert r.enabled and r.recall == 1.0 and r.true_positives == 60 and r.predicted == 61
    assert r.precision == pytest.approx(60 / 61) and r.lower_bound >= 0.8


@pytest.mark.parametrize(("rank", "certified_recall"), [(1, None), (14, None), (20, 19 / 60), (40, 1.0)])
def test_fixed_sequence_stops_at_the_first_cut_that_fails(rank, certified_recall):
    """The price of certifying every cut at once: the sequence ends at the first cut whose bound fails.

    A negative among the top 14 (the fewest whose 95% bound can reach 80%) certifies nothing; at rank 20,
    19 right out of 20 fails (bound 0.78) and the cuts above it stay certified; at rank 40, 39 of 40
    passes (0.89) and the sequence runs on to full recall.
    """
    r = select_threshold(*_sixty_positives_and_one_negative_at(rank), ThresholdPolicy())
    if certified_recall is None:
        assert not r.enabled and "the fixed sequence stops at its first cut" in r.reason and r.more_positives == 0
    else:
        assert r.enabled and r.recall == pytest.approx(certified_recall) and r.lower_bound >= 0.8


def test_min_emitted_is_where_a_clean_cut_can_first_pass():
    from ml.thresholds import min_emitted

    assert min_emitted(ThresholdPolicy()) == 14  # 0.8**14 = 0.044 < 0.05 <= 0.8**13
    assert clopper_pearson_lower(14, 14, 0.95) >= 0.8 > clopper_pearson_lower(13, 13, 0.95)
    few = select_threshold(np.linspace(1, 0, 30), np.array([1] * 12 + [0] * 18), ThresholdPolicy())
    assert not few.enabled and few.more_positives == 2 and "2 more verified positives" in few.reason


@pytest.mark.parametrize("true_precision", [0.6, 0.7, 0.75])
def test_the_promise_holds_by_simulation(true_precision):
    """Categories whose precision is truly below 80% at every cut: fixed-sequence certifies at most 5% of
    them (the promise), while keeping the best of all passing cuts without the correction does not."""
    rng = np.random.default_rng(int(true_precision * 100))
    trials, certified, uncorrected = 400, 0, 0
    for _ in range(trials):
        n = 60
        labels = rng.random(n) < true_precision  # the ranking carries no information: precision p everywhere
        scores = np.linspace(1, 0.01, n)
        certified += select_threshold(scores, labels, ThresholdPolicy(min_support=1)).enabled
        uncorrected += select_threshold(
            scores, labels, ThresholdPolicy(min_support=1, scan="none", objective="recall")
        ).enabled
    assert certified / trials <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / trials)
    if true_precision >= 0.7:
        assert uncorrected > certified  # the winner's curse the scan correction removes


def test_a_lower_cut_holding_the_bound_is_not_missed():
    """The old running minimum capped recall at a negative at rank 5; this cut holds 0.86 at full recall."""
    scores = np.linspace(1.0, 0.3, 70)
    labels = np.ones(70, dtype=int)
    labels[[4, 20, 30, 40, 50, 55, 60, 65, 66, 69]] = 0
    r = select_threshold(scores, labels, ThresholdPolicy(objective="recall", confidence=0.6, scan="none"))
    assert r.enabled and r.recall == 1.0


def test_unreachable_category_is_not_emitted():
    r = select_threshold(np.linspace(1, 0, 40), np.array([0, 1] * 20), ThresholdPolicy())
    assert not r.enabled and r.threshold is None and "no cut certified" in r.reason and "below 80%" in r.reason
    assert threshold_vector([r])[0] == np.inf


def test_minimum_support_and_confidence_bound():
    r = select_threshold(np.array([0.9, 0.8, 0.1]), np.array([1, 1, 0]), ThresholdPolicy(min_support=4))
    assert not r.enabled and "2 verified positive(s)" in r.reason and r.more_positives == 12
    # 9 right out of 11 is a point precision of 0.82: enough for the point estimate, not for a 95% bound
    # (Wilson 0.57), and no smaller cut has the support for one either (5 of 5 bounds at 0.65).
    s = np.linspace(1, 0.01, 20)
    y = np.array([1] * 5 + [0] + [1] * 4 + [0] * 10)
    point = select_threshold(
        s, y, ThresholdPolicy(min_support=3, confidence=0.5, objective="recall", bound="wilson", scan="none")
    )
    assert point.enabled and point.predicted == 11 and point.precision == pytest.approx(9 / 11)
    strict = select_threshold(
        s, y, ThresholdPolicy(min_support=3, confidence=0.95, objective="recall", bound="wilson", scan="none")
    )
    assert not strict.enabled and "2 more verified positives" in strict.reason  # Wilson needs 11 clean
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
    r = select_threshold(
        scores,
        labels,
        ThresholdPolicy(target_precision=0.7, min_support=1, confidence=0.5, bound="wilson", scan="none"),
    )
    assert r.predicted == 4 and r.positives == 3  # the NaN rows are not judged
    assert r.threshold == 0.5  # nothing below the tie: the threshold is the tie itself


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("objective", ["f1", "recall"])
@pytest.mark.parametrize("bound", ["wilson", "clopper-pearson"])
@pytest.mark.parametrize("scan", ["fixed-sequence", "none"])
def test_matches_brute_force(seed, objective, bound, scan):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(10, 90))
    labels = rng.random(n) < 0.4
    scores = np.round(np.clip(labels * rng.normal(0.35, 0.25, n) + rng.random(n) * 0.6, 0.001, 0.999), 2)
    policy = ThresholdPolicy(
        min_support=2, confidence=float(rng.choice([0.5, 0.8, 0.9])), bound=bound, objective=objective, scan=scan
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
        {"scan": "bonferroni"},
    ):
        with pytest.raises(ValueError):
            ThresholdPolicy(**bad)


def test_precision_coverage_curve():
    t, p, c = precision_coverage_curve(np.array([0.9, 0.8, np.nan, 0.1]), np.array([1, 0, 1, 1]))
    assert t.tolist() == [0.9, 0.8, 0.1]
    assert p.tolist() == [1.0, 0.5, 2 / 3]
    assert c.tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])


def test_the_promise_reads_the_same_in_the_readme_and_the_docs():
    """The sentence the code prints is the one a reader finds, word for word (line breaks aside)."""
    from pathlib import Path

    from ml.config import Settings

    settings = Settings()
    policy = ThresholdPolicy(target_precision=settings.target_precision, confidence=settings.threshold_confidence)
    sentence = policy.promise()
    root = Path(__file__).resolve().parents[2]
    for doc in ("README.md", "docs/fusion.md", "docs/benchmarks.md"):
        text = " ".join((root / doc).read_text(encoding="utf-8").split()).replace("*", "")
        assert sentence in text, f"{doc} must state the promise as the code does: {sentence!r}"


def test_the_reason_names_the_cut_where_the_sequence_stopped_not_the_best_below_it():
    """A negative at rank 20 stops the sequence there (19 of 20, bound 0.78); the cuts below it pass
    again (39 of 40: 0.89) but were never tested, so the reason must not quote them."""
    scores, labels = _sixty_positives_and_one_negative_at(20)
    r = select_threshold(scores, labels, ThresholdPolicy(min_support=25))
    assert not r.enabled and r.reason.startswith("too little support")
    assert "down to 19 emitted with 19 verified positives" in r.reason
    assert "stops at 20 emitted" in r.reason and "0.78, below 80%" in r.reason
    assert "0.89" not in r.reason and r.more_positives == 25 - 19


def test_a_failed_sequence_and_too_little_support_read_differently():
    """A clean top of 19 is certified, but min_support=20 asks for one positive more than it holds."""
    scores, labels = _sixty_positives_and_one_negative_at(20)
    r = select_threshold(scores, labels, ThresholdPolicy(min_support=20))
    assert not r.enabled and r.reason.startswith("too little support") and "never" not in r.reason
    failed = select_threshold(*_sixty_positives_and_one_negative_at(1), ThresholdPolicy())
    assert failed.reason.startswith("no cut certified: the fixed sequence stops at its first cut (14 emitted")
    uncorrected = select_threshold(np.linspace(1, 0, 40), np.array([0, 1] * 20), ThresholdPolicy(scan="none"))
    assert "never reaches 80% at any cut" in uncorrected.reason


def test_the_promise_says_what_each_policy_certifies():
    """Only Clopper-Pearson with the fixed sequence earns the full sentence; the target is not rounded."""
    assert "at least 82.5% with 95% confidence" in ThresholdPolicy(target_precision=0.825).promise()
    uncorrected = ThresholdPolicy(scan="none").promise()
    assert "with 95% confidence" not in uncorrected and "no confidence is claimed" in uncorrected
    assert "with about 95% confidence (one-sided Wilson" in ThresholdPolicy(bound="wilson").promise()
    scenes = ThresholdPolicy().promise("scenes")
    assert "precision on scenes like the certification set" in scenes and "scenes taken as independent" in scenes
    with pytest.raises(ValueError):
        ThresholdPolicy().promise("frames")


def test_the_served_promise_is_the_one_the_fusion_was_certified_under(catalog, settings, ws, tmp_path):
    """`vidcat report` (and `make demo`, which prints it) heads with the promise of the current fusion's
    recorded policy, not of today's settings; status, explain and the asset state it through the same
    policy object, never by formatting the template themselves."""
    from pathlib import Path
    from types import SimpleNamespace

    from ml.catalog.model_registry import register_model
    from ml.evaluation.report import pipeline_report
    from ml.fusion.stage import served_policy

    assert served_policy(catalog, settings) == settings.threshold_policy()  # no fusion yet: the settings
    certified = ThresholdPolicy(target_precision=0.825, confidence=0.9, min_support=3)
    register_model(
        catalog,
        "fusion",
        "fusion-test",
        tmp_path / "fusion.json",
        ["483"],
        params={"rule": "union", "policy": certified.__dict__},
        metrics={"comparison": {}, "choice": {}},
        training_data={"gold_videos": 40},
    )
    assert served_policy(catalog, settings) == certified != settings.threshold_policy()
    # A caller holding a loaded fusion (the locked report, explain) states that model's policy.
    older = ThresholdPolicy(target_precision=0.85)
    assert served_policy(catalog, settings, SimpleNamespace(policy=older)) == older
    assert served_policy(catalog, settings, SimpleNamespace(policy=None)) == settings.threshold_policy()
    data, text = pipeline_report(settings, catalog, ws)
    assert data["promise"] == certified.promise()
    assert text.splitlines()[0] == f"The promise: {certified.promise()}."
    root = Path(__file__).resolve().parents[2]
    for folder in ("orchestration", "assets", "ml/serving", "ml/evaluation", "ml/segments"):
        for path in (root / folder).rglob("*.py"):
            code = path.read_text(encoding="utf-8")
            assert "PROMISE.format" not in code and "threshold_policy().promise()" not in code, path
            assert "policy or settings.threshold_policy()" not in code, path  # served_policy decides


def test_out_of_fold_cuts_are_certified_without_the_videos_they_judge():
    """Each fold is judged by cuts from the other folds only: a category that all of gold just certifies (14
    positives ranked first, the 14 emitted a cut needs) cannot be certified without the fold's positives,
    so nothing is emitted out of fold, while a well-supported category is recovered."""
    rng = np.random.default_rng(3)
    n = 100
    y = np.zeros((n, 2), bool)
    y[rng.choice(n, 14, replace=False), 0] = True
    y[rng.choice(n, 50, replace=False), 1] = True
    scores = np.where(y, 0.9, 0.1) + rng.uniform(-0.05, 0.05, size=(n, 2))
    policy = ThresholdPolicy()
    assert select_threshold(scores[:, 0], y[:, 0], policy).enabled  # in sample: certified
    emitted = out_of_fold_emitted(scores, y, policy, folds=5, seed=0)
    assert not emitted[:, 0].any()
    assert (emitted[:, 1] == y[:, 1]).all()
    assert (out_of_fold_emitted(scores, y, policy, folds=5, seed=0) == emitted).all()  # the folds are seeded
    missing = scores.copy()
    missing[:5, 1] = np.nan  # a video the scorer did not score is never emitted
    assert not out_of_fold_emitted(missing, y, policy)[:5, 1].any()
