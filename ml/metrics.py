"""Multi-label video metrics: YouTube-8M's GAP@k, mAP, Hit@1 and PERR, and thresholded P/R/F1.

Inputs are dense arrays, ``scores`` (n_videos, n_classes) floats and ``labels`` of the same shape
with values 0/1 (bool accepted). NumPy only, so assets, benchmarks and tests can use them without
torch.

Conventions, chosen so that every value is reproducible (the official YouTube-8M code shuffles or
partitions ties, so its value on tied scores is not a fixed number):

- Average precision is the step function over distinct score thresholds: items with equal scores
  enter together, AP = sum over thresholds of (recall gain) x (precision at that threshold). It is
  sklearn's ``average_precision_score`` and equals the usual rank-based AP when there are no ties.
- GAP@k keeps exactly k predictions per video; if scores tie across the k-th place, the lower class
  index is kept. Its denominator is every positive label in the data, including positives that
  never made a video's top k, as in YouTube-8M.
- Hit@1 and PERR give the expected value under a random order of tied scores, and are averaged over
  videos with at least one positive (YouTube-8M divides by all videos, but there every video has a
  label; a video without any category cannot be hit and should not drag the number down).
- Undefined values are NaN rather than 0: a precision with no predictions, a recall with no
  positives, a mean over nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ThresholdMetrics",
    "average_precision",
    "average_precision_per_class",
    "categories_per_video",
    "coverage",
    "evaluate",
    "gap_at_k",
    "hit_at_one",
    "mean_average_precision",
    "precision_at_equal_recall_rate",
    "predict_at_thresholds",
    "threshold_metrics",
    "top_k_per_video",
]


def _scores(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinite values")
    return s


def _binary(labels: np.ndarray) -> np.ndarray:
    y = np.asarray(labels)
    if y.dtype == bool:
        return y
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0/1; binarise soft or pseudo-label scores first")
    return y.astype(bool)


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores as finite float64, labels as bool; a bad input fails here, not as a silent wrong number."""
    s, y = _scores(scores), _binary(labels)
    if s.ndim != 2 or y.shape != s.shape:
        raise ValueError(f"scores and labels must both be (n_videos, n_classes); got {s.shape} and {y.shape}")
    return s, y


def average_precision(scores: np.ndarray, labels: np.ndarray, num_positives: int | None = None) -> float:
    """AP of one ranked list (1-D ``scores`` and 0/1 ``labels``), ties entering together.

    ``num_positives`` is the recall denominator; it defaults to the positives in the list and may be
    larger when the list is a truncation (GAP). NaN when there are no positives at all.
    """
    s = _scores(scores).ravel()
    y = _binary(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.shape} vs {y.shape}")
    present = int(y.sum())
    total = present if num_positives is None else int(num_positives)
    if total < present:
        raise ValueError(f"num_positives={total} is below the {present} positives in the list")
    if total == 0:
        return float("nan")
    if s.size == 0:
        return 0.0
    order = np.argsort(-s)  # any order within ties: each group of equal scores is closed as a whole
    s, y = s[order], y[order]
    true_pos = np.cumsum(y)
    # Close each group of equal scores at its last item: precision and recall only change there.
    last_of_group = np.r_[s[1:] != s[:-1], True]
    tp = true_pos[last_of_group]
    ranked = np.flatnonzero(last_of_group) + 1
    recall_gain = np.diff(tp, prepend=0) / total
    return float(np.sum(recall_gain * tp / ranked))


def gap_at_k(scores: np.ndarray, labels: np.ndarray, k: int = 20) -> float:
    """Global average precision over each video's top-k predictions, pooled across videos."""
    s, y = _check(scores, labels)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    total = int(y.sum())
    if total == 0:
        return float("nan")
    top_s, top_y = top_k_per_video(s, y, k)
    return average_precision(top_s, top_y, num_positives=total)


