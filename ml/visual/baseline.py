"""The strong simple baseline every visual figure is read against.

One-vs-rest logistic regression on the mean and the max of a video's frame embeddings (standardised),
trained on the editor-labelled videos' labels and nothing else: no text, no pseudo-labels, no
metadata, a 0.5 cut. It is computed in the same run as the figures it keeps honest; if it beats the
student, the student is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ml.frames.embedding_store import iter_videos


def pooled_features(frames: np.ndarray) -> np.ndarray:
    """Mean and max over frames: (n, D) -> (2D,)."""
    f = np.asarray(frames, dtype=np.float32)
    return np.concatenate([f.mean(axis=0), f.max(axis=0)])


def pooled_matrix(shards: Sequence[Path], video_ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """(ids found, features) for the wanted videos that have frames, in ``video_ids`` order."""
    found = {
        v.video_id: pooled_features(v.embeddings)
        for v in iter_videos([Path(s) for s in shards], video_ids=set(video_ids))
        if v.n_frames
    }
    ids = [v for v in video_ids if v in found]
    return ids, np.stack([found[v] for v in ids]) if ids else np.zeros((0, 0), np.float32)


class PooledBaseline:
    def __init__(self, categories: Sequence[str], seed: int = 0) -> None:
        self.categories = list(categories)
        self.seed = seed
        self.model: Any = None
        self.constant: dict[int, float] = {}

    def fit(self, features: np.ndarray, labels: np.ndarray) -> PooledBaseline:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        y = np.asarray(labels) >= 0.5
        self.models: dict[int, Any] = {}
        for j in range(y.shape[1]):
            if y[:, j].all() or not y[:, j].any():
                self.constant[j] = float(y[:, j].mean())
                continue
            self.models[j] = make_pipeline(
                StandardScaler(), LogisticRegression(max_iter=3000, random_state=self.seed)
            ).fit(features, y[:, j])
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        out = np.zeros((len(features), len(self.categories)), np.float64)
        for j in range(len(self.categories)):
            if j in self.models:
                out[:, j] = self.models[j].predict_proba(features)[:, 1]
            else:
                out[:, j] = self.constant.get(j, 0.0)
        return out


def baseline_scores(
    shards: Sequence[Path],
    train_labels: Mapping[str, np.ndarray],
    categories: Sequence[str],
    score_ids: Sequence[str],
    *,
    guard: Callable[[Iterable[str], str], None],
) -> tuple[dict[str, np.ndarray], int]:
    """Fit on ``train_labels`` (video -> 0/1 over ``categories``); probabilities for ``score_ids``.

    ``guard`` (ml.catalog.holdout.HoldoutGuard) refuses held-out videos among the training ones.
    """
    guard(train_labels, "the baseline")
    train_ids, x = pooled_matrix(shards, sorted(train_labels))
    if not train_ids:
        return {}, 0
    y = np.stack([train_labels[v] for v in train_ids])
    model = PooledBaseline(categories).fit(x, y)
    ids, xs = pooled_matrix(shards, list(score_ids))
    probs = model.predict_proba(xs) if ids else np.zeros((0, len(categories)))
    return dict(zip(ids, probs, strict=True)), len(train_ids)
