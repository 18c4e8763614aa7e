"""Pseudo-labels: the text teacher's calls, as training targets for the visual student.

Positive rule: per category, the cut on the teacher's calibrated score chosen by the shared threshold
policy (ml/thresholds.py) on its cross-fitted held-out editor scores, at the pseudo-label precision
(default 0.9): the lowest cut whose precision's lower confidence bound still reaches it, with at least
``min_support`` held-out positives above. A category that cannot reach it emits no positive: a
student trained on a 60%-precise teacher learns its mistakes.

Informative videos: a video with at least one positive. Its text says something the teacher is sure
of, so the teacher's other scores for it are evidence too. A video without one (a bare "Episode 4")
gets no row at all: its low scores reflect the prior, not evidence, and would teach the student that
its frames belong to no category. Pairs without a row are unknown and are masked out of the
student's loss, never read as negatives. (``informative_min_score`` also admits videos on an
uncertified belief; off.) Since the student learns from the posterior of the teacher's probabilities
and its own first reading (ml/visual/cotrain.py), this table no longer selects its training videos:
it is the teacher's own certified calls, reported per batch and counted when the student decides
which categories it can learn.

Rows of an informative video, every one carrying the calibrated score ``p`` as ``target`` (the soft
target) and its confidence ``|2p - 1|`` as ``weight``:
- ``positive``: at or above the category's cut;
- ``negative``: at most ``negative_max_score`` (scores are calibrated, so about 1 in 20 such is wrong);
- ``soft``: in between; a student trained with hard targets ignores these rows, one trained with
  soft targets learns ``p`` with weight ``|2p - 1|`` (nothing at 0.5, where the teacher knows nothing).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from ml.thresholds import PSEUDO_LABEL_BOUND, ThresholdPolicy, select_threshold

DEFAULT_TARGET_PRECISION = 0.9
DEFAULT_MIN_SUPPORT = 20
DEFAULT_NEGATIVE_MAX_SCORE = 0.05
DEFAULT_INFORMATIVE_MIN_SCORE = None  # off: only certified positives make a video informative
COLUMNS = ["video_id", "category_id", "target", "weight", "kind"]
KINDS = ("positive", "negative", "soft")


@dataclass(frozen=True)
class CategoryThreshold:
    category_id: str
    threshold: float | None  # None: the category emits no positive pseudo-labels
    precision: float | None  # held-out precision at the threshold
    recall: float | None  # share of held-out positives at or above it
    support: int  # held-out videos at or above the threshold
    n_positives: int  # held-out known positives
    n_known: int  # held-out videos with a known label
    lower_bound: float | None  # the policy's lower confidence bound of the precision
    reason: str  # why there is no threshold, or 'ok'

    @property
    def enabled(self) -> bool:
        return self.threshold is not None


def default_policy(
    target_precision: float = DEFAULT_TARGET_PRECISION, min_support: int = DEFAULT_MIN_SUPPORT
) -> ThresholdPolicy:
    """The pseudo-label gate: at 90%, keeping the most labels it allows.

    An internal quality gate on training data, not the promise to advertisers: a one-sided Wilson bound
    at 80% over the scanned cuts (``PSEUDO_LABEL_BOUND``), where the promise certifies at 95% with the
    scan accounted for (ml/thresholds.py). A pseudo-label a little less sure than promised costs the
    student a little noise; a promise a little less sure than stated costs an advertiser.
    """
    return ThresholdPolicy(
        target_precision=target_precision, min_support=min_support, objective="recall", **PSEUDO_LABEL_BOUND
    )


def threshold_for_category(
    scores: Any, labels: Any, policy: ThresholdPolicy, category_id: str = ""
) -> CategoryThreshold:
    """The pseudo-label cut of one category from held-out scores and 1 / 0 / NaN (unknown) labels."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    known = ~(np.isnan(y) | np.isnan(s))
    t = select_threshold(s[known], y[known] > 0.5, policy)
    reason = "no held-out positives" if t.positives == 0 else t.reason
    return CategoryThreshold(
        category_id,
        t.threshold if t.enabled else None,
        t.precision,
        t.recall,
        t.predicted,
        t.positives,
        int(known.sum()),
        t.lower_bound,
        reason,
    )


def select_thresholds(
    heldout_scores: np.ndarray,
    heldout_labels: np.ndarray,
    categories: Sequence[str],
    policy: ThresholdPolicy | None = None,
    pooled: bool = False,
) -> list[CategoryThreshold]:
    """One CategoryThreshold per category, from a model's held-out scores (TextModel.heldout_*)."""
    if heldout_scores.shape != heldout_labels.shape or heldout_scores.shape[1] != len(categories):
        raise ValueError(
            f"scores {heldout_scores.shape}, labels {heldout_labels.shape} and "
            f"{len(categories)} categories do not line up"
        )
    policy = policy or default_policy()
    if pooled:
        # One calibrator for all categories (the prior head): one cut, certified on every held-out
        # (video, category) pair together, where a few labels per category could certify none.
        one = threshold_for_category(heldout_scores.reshape(-1), heldout_labels.reshape(-1), policy, "all")
        return [replace(one, category_id=c) for c in categories]
    return [
        threshold_for_category(heldout_scores[:, j], heldout_labels[:, j], policy, category_id=c)
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
    soft: bool = True,
    informative_min_score: float | None = DEFAULT_INFORMATIVE_MIN_SCORE,
):  # -> pandas.DataFrame
    """Tidy table (video_id, category_id, target, weight, kind) for the informative videos.

    ``scores``: calibrated probabilities (n, C) aligned with ``categories`` (TextModel.predict_proba);
    rows of videos without text should simply not be passed. ``negative_max_score=None`` emits no
    negatives; ``soft=False`` emits no soft rows (positives and negatives only).
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
    informative = positive.any(axis=1, keepdims=True)
    if soft and informative_min_score is not None:
        informative |= (np.where(valid, scores, 0.0) >= informative_min_score).any(axis=1, keepdims=True)
    if negative_max_score is not None:
        negative = valid & (scores <= negative_max_score) & informative & ~positive
    else:
        negative = np.zeros_like(positive)
    between = valid & informative & ~positive & ~negative if soft else np.zeros_like(positive)
    frames = []
    for mask, kind in ((positive, "positive"), (negative, "negative"), (between, "soft")):
        r, c = np.nonzero(mask)
        p = scores[r, c]
        frames.append(
            pd.DataFrame(
                {
                    "video_id": np.asarray(video_ids, dtype=object)[r],
                    "category_id": np.asarray(categories, dtype=object)[c],
                    "target": p,
                    "weight": np.abs(2 * p - 1),
                    "kind": kind,
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out["target"] = out["target"].astype(np.float32)
    out["weight"] = out["weight"].astype(np.float32)
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
        if kind not in ("positive", "negative"):
            continue
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
