"""ml.metrics against hand-computed examples and plain brute-force versions written here."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ml import metrics

# ------------------------------------------------------------------------------------------------
# Brute force: the definitions, spelled out with loops.


def brute_ap(items: list[tuple[float, bool]], total_positives: int) -> float:
    """Walk the distinct scores from high to low; at each, everything scoring at least that is retrieved."""
    if total_positives == 0:
        return math.nan
    ap, previous_recall = 0.0, 0.0
    for threshold in sorted({score for score, _ in items}, reverse=True):
        retrieved = [label for score, label in items if score >= threshold]
        hits = sum(retrieved)
        recall = hits / total_positives
        ap += (recall - previous_recall) * hits / len(retrieved)
        previous_recall = recall
    return ap


def brute_gap(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    pooled = []
    for video in range(scores.shape[0]):
        ranked = sorted(range(scores.shape[1]), key=lambda c, v=video: (-scores[v, c], c))
        pooled += [(scores[video, c], bool(labels[video, c])) for c in ranked[:k]]
    return brute_ap(pooled, int(labels.sum()))


def brute_map(scores: np.ndarray, labels: np.ndarray) -> float:
    aps = []
    for c in range(scores.shape[1]):
        positives = int(labels[:, c].sum())
        if positives:
            aps.append(brute_ap([(scores[v, c], bool(labels[v, c])) for v in range(scores.shape[0])], positives))
    return sum(aps) / len(aps) if aps else math.nan


def tie_orders(row: np.ndarray) -> list[tuple[int, ...]]:
    """Every ranking of the classes consistent with the scores: the orders a random tie-break can give."""
    return [
        order
        for order in itertools.permutations(range(len(row)))
        if all(row[a] >= row[b] for a, b in itertools.pairwise(order))
    ]


def brute_hit_and_perr(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Official per-order definitions, averaged over all tie orders, then over videos with positives."""
    hits, perrs = [], []
    for video in range(scores.shape[0]):
        n_pos = int(labels[video].sum())
        if n_pos == 0:
            continue
        orders = tie_orders(scores[video])
        hits.append(sum(labels[video, order[0]] for order in orders) / len(orders))
        perrs.append(sum(sum(labels[video, c] for c in order[:n_pos]) / n_pos for order in orders) / len(orders))
    if not hits:
        return math.nan, math.nan
    return sum(hits) / len(hits), sum(perrs) / len(perrs)


def brute_counts(predicted: np.ndarray, labels: np.ndarray) -> tuple[list[int], list[int], list[int]]:
    tp, fp, fn = [], [], []
    for c in range(labels.shape[1]):
        tp.append(sum(1 for v in range(labels.shape[0]) if predicted[v, c] and labels[v, c]))
        fp.append(sum(1 for v in range(labels.shape[0]) if predicted[v, c] and not labels[v, c]))
        fn.append(sum(1 for v in range(labels.shape[0]) if not predicted[v, c] and labels[v, c]))
    return tp, fp, fn