def top_k_per_video(scores: np.ndarray, labels: np.ndarray, k: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Each video's top-k scores and their labels, ``(n, min(k, C))``, row order kept: what GAP@k ranks.

    GAP@k over rows is ``average_precision`` of the stacked rows with all of the rows' positives as the
    denominator, so a caller can keep these few columns per video and drop the full score matrix.
    """
    s, y = _check(scores, labels)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    k = min(k, s.shape[1])
    if k == 0:
        return s, y
    # Exactly k per video: all scores above the k-th largest, then the lowest-index ties at it.
    kth = -np.partition(-s, k - 1, axis=1)[:, k - 1 : k]
    above = s > kth
    tied = s == kth
    room = k - above.sum(axis=1, keepdims=True)
    top = above | (tied & (np.cumsum(tied, axis=1) <= room))
    return s[top].reshape(len(s), k), y[top].reshape(len(s), k)


def average_precision_per_class(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AP of each class ranking the videos; NaN for classes without a positive video."""
    s, y = _check(scores, labels)
    columns, column_labels = np.ascontiguousarray(s.T), np.ascontiguousarray(y.T)
    return np.array([average_precision(col, lab) for col, lab in zip(columns, column_labels, strict=True)])


def mean_average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean of the per-class APs over classes that have at least one positive (NaN if none do)."""
    ap = average_precision_per_class(scores, labels)
    defined = ~np.isnan(ap)
    return float(ap[defined].mean()) if defined.any() else float("nan")


def hit_at_one(scores: np.ndarray, labels: np.ndarray) -> float:
    """Share of videos (with a positive) whose top-scoring class is a positive; ties split evenly."""
    s, y = _check(scores, labels)
    has_pos = y.any(axis=1)
    if not has_pos.any():
        return float("nan")
    s, y = s[has_pos], y[has_pos]
    at_top = s == s.max(axis=1, keepdims=True)
    hits = (at_top & y).sum(axis=1) / at_top.sum(axis=1)
    return float(hits.mean())


def precision_at_equal_recall_rate(scores: np.ndarray, labels: np.ndarray) -> float:
    """PERR: per video, precision of its top n predictions where n is its number of positives.

    Averaged over videos with at least one positive. Ties at the n-th place are resolved in
    expectation: of the tied classes that compete for the remaining places, each gets an equal share.
    """
    s, y = _check(scores, labels)
    n_pos = y.sum(axis=1)
    keep = n_pos > 0
    if not keep.any():
        return float("nan")
    s, y, n_pos = s[keep], y[keep], n_pos[keep]
    nth_score = np.take_along_axis(-np.sort(-s, axis=1), (n_pos - 1)[:, None], axis=1)
    above = s > nth_score
    tied = s == nth_score
    places_left = n_pos - above.sum(axis=1)
    expected_hits = (above & y).sum(axis=1) + places_left * (tied & y).sum(axis=1) / tied.sum(axis=1)
    return float(np.mean(expected_hits / n_pos))


def predict_at_thresholds(scores: np.ndarray, thresholds: float | np.ndarray) -> np.ndarray:
    """Boolean predictions ``score >= threshold``, one threshold for all classes or one per class.

    A NaN or +inf threshold means the category is never emitted (a category that could not reach the
    precision target).
    """
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(thresholds, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"scores must be (n_videos, n_classes), got {s.shape}")
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != s.shape[1]):
        raise ValueError(f"thresholds must be a scalar or have one value per class ({s.shape[1]}), got {t.shape}")
    with np.errstate(invalid="ignore"):
        return s >= t  # comparisons with NaN are False: never emitted


def micro_f1(emitted: np.ndarray, labels: np.ndarray) -> float:
    """F1 over every (video, category) call; 0 when nothing is emitted and nothing is true."""
    e, y = np.asarray(emitted, bool), np.asarray(labels) >= 0.5
    denominator = int(e.sum() + y.sum())
    return 2 * int((e & y).sum()) / denominator if denominator else 0.0


def coverage(predicted: np.ndarray) -> float:
    """Share of videos that receive at least one category."""
    p = np.asarray(predicted, dtype=bool)
    return float(p.any(axis=1).mean()) if p.shape[0] else float("nan")


def categories_per_video(predicted: np.ndarray) -> float:
    """Mean number of categories per video, over all videos (those with none count as 0)."""
    p = np.asarray(predicted, dtype=bool)
    return float(p.sum(axis=1).mean()) if p.shape[0] else float("nan")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _mean_defined(values: np.ndarray) -> float:
    defined = ~np.isnan(values)
    return float(values[defined].mean()) if defined.any() else float("nan")


@dataclass(frozen=True)
class ThresholdMetrics:
    """Precision, recall and F1 of thresholded predictions, micro (pooled counts) and macro.

    Per-class precision is NaN for a class never predicted, recall NaN for a class without positives,
    F1 = 2TP / (2TP + FP + FN) NaN only when the class is neither predicted nor present. Macro values
    average the defined per-class values, so a category deliberately not emitted lowers macro recall
    but is not counted as precision 0.
    """

    micro_precision: float
    micro_recall: float
    micro_f1: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray  # positives per class
    predicted: np.ndarray  # predictions per class

    def as_dict(self) -> dict[str, float]:
        """The scalar metrics, ready for run metadata or a JSON report."""
        names = ("micro_precision", "micro_recall", "micro_f1", "macro_precision", "macro_recall", "macro_f1")
        return {name: getattr(self, name) for name in names}


def threshold_metrics(scores: np.ndarray, labels: np.ndarray, thresholds: float | np.ndarray) -> ThresholdMetrics:
    """P/R/F1 of ``score >= threshold`` against the labels, per class, micro and macro."""
    s, y = _check(scores, labels)
    pred = predict_at_thresholds(s, thresholds)
    tp = (pred & y).sum(axis=0)
    fp = (pred & ~y).sum(axis=0)
    fn = (~pred & y).sum(axis=0)
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    tp_all, fp_all, fn_all = tp.sum(), fp.sum(), fn.sum()
    return ThresholdMetrics(
        micro_precision=float(_ratio(tp_all, tp_all + fp_all)),
        micro_recall=float(_ratio(tp_all, tp_all + fn_all)),
        micro_f1=float(_ratio(2 * tp_all, 2 * tp_all + fp_all + fn_all)),
        macro_precision=_mean_defined(precision),
        macro_recall=_mean_defined(recall),
        macro_f1=_mean_defined(f1),
        precision=precision,
        recall=recall,
        f1=f1,
        support=tp + fn,
        predicted=tp + fp,
    )


def evaluate(
    scores: np.ndarray, labels: np.ndarray, thresholds: float | np.ndarray | None = None, k: int = 20
) -> dict[str, float]:
    """Every metric as one flat dict: the ranking metrics, and with thresholds the thresholded ones."""
    s, y = _check(scores, labels)
    out: dict[str, float] = {
        "n_videos": float(s.shape[0]),
        "n_positives": float(y.sum()),
        f"gap_at_{k}": gap_at_k(s, y, k),
        "map": mean_average_precision(s, y),
        "hit_at_1": hit_at_one(s, y),
        "perr": precision_at_equal_recall_rate(s, y),
    }
    if thresholds is not None:
        pred = predict_at_thresholds(s, thresholds)
        out["coverage"] = coverage(pred)
        out["categories_per_video"] = categories_per_video(pred)
        out.update(threshold_metrics(s, y, thresholds).as_dict())
    return out
