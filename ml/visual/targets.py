"""What the visual student learns from: every honest label, each weighted by how much it can be trusted.

Sources, in order of trust (a video takes its targets from the first source that has it):
1. **editor labels**: every category of an exhaustively labelled video is known (1 or 0), weight 1;
   single yes/no verdicts make only their category known;
2. **pseudo-labels** from the text teacher, for every language (``ml/text/pseudo_labels.py``): with
   ``soft`` the teacher's calibrated score is the target and ``pseudo_weight x |2p - 1|`` its weight;
   without, positives are 1 and negatives 0 at ``pseudo_weight``, and in-between rows are dropped;
3. **self-training** targets: on pool videos without text, round one's calibrated score itself
   (soft, weight ``self_weight x |2p - 1|``; ``ml/visual/cotrain.py``). No cut is certified for them:
   the calibrated score is trusted as it is, so a miscalibrated round one teaches round two its own
   mistakes, which the ablation measures (``vidcat eval-visual --ablation``).
Anything no source speaks about stays NaN: unknown, left out of the loss, never a negative.

Held-out videos (gold, locked test) never get a target: ``build_targets`` drops them, and the
student's training checks its targets again with a guard that reads the held-out videos from the
catalog itself (``ml/catalog/holdout.py: HoldoutGuard``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

SOURCES = ("editor", "pseudo", "self")


@dataclass(frozen=True)
class TargetPolicy:
    """Which label sources the student uses and how much each counts (settings: ``student_*``)."""

    editor_labels: bool = True
    pseudo_labels: bool = True
    soft: bool = True
    pseudo_weight: float = 0.5
    self_training: bool = True
    self_weight: float = 0.5

    @classmethod
    def from_settings(cls, settings) -> TargetPolicy:
        return cls(
            editor_labels=settings.student_editor_labels,
            pseudo_labels=settings.student_pseudo_labels,
            soft=settings.student_soft_targets,
            pseudo_weight=settings.student_pseudo_weight,
            self_training=settings.student_self_training,
            self_weight=settings.student_self_weight,
        )

    def __post_init__(self) -> None:
        if not (0 < self.pseudo_weight <= 1 and 0 < self.self_weight <= 1):
            raise ValueError("pseudo_weight and self_weight must be in (0, 1]")
        if not (self.editor_labels or self.pseudo_labels):
            raise ValueError("the student needs editor labels or pseudo-labels (or both)")


@dataclass
class StudentTargets:
    categories: list[str]
    targets: dict[str, np.ndarray] = field(default_factory=dict)  # video -> float32 (C,), NaN unknown
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # video -> float32 (C,)
    source: dict[str, str] = field(default_factory=dict)  # video -> editor | pseudo | self

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in SOURCES}
        for s in self.source.values():
            out[s] += 1
        return out

    def positives(self) -> np.ndarray:
        """Per category, the videos whose target is at least 0.5 (what validation calls a positive)."""
        if not self.targets:
            return np.zeros(len(self.categories), dtype=np.int64)
        stacked = np.stack(list(self.targets.values()))
        return (np.nan_to_num(stacked, nan=0.0) >= 0.5).sum(axis=0)

    def add(self, video_id: str, target: np.ndarray, weight: np.ndarray, source: str) -> None:
        if video_id in self.targets:
            return  # a more trusted source already spoke about this video
        self.targets[video_id] = np.asarray(target, dtype=np.float32)
        self.weights[video_id] = np.asarray(weight, dtype=np.float32)
        self.source[video_id] = source

    def restricted(self, video_ids: Iterable[str]) -> StudentTargets:
        keep = set(video_ids)
        out = StudentTargets(list(self.categories))
        for v in self.targets:
            if v in keep:
                out.add(v, self.targets[v], self.weights[v], self.source[v])
        return out


def editor_targets(
    rows: Iterable[tuple[str, str, bool]], exhaustive: Iterable[str], categories: Sequence[str]
) -> dict[str, np.ndarray]:
    """video -> (C,) from editor label rows (video_id, category_id, is_positive).

    An exhaustively labelled video knows every category (unlisted ones are 0); otherwise only the
    judged categories are known.
    """
    index = {c: j for j, c in enumerate(categories)}
    full = set(exhaustive)
    out: dict[str, np.ndarray] = {v: np.zeros(len(categories), np.float32) for v in full}
    for vid, cat, positive in rows:
        j = index.get(str(cat))
        vec = out.get(vid)
        if vec is None:
            vec = out[vid] = np.full(len(categories), np.nan, np.float32)
        if j is not None:
            vec[j] = 1.0 if positive else 0.0
    return {v: t for v, t in out.items() if not np.isnan(t).all()}


def pseudo_targets(
    rows: Iterable[tuple[str, str, float, float, str]], categories: Sequence[str], policy: TargetPolicy
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(targets, weights) from pseudo-label rows (video_id, category_id, target, weight, kind)."""
    index = {c: j for j, c in enumerate(categories)}
    targets: dict[str, np.ndarray] = {}
    weights: dict[str, np.ndarray] = {}
    for vid, cat, p, confidence, kind in rows:
        j = index.get(str(cat))
        if j is None:
            continue
        if policy.soft:
            t, w = float(p), policy.pseudo_weight * float(confidence if confidence is not None else 1.0)
        elif kind in ("positive", "negative"):
            t, w = (1.0 if kind == "positive" else 0.0), policy.pseudo_weight
        else:
            continue
        if vid not in targets:
            targets[vid] = np.full(len(categories), np.nan, np.float32)
            weights[vid] = np.zeros(len(categories), np.float32)
        targets[vid][j] = t
        weights[vid][j] = w
    return targets, weights


def build_targets(
    categories: Sequence[str],
    editor: Mapping[str, np.ndarray],
    pseudo: tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray]],
    held_out: frozenset[str] | set[str],
    policy: TargetPolicy,
    available: set[str] | None = None,
) -> StudentTargets:
    """Editor labels first, then pseudo-labels; held-out videos dropped, then checked absent.

    ``available``: the videos that have frame embeddings (a target without frames teaches nothing).
    """
    out = StudentTargets(list(categories))
    ok = lambda v: v not in held_out and (available is None or v in available)  # noqa: E731
    if policy.editor_labels:
        for v, t in editor.items():
            if ok(v):
                out.add(v, t, np.ones_like(t), "editor")
    if policy.pseudo_labels:
        targets, weights = pseudo
        for v, t in targets.items():
            if ok(v):
                out.add(v, t, weights[v], "pseudo")
    return out