def brute_f1(precision: float, recall: float) -> float:
    """Harmonic mean; a class predicted but absent, or present but never predicted, scores 0."""
    if math.isnan(precision) and math.isnan(recall):
        return math.nan
    if math.isnan(precision) or math.isnan(recall):
        return 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def random_case(seed: int, videos: int = 9, classes: int = 5, levels: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Coarse scores (many ties) and sparse labels, with some videos that have no positive."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, levels, size=(videos, classes)) / levels
    labels = (rng.random((videos, classes)) < 0.3).astype(np.int64)
    labels[0] = 0
    labels[1, 0] = 1
    return scores, labels


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


# ------------------------------------------------------------------------------------------------
# Hand-computed examples.


def test_gap_hand_example_counts_positives_outside_the_top_k() -> None:
    scores = np.array([[0.9, 0.8, 0.1], [0.7, 0.3, 0.2]])
    labels = np.array([[1, 0, 1], [0, 1, 0]])
    # Top 2: (0.9, +) (0.8, -) | (0.7, -) (0.3, +). Pooled: +, -, -, +. 3 positives in all, one of
    # them (0.1) outside the top 2: GAP = (1/1 + 2/4) / 3 = 0.5.
    assert metrics.gap_at_k(scores, labels, k=2) == pytest.approx(0.5)
    # With k=3 the third positive enters last: (1/1 + 2/4 + 3/6) / 3.
    assert metrics.gap_at_k(scores, labels, k=3) == pytest.approx(2 / 3)


def test_average_precision_ties_enter_together() -> None:
    # One tied pair at the top: precision there is 1/2 for the single positive, whatever the order.
    assert metrics.average_precision([0.5, 0.5], [1, 0]) == pytest.approx(0.5)
    assert metrics.average_precision([0.5, 0.5], [0, 1]) == pytest.approx(0.5)
    # 0.9 (+), then {0.4 +, 0.4 -}: (1 * 1/1 + 1 * 2/3) / 2.
    assert metrics.average_precision([0.4, 0.9, 0.4], [1, 1, 0]) == pytest.approx((1 + 2 / 3) / 2)
    assert math.isnan(metrics.average_precision([0.3, 0.2], [0, 0]))
    assert metrics.average_precision([], [], num_positives=2) == 0.0
    with pytest.raises(ValueError, match="below"):
        metrics.average_precision([0.3, 0.2], [1, 1], num_positives=1)


def test_map_hand_example() -> None:
    scores = np.array([[0.9, 0.1, 0.5], [0.8, 0.7, 0.4], [0.2, 0.6, 0.3]])
    labels = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    # Class 0 ranks +, -, +: (1 + 2/3) / 2. Class 1 ranks the positive first: 1. Class 2 has no
    # positive and is left out of the mean.
    assert metrics.mean_average_precision(scores, labels) == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)
    assert math.isnan(metrics.average_precision_per_class(scores, labels)[2])


def test_hit_at_one_and_perr_hand_example() -> None:
    scores = np.array([[0.9, 0.5, 0.5, 0.1], [0.3, 0.3, 0.3, 0.3], [0.2, 0.9, 0.1, 0.0]])
    labels = np.array([[0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    # Video 0: top is a negative (hit 0); two positives, top 2 = 0.9 (-) and one of the tied 0.5 (+):
    # precision 1/2. Video 1: four-way tie, one positive: hit 1/4, PERR 1/4. Video 2 has no positive.
    assert metrics.hit_at_one(scores, labels) == pytest.approx((0 + 1 / 4) / 2)
    assert metrics.precision_at_equal_recall_rate(scores, labels) == pytest.approx((1 / 2 + 1 / 4) / 2)


def test_threshold_metrics_hand_example() -> None:
    scores = np.array([[0.9, 0.2, 0.6], [0.4, 0.8, 0.7], [0.1, 0.3, 0.9]])
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0]])
    thresholds = np.array([0.5, 0.5, np.inf])  # class 2 is never emitted
    m = metrics.threshold_metrics(scores, labels, thresholds)
    # Class 0: TP 1 (0.9), FN 1 (0.4). Class 1: TP 1 (0.8). Class 2: nothing predicted, no positive.
    assert (m.micro_precision, m.micro_recall, m.micro_f1) == pytest.approx((1.0, 2 / 3, 0.8))
    np.testing.assert_allclose(m.precision, [1.0, 1.0, np.nan])
    np.testing.assert_allclose(m.recall, [0.5, 1.0, np.nan])
    np.testing.assert_allclose(m.f1, [2 / 3, 1.0, np.nan])
    assert (m.macro_precision, m.macro_recall, m.macro_f1) == pytest.approx((1.0, 0.75, 5 / 6))
    np.testing.assert_array_equal(m.support, [2, 1, 0])
    np.testing.assert_array_equal(m.predicted, [1, 1, 0])
    predicted = metrics.predict_at_thresholds(scores, thresholds)
    assert metrics.coverage(predicted) == pytest.approx(2 / 3)
    assert metrics.categories_per_video(predicted) == pytest.approx(2 / 3)


