"""The catalog rows the drift report compares, read here so that `ml/monitoring/` holds no SQL.

A batch and the visual model's training videos are described the same way (text presence and
language, container facts, final categories): one reading of each, so the reference and the batch
cannot be measured differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ml.catalog.store import IN_LIST, Catalog


def text_facts(catalog: Catalog, video_ids: Sequence[str], text_version: str | None) -> Any:  # -> DataFrame
    """video_id, language (the text stage's, else declared), has_text and text_chars of each video."""
    return catalog.query_df(
        "SELECT v.video_id, coalesce(t.language, v.language) AS language, coalesce(t.has_text, false) AS has_text, "
        "coalesce(t.text_chars, 0) AS text_chars FROM videos v "
        "LEFT JOIN text_predictions t ON t.video_id = v.video_id AND t.model_version = ? "
        f"WHERE v.video_id {IN_LIST}",
        [text_version, list(video_ids)],
    )


def container_facts(catalog: Catalog, video_ids: Sequence[str]) -> Any:  # -> DataFrame
    """video_id, duration_s, fps, width, height, bit_rate of the probed videos among ``video_ids``."""
    return catalog.query_df(
        f"SELECT video_id, duration_s, fps, width, height, bit_rate FROM video_probe WHERE video_id {IN_LIST}",
        [list(video_ids)],
    )


def category_pairs(catalog: Catalog, video_ids: Sequence[str], fusion_version: str | None) -> Any:  # -> DataFrame
    """(video_id, category_id) of every category fusion ``fusion_version`` gave the videos."""
    return catalog.query_df(
        f"SELECT video_id, category_id FROM predictions WHERE model_version = ? AND video_id {IN_LIST}",
        [fusion_version, list(video_ids)],
    )
