"""Score vectors from the catalog as dense matrices over one category order, NaN where unscored.

Each model version stores its own category order (`model_registry.categories`); fusion and
thresholds work over the union of what the text and visual models cover, so vectors are re-indexed
here, once, for every consumer.
"""

from __future__ import annotations

import numpy as np

from ml.catalog.scores import SCORE_TABLES, ood_rows, score_rows, text_chars
from ml.catalog.store import Catalog


def category_union(ws_ids: list[str], *category_lists: list[str]) -> list[str]:
    """Categories covered by any model, in working-set order (stable across versions)."""
    covered = set().union(*map(set, category_lists))
    return [c for c in ws_ids if c in covered]


def load_scores(
    catalog: Catalog,
    table: str,
    model_version: str | None,
    model_categories: list[str],
    video_ids: list[str],
    categories: list[str],
) -> np.ndarray:
    """(len(video_ids), len(categories)) float64; NaN for unscored videos and categories the model lacks."""
    if table not in SCORE_TABLES:
        raise ValueError(f"unknown score table {table!r}")
    out = np.full((len(video_ids), len(categories)), np.nan)
    if not video_ids or model_version is None:
        return out
    rows = score_rows(catalog, table, model_version, video_ids)
    row_of = {v: i for i, v in enumerate(video_ids)}
    col_of = {c: j for j, c in enumerate(categories)}
    src = [j for j, c in enumerate(model_categories) if c in col_of]
    dst = [col_of[model_categories[j]] for j in src]
    for vid, scores in rows:
        vec = np.asarray(scores, dtype=np.float64)
        out[row_of[vid], dst] = vec[src]
    return out


def text_lengths(catalog: Catalog, model_version: str, video_ids: list[str]) -> np.ndarray:
    """Cleaned text length per video as the text stage measured it (0 when it found no usable text)."""
    rows = text_chars(catalog, model_version, video_ids)
    return np.array([rows.get(v, 0) for v in video_ids], dtype=np.float64)


def ood_flags(catalog: Catalog, model_version: str, video_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(flagged, score) per video from ``visual_predictions``: out of distribution for that visual model.

    Videos without a row, or scored by a model without a detector, are not flagged (score NaN).
    """
    rows = ood_rows(catalog, model_version, video_ids)
    flagged = np.array([rows.get(v, (False, None))[0] for v in video_ids], dtype=bool)
    score = np.array(
        [np.nan if rows.get(v, (False, None))[1] is None else rows[v][1] for v in video_ids], dtype=np.float64
    )
    return flagged, score


def visual_scores(
    catalog: Catalog,
    model_version: str | None,
    model_categories: list[str],
    video_ids: list[str],
    categories: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, flagged): the visual source's scores with out-of-distribution videos blanked (NaN).

    The visual source abstains on a video unlike its training data; fitting and applying fusion both
    read it through here, so thresholds are set on the source as it is deployed.
    """
    v = load_scores(catalog, "visual_predictions", model_version, model_categories, video_ids, categories)
    if model_version is None:
        return v, np.zeros(len(video_ids), dtype=bool)
    flagged, _ = ood_flags(catalog, model_version, video_ids)
    v[flagged] = np.nan
    return v, flagged