# ------------------------------------------------------------------------------------------------
# Against brute force on random data with ties and label-less videos.


@pytest.mark.parametrize("seed", range(12))
def test_ranking_metrics_match_brute_force(seed: int) -> None:
    scores, labels = random_case(seed)
    for k in (1, 2, 3, 20):
        assert same(metrics.gap_at_k(scores, labels, k), brute_gap(scores, labels, k))
    assert same(metrics.mean_average_precision(scores, labels), brute_map(scores, labels))
    hit, perr = brute_hit_and_perr(scores, labels)
    assert same(metrics.hit_at_one(scores, labels), hit)
    assert same(metrics.precision_at_equal_recall_rate(scores, labels), perr)


@pytest.mark.parametrize("seed", range(4))
def test_gap_over_more_than_twenty_tied_categories_matches_brute_force(seed: int) -> None:
    """More categories than k and coarse scores: ties straddle each video's 20th place."""
    scores, labels = random_case(seed, videos=12, classes=30, levels=3)
    for k in (20, 29):
        assert same(metrics.gap_at_k(scores, labels, k), brute_gap(scores, labels, k))


def test_gap_with_continuous_scores_matches_brute_force() -> None:
    rng = np.random.default_rng(100)
    scores = rng.random((40, 30))
    labels = (rng.random((40, 30)) < 0.1).astype(int)
    labels[:5] = 0
    for k in (1, 5, 20, 30):
        assert same(metrics.gap_at_k(scores, labels, k), brute_gap(scores, labels, k))


def test_average_precision_matches_sklearn() -> None:
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(7)
    for _ in range(20):
        scores = rng.integers(0, 5, 30) / 5
        labels = rng.random(30) < 0.4
        if labels.any():
            assert metrics.average_precision(scores, labels) == pytest.approx(average_precision_score(labels, scores))


@pytest.mark.parametrize("seed", range(8))
def test_threshold_metrics_match_brute_force(seed: int) -> None:
    scores, labels = random_case(seed, videos=15, classes=6)
    rng = np.random.default_rng(seed)
    thresholds = rng.choice([0.25, 0.5, 0.75, np.nan, np.inf], size=6)
    m = metrics.threshold_metrics(scores, labels, thresholds)

    predicted = np.zeros(scores.shape, dtype=bool)
    for v, c in itertools.product(range(scores.shape[0]), range(scores.shape[1])):
        predicted[v, c] = not math.isnan(thresholds[c]) and scores[v, c] >= thresholds[c]
    np.testing.assert_array_equal(metrics.predict_at_thresholds(scores, thresholds), predicted)

    tp, fp, fn = brute_counts(predicted, labels)
    precision = [t / (t + f) if t + f else math.nan for t, f in zip(tp, fp, strict=True)]
    recall = [t / (t + f) if t + f else math.nan for t, f in zip(tp, fn, strict=True)]
    f1 = [brute_f1(p, r) for p, r in zip(precision, recall, strict=True)]
    np.testing.assert_allclose(m.precision, precision)
    np.testing.assert_allclose(m.recall, recall)
    np.testing.assert_allclose(m.f1, f1)

    def mean(values: list[float]) -> float:
        defined = [x for x in values if not math.isnan(x)]
        return sum(defined) / len(defined) if defined else math.nan

    assert same(m.macro_precision, mean(precision))
    assert same(m.macro_recall, mean(recall))
    assert same(m.macro_f1, mean(f1))
    micro_p = sum(tp) / (sum(tp) + sum(fp)) if sum(tp) + sum(fp) else math.nan
    micro_r = sum(tp) / (sum(tp) + sum(fn)) if sum(tp) + sum(fn) else math.nan
    assert same(m.micro_precision, micro_p)
    assert same(m.micro_recall, micro_r)
    if not math.isnan(micro_p) and micro_p + micro_r > 0:
        assert same(m.micro_f1, 2 * micro_p * micro_r / (micro_p + micro_r))

    covered = [any(predicted[v]) for v in range(scores.shape[0])]
    assert same(metrics.coverage(predicted), sum(covered) / len(covered))
    per_video = [sum(predicted[v]) for v in range(scores.shape[0])]
    assert same(metrics.categories_per_video(predicted), sum(per_video) / len(per_video))


