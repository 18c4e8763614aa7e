"""Per-video features that drift reports compare between a batch and the training reference.

Evidently's cost and its HTML grow with the column count, and a 1280-d embedding compared column by
column would drown the report in multiple-testing noise. So the report sees tens of columns: a FIXED
PCA of mean-pooled frame embeddings (fitted once on the reference and stored as JSON, so every batch
is projected on the same axes), per-category emitted flags for the top categories, the text mix and
the container facts. Every builder returns a frame indexed by ``video_id``; `combine_features` joins
them. numpy/pandas only: no Evidently import here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from data_checks.embeddings_suite import as_triple

DEFAULT_PCA_COMPONENTS = 8
PROBE_FEATURES = ("duration_s", "fps", "width", "height", "bit_rate")


def fit_pca(reference_matrix: np.ndarray, n_components: int = DEFAULT_PCA_COMPONENTS) -> dict[str, Any]:
    """Principal axes of the reference (rows: videos), JSON-serialisable: store it next to the reference.

    Each axis' sign is fixed (largest loading positive) so a refit on the same data gives the same
    features instead of mirrored ones.
    """
    x = np.asarray(reference_matrix, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"fit_pca needs a 2-d matrix (videos x dim), got shape {x.shape}")
    x = x[np.isfinite(x).all(axis=1)]
    if len(x) < 2:
        raise ValueError(f"fit_pca needs at least 2 finite rows, got {len(x)}")
    k = int(min(n_components, x.shape[0], x.shape[1]))
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    components = vt[:k]
    signs = np.sign(components[np.arange(k), np.abs(components).argmax(axis=1)])
    components = components * signs[:, None]
    variance = s**2
    return {
        "mean": mean.tolist(),
        "components": components.tolist(),
        "explained_variance_ratio": (variance[:k] / variance.sum()).tolist() if variance.sum() > 0 else [0.0] * k,
        "n_fit": len(x),
        "dim": int(x.shape[1]),
    }


def apply_pca(matrix: np.ndarray, pca: dict[str, Any]) -> np.ndarray:
    """Project rows onto the stored axes: (n, D) -> (n, k)."""
    x = np.asarray(matrix, dtype=np.float64)
    mean = np.asarray(pca["mean"], dtype=np.float64)
    components = np.asarray(pca["components"], dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != mean.shape[0]:
        raise ValueError(f"matrix has shape {x.shape}; the PCA was fitted on dimension {mean.shape[0]}")
    return (x - mean) @ components.T


def mean_pool(records: Iterable[Any]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(ids, mean-pooled matrix (n, D), mean frame L2 norm (n,)) over each video's finite frames.

    ``records``: ``(video_id, timestamps, embeddings)`` tuples or shard reader records.
    """
    ids: list[str] = []
    pooled: list[np.ndarray] = []
    norms: list[float] = []
    for record in records:
        video_id, _timestamps, embeddings = as_triple(record)
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] == 0:
            continue
        emb = emb[np.isfinite(emb).all(axis=1)]
        if emb.shape[0] == 0:
            continue  # nothing finite: the embeddings suite reports it; drift has nothing to compare
        ids.append(video_id)
        pooled.append(emb.mean(axis=0))
        norms.append(float(np.linalg.norm(emb, axis=1).mean()))
    if not pooled:
        return ids, np.empty((0, 0), dtype=np.float32), np.empty(0)
    return ids, np.vstack(pooled), np.asarray(norms)


def embedding_drift_features(records: Iterable[Any], pca: dict[str, Any]) -> Any:
    """``emb_pc0..k-1`` (fixed PCA of mean-pooled frames) and ``emb_norm`` (mean frame norm) per video."""
    import pandas as pd

    ids, matrix, norms = mean_pool(records)
    k = len(pca["components"])
    columns = [f"emb_pc{i}" for i in range(k)]
    if not ids:
        return pd.DataFrame(columns=[*columns, "emb_norm"], index=pd.Index([], name="video_id"), dtype="float64")
    out = pd.DataFrame(apply_pca(matrix, pca), columns=columns, index=pd.Index(ids, name="video_id"))
    out["emb_norm"] = norms
    return out


def top_categories(predictions: Any, k: int = 10) -> list[str]:
    """The ``k`` categories emitted most often in ``predictions`` (the reference's), ties by id."""
    counts = predictions.groupby("category_id")["video_id"].nunique().reset_index(name="n")
    counts["category_id"] = counts["category_id"].astype(str)
    counts = counts.sort_values(["n", "category_id"], ascending=[False, True])
    return counts["category_id"].head(k).tolist()


def prediction_rate_features(predictions: Any, video_ids: Sequence[str], categories: Sequence[str]) -> Any:
    """``cat_<id>`` (was the category emitted for the video) for the given top categories, and
    ``n_categories`` (all categories emitted). Videos with no prediction are rows of zeros: they are
    the coverage the rates are about.
    """
    import pandas as pd

    index = pd.Index(list(video_ids), name="video_id")
    preds = predictions[predictions["video_id"].isin(index)]
    out = pd.DataFrame(index=index)
    per_video = preds.groupby("video_id")["category_id"].nunique()
    out["n_categories"] = per_video.reindex(index).fillna(0).astype("int64")
    emitted = set(zip(preds["video_id"], preds["category_id"].astype(str), strict=True))
    for category in categories:
        out[f"cat_{category}"] = [(v, str(category)) in emitted for v in index]
    return out


def text_features(df: Any, languages: Sequence[str] | None = None) -> Any:
    """``language`` (categorical: one of ``languages``, ``other`` or ``none``), ``has_text``, ``text_chars_log``.

    ``df`` has ``video_id`` and ``language``, plus ``has_text`` (or ``title``/``description`` to derive
    it) and optionally ``text_chars``. Pass the reference's top languages as ``languages`` so the
    category vocabulary, and hence the chi-square test, is the same for every batch.
    """
    import pandas as pd

    index = pd.Index(df["video_id"].tolist(), name="video_id")
    language = pd.Series(df["language"].tolist(), index=index, dtype=object)
    bucket = language.where(language.notna(), "none").astype(str)
    if languages is not None:
        allowed = set(languages) | {"none"}
        bucket = bucket.where(bucket.isin(allowed), "other")
    out = pd.DataFrame({"language": bucket}, index=index)
    if "has_text" in df.columns:
        has_text = pd.Series(df["has_text"].fillna(False).astype(bool).tolist(), index=index)
    else:
        parts = [df[c].fillna("").astype(str).str.strip() for c in ("title", "description") if c in df.columns]
        chars = sum((p.str.len() for p in parts), start=pd.Series(0, index=df.index))
        has_text = pd.Series((chars > 0).tolist(), index=index)
    out["has_text"] = has_text.astype(bool)
    if "text_chars" in df.columns:
        out["text_chars_log"] = np.log1p(pd.Series(df["text_chars"].tolist(), index=index, dtype="float64").fillna(0))
    return out


def probe_features(probe_df: Any) -> Any:
    """Container facts per video: ``duration_s, fps, width, height, bit_rate`` (nulls stay null)."""
    out = probe_df.set_index("video_id")[list(PROBE_FEATURES)].astype("float64")
    out.index.name = "video_id"
    return out


def combine_features(*frames: Any) -> Any:
    """Outer-join feature frames on ``video_id`` (a video missing from one source keeps nulls there)."""
    import pandas as pd

    frames = tuple(f for f in frames if f is not None)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, axis=1, join="outer").rename_axis("video_id")
