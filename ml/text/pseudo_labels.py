"""Pseudo-labels: the text teacher's confident calls, as training targets for the visual student.

Positive rule: per category, the lowest calibrated score whose precision on held-out editor labels
reaches the target (default 0.9) with at least ``min_support`` held-out videos above it. A category
that cannot reach the target emits nothing: a student trained on a 60%-precise teacher learns its
mistakes.

Negative rule: a covered category is a negative (target 0) for a video when the video has at least
one positive pseudo-label and its calibrated score for the category is at most ``negative_max_score``
(default 0.05: scores are calibrated, so at most about 1 in 20 such negatives is wrong). Requiring a
positive keeps out videos whose text says nothing (a bare "Episode 4"): their low scores reflect the
prior, not evidence, and would teach the student that their frames belong to no category. Pairs with
no row are unknown and must be masked out of the student's loss, not read as negatives.

Soft targets (``soft=True``): the same rows, with the calibrated score as target instead of 1/0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DEFAULT_TARGET_PRECISION = 0.9
DEFAULT_MIN_SUPPORT = 20
DEFAULT_NEGATIVE_MAX_SCORE = 0.05
COLUMNS = ["video_id", "category_id", "target", "kind"]


@dataclass(frozen=True)
class CategoryThreshold:
    category_id: str
    threshold: float | None  # None: the category emits no positive pseudo-labels
    precision: float | None  # held-out precision at the threshold
    recall: float | None  # share of held-out positives at or above it
    support: int  # held-out videos at or above the threshold
    n_positives: int  # held-out known positives
    n_known: int  # held-out videos with a known label
    lower_bound: float | None  # Wilson lower bound of the precision
    reason: str  # why there is no threshold, or 'ok'

    @property
    def enabled(self) -> bool:
        return self.threshold is not None


def wilson_lower_bound(successes: int, n: int, confidence: float = 0.95) -> float:
    """One-sided lower bound of a proportion (ml.thresholds' Wilson bound); honest for small supports."""
    from ml.thresholds import wilson_lower

    return wilson_lower(successes, n, confidence)


def threshold_for_precision(
    scores: Any,
    labels: Any,
    target_precision: float = DEFAULT_TARGET_PRECISION,
    min_support: int = DEFAULT_MIN_SUPPORT,
    use_lower_bound: bool = False,
    category_id: str = "",
) -> CategoryThreshold:
    """Lowest score t such that the held-out videos scoring >= t are ``target_precision`` positive.

    Candidate thresholds are the distinct held-out scores; ties are kept together (a threshold cannot
    split videos with the same score). With ``use_lower_bound`` the Wilson lower bound, not the point
    estimate, must reach the target.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    known = ~(np.isnan(y) | np.isnan(s))
    s, y = s[known], y[known]
    n_pos = int(y.sum())

    def none(reason: str, **kw: Any) -> CategoryThreshold:
        base = {"precision": None, "recall": None, "support": 0, "lower_bound": None}
        return CategoryThreshold(category_id, None, n_positives=n_pos, n_known=len(y), reason=reason, **{**base, **kw})

    if n_pos == 0:
        return none("no held-out positives")
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    n_above = np.arange(1, len(s) + 1)
    last_of_tie = np.r_[s_sorted[1:] != s_sorted[:-1], True]  # cut only between distinct scores
    precision = tp / n_above
    lower = (
        np.array([wilson_lower_bound(int(a), int(b)) for a, b in zip(tp, n_above, strict=True)])
        if use_lower_bound
        else precision
    )
    ok = last_of_tie & (n_above >= min_support) & (lower >= target_precision)
    if not ok.any():
        supported = last_of_tie & (n_above >= min_support)
        best = float(precision[supported].max()) if supported.any() else None
        why = (
            f"held-out precision never reaches {target_precision:.2f} with >= {min_support} videos (best {best:.2f})"
            if best is not None
            else f"fewer than {min_support} held-out videos with a known label"
        )
        return none(why, precision=best)
    i = int(np.flatnonzero(ok)[-1])  # the lowest qualifying threshold = the largest qualifying set
    return CategoryThreshold(
        category_id,
        float(s_sorted[i]),
        float(precision[i]),
        float(tp[i] / n_pos),
        int(n_above[i]),
        n_pos,
        len(y),
        wilson_lower_bound(int(tp[i]), int(n_above[i])),
        "ok",
    )


def select_thresholds(
    heldout_scores: np.ndarray,
    heldout_labels: np.ndarray,
    categories: Sequence[str],
    target_precision: float = DEFAULT_TARGET_PRECISION,
    min_support: int = DEFAULT_MIN_SUPPORT,
    use_lower_bound: bool = False,
) -> list[CategoryThreshold]:
    """One CategoryThreshold per category, from a model's held-out scores (TextModel.heldout_*)."""
    if heldout_scores.shape != heldout_labels.shape or heldout_scores.shape[1] != len(categories):
        raise ValueError(
            f"scores {heldout_scores.shape}, labels {heldout_labels.shape} and "
            f"{len(categories)} categories do not line up"
        )
    return [
        threshold_for_precision(
            heldout_scores[:, j], heldout_labels[:, j], target_precision, min_support, use_lower_bound, category_id=c
        )
        for j, c in enumerate(categories)
    ]


def thresholds_to_records(thresholds: Iterable[CategoryThreshold]) -> list[dict[str, Any]]:
    return [{**asdict(t), "enabled": t.enabled} for t in thresholds]


def make_pseudo_labels(
    video_ids: Sequence[str],
    scores: np.ndarray,
    categories: Sequence[str],
    thresholds: Sequence[CategoryThreshold],
    negative_max_score: float | None = DEFAULT_NEGATIVE_MAX_SCORE,
    soft: bool = False,
):  # -> pandas.DataFrame
    """Tidy table (video_id, category_id, target, kind) of positive and negative pseudo-labels.

    ``scores``: calibrated probabilities (n, C) aligned with ``categories`` (TextModel.predict_proba);
    rows of videos without text should simply not be passed. ``negative_max_score=None`` emits
    positives only.
    """
    import pandas as pd

    scores = np.asarray(scores, dtype=np.float32)
    if scores.shape != (len(video_ids), len(categories)):
        raise ValueError(f"scores must be ({len(video_ids)}, {len(categories)}), got {scores.shape}")
    by_cat = {t.category_id: t for t in thresholds}
    cut = np.array(
        [by_cat[c].threshold if c in by_cat and by_cat[c].enabled else np.inf for c in categories], dtype=np.float64
    )
    valid = ~np.isnan(scores)
    positive = valid & (scores >= cut[None, :])
    if negative_max_score is not None:
        negative = valid & (scores <= negative_max_score) & positive.any(axis=1, keepdims=True) & ~positive
    else:
        negative = np.zeros_like(positive)
    frames = []
    for mask, kind, hard in ((positive, "positive", 1.0), (negative, "negative", 0.0)):
        r, c = np.nonzero(mask)
        frames.append(
            pd.DataFrame(
                {
                    "video_id": np.asarray(video_ids, dtype=object)[r],
                    "category_id": np.asarray(categories, dtype=object)[c],
                    "target": scores[r, c] if soft else np.full(len(r), hard, dtype=np.float32),
                    "kind": kind,
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out["target"] = out["target"].astype(np.float32)
    return out.sort_values(["video_id", "category_id"], kind="stable").reset_index(drop=True)[COLUMNS]


def pseudo_label_precision(pseudo, gold, exhaustive: Iterable[str] = ()) -> dict[str, Any]:
    """Agreement of pseudo-labels with gold labels, per category and micro-averaged.

    ``pseudo``: the make_pseudo_labels table. ``gold``: rows (video_id, category_id, is_positive),
    a DataFrame or an iterable of tuples; videos in ``exhaustive`` have every category judged, so a
    pair absent from gold is a gold negative. Pairs gold does not judge are left out (and counted).
    Positives report precision; negatives report the share that are truly negative (NPV). Run this on
    gold videos the teacher was not trained on, per teacher version, to see whether the student
    would inherit a systematic error of the teacher.
    """
    import pandas as pd

    cols = ["video_id", "category_id", "is_positive"]
    g = gold if isinstance(gold, pd.DataFrame) else pd.DataFrame(list(gold), columns=cols)
    truth = {(str(v), str(c)): bool(p) for v, c, p in g[cols].itertuples(index=False)}
    full = {str(v) for v in exhaustive}
    stats: dict[tuple[str, str], list[int]] = {}
    for v, c, kind in pseudo[["video_id", "category_id", "kind"]].itertuples(index=False):
        key = (str(v), str(c))
        if key in truth:
            is_pos = truth[key]
        elif key[0] in full:
            is_pos = False
        else:
            stats.setdefault((kind, str(c)), [0, 0, 0])[2] += 1
            continue
        agree = is_pos if kind == "positive" else not is_pos
        cell = stats.setdefault((kind, str(c)), [0, 0, 0])
        cell[0] += int(agree)
        cell[1] += 1

    def summarise(kind: str) -> dict[str, Any]:
        cats = {c: v for (k, c), v in stats.items() if k == kind}
        judged = sum(v[1] for v in cats.values())
        agree = sum(v[0] for v in cats.values())
        return {
            "micro": (agree / judged) if judged else None,
            "judged": judged,
            "unjudged": sum(v[2] for v in cats.values()),
            "per_category": {
                c: {"agreement": (v[0] / v[1]) if v[1] else None, "judged": v[1], "unjudged": v[2]}
                for c, v in sorted(cats.items())
            },
        }

    pos, neg = summarise("positive"), summarise("negative")
    return {
        "positive_precision": pos["micro"],
        "negative_predictive_value": neg["micro"],
        "positive": pos,
        "negative": neg,
    }