# ------------------------------------------------------------------------------------------------
# Edge cases and input checks.


def test_no_positive_anywhere_gives_nan_not_zero() -> None:
    scores = np.array([[0.3, 0.7], [0.1, 0.2]])
    labels = np.zeros((2, 2), dtype=bool)
    assert math.isnan(metrics.gap_at_k(scores, labels))
    assert math.isnan(metrics.mean_average_precision(scores, labels))
    assert math.isnan(metrics.hit_at_one(scores, labels))
    assert math.isnan(metrics.precision_at_equal_recall_rate(scores, labels))
    m = metrics.threshold_metrics(scores, labels, 0.5)
    assert m.micro_precision == 0.0 and math.isnan(m.micro_recall) and m.micro_f1 == 0.0


def test_nothing_predicted() -> None:
    scores = np.array([[0.3, 0.7], [0.1, 0.2]])
    labels = np.array([[1, 0], [0, 1]])
    m = metrics.threshold_metrics(scores, labels, np.inf)
    assert math.isnan(m.micro_precision) and m.micro_recall == 0.0 and m.micro_f1 == 0.0
    assert math.isnan(m.macro_precision) and m.macro_recall == 0.0
    assert metrics.coverage(metrics.predict_at_thresholds(scores, np.inf)) == 0.0


def test_perfect_ranking_scores_one() -> None:
    labels = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])
    scores = labels + 0.1 * np.arange(4)[None, :] / 4
    assert metrics.gap_at_k(scores, labels) == pytest.approx(1.0)
    assert metrics.mean_average_precision(scores, labels) == pytest.approx(1.0)
    assert metrics.hit_at_one(scores, labels) == 1.0
    assert metrics.precision_at_equal_recall_rate(scores, labels) == 1.0


def test_evaluate_collects_everything() -> None:
    scores, labels = random_case(3)
    out = metrics.evaluate(scores, labels, thresholds=0.5, k=2)
    assert out["gap_at_2"] == metrics.gap_at_k(scores, labels, 2)
    assert out["n_videos"] == 9 and out["n_positives"] == labels.sum()
    expected = {"map", "hit_at_1", "perr", "coverage", "categories_per_video", "micro_f1", "macro_recall"}
    assert expected <= set(out)
    assert "coverage" not in metrics.evaluate(scores, labels)


def test_bad_inputs_are_rejected() -> None:
    scores = np.array([[0.3, 0.7]])
    with pytest.raises(ValueError, match="0/1"):
        metrics.gap_at_k(scores, np.array([[0.2, 0.9]]))
    with pytest.raises(ValueError, match="NaN"):
        metrics.mean_average_precision(np.array([[np.nan, 0.1]]), np.array([[1, 0]]))
    with pytest.raises(ValueError, match="n_videos, n_classes"):
        metrics.hit_at_one(scores, np.array([[1, 0, 0]]))
    with pytest.raises(ValueError, match="one value per class"):
        metrics.predict_at_thresholds(scores, np.array([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="0/1"):
        metrics.average_precision([0.3, 0.7], [0.5, 1.0])
    with pytest.raises(ValueError, match="NaN"):
        metrics.average_precision([np.nan, 0.7], [0, 1])
    with pytest.raises(ValueError, match="k must be"):
        metrics.gap_at_k(scores, np.array([[1, 0]]), k=0)


def test_micro_f1_counts_every_video_category_call():
    from ml.metrics import micro_f1

    y = np.array([[1, 0], [1, 1], [0, 0]])
    e = np.array([[True, True], [False, True], [False, False]])  # 2 right, 1 wrong, 1 missed
    assert micro_f1(e, y) == pytest.approx(2 * 2 / (3 + 3))
    assert micro_f1(np.zeros((2, 2), bool), np.zeros((2, 2))) == 0.0
    assert micro_f1(y.astype(bool), y) == 1.0
