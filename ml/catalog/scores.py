"""The stored source scores and outcomes fusion reads, named here so that `ml/fusion/` holds no SQL.

Fitting thresholds on gold, fusing a batch, the locked test and `vidcat classify` all read the same
rows: a model version's score vectors, the text length the text stage measured, the visual model's
out-of-distribution verdicts, which videos did not open, and which failed fusion. One reading, next
to the schema, so the paths cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ml.catalog.store import IN_LIST, Catalog

SCORE_TABLES = ("text_predictions", "visual_predictions")


def score_rows(catalog: Catalog, table: str, model_version: str, video_ids: Sequence[str]) -> list[tuple[str, Any]]:
    """(video_id, score vector) of the videos a model version scored (no row: it did not score the video)."""
    if table not in SCORE_TABLES:
        raise ValueError(f"unknown score table {table!r}")
    return catalog.query(
        f"SELECT video_id, scores FROM {table} WHERE model_version = ? AND scores IS NOT NULL AND video_id {IN_LIST}",
        [model_version, list(video_ids)],
    )


def scored_count(catalog: Catalog, table: str, model_version: str, video_ids: Sequence[str]) -> int:
    """How many of the videos have a row (scored or abstained) of this model version."""
    if table not in SCORE_TABLES:
        raise ValueError(f"unknown score table {table!r}")
    return int(
        catalog.scalar(
            f"SELECT count(*) FROM {table} WHERE model_version = ? AND video_id {IN_LIST}",
            [model_version, list(video_ids)],
        )
        or 0
    )


def with_text_scores(catalog: Catalog, model_version: str, video_ids: Sequence[str]) -> list[tuple[str, Any]]:
    """(video_id, score vector) of the videos among ``video_ids`` in which the text stage found text, by video."""
    return catalog.query(
        "SELECT video_id, scores FROM text_predictions WHERE model_version = ? AND has_text "
        f"AND video_id {IN_LIST} ORDER BY video_id",
        [model_version, list(video_ids)],
    )


def all_text_scores(catalog: Catalog, model_version: str) -> list[tuple[str, Any]]:
    """(video_id, score vector) of every video a text model version scored (it had text)."""
    return catalog.query(
        "SELECT video_id, scores FROM text_predictions WHERE model_version = ? AND has_text AND scores IS NOT NULL",
        [model_version],
    )


def text_chars(catalog: Catalog, model_version: str, video_ids: Sequence[str]) -> dict[str, int]:
    """Cleaned text length per video as the text stage measured it (0 when it found no usable text)."""
    return dict(
        catalog.query(
            "SELECT video_id, coalesce(text_chars, 0) FROM text_predictions "
            f"WHERE model_version = ? AND video_id {IN_LIST}",
            [model_version, list(video_ids)],
        )
    )


def ood_rows(catalog: Catalog, model_version: str, video_ids: Sequence[str]) -> dict[str, tuple[bool, float | None]]:
    """(flagged, score) per video the visual model version scored; no detector: not flagged, score None."""
    return {
        v: (bool(flag), s)
        for v, flag, s in catalog.query(
            "SELECT video_id, coalesce(out_of_distribution, false), ood_score FROM visual_predictions "
            f"WHERE model_version = ? AND video_id {IN_LIST}",
            [model_version, list(video_ids)],
        )
    }


def ood_counts(catalog: Catalog, visual_version: str, video_ids: Sequence[str]) -> tuple[int, int]:
    """(flagged, scored): of the videos a visual model version scored, how many it found unlike its training data.

    The one definition of the out-of-distribution share (flagged / scored) that the fused_predictions
    check and the drift report both show.
    """
    row = catalog.query(
        "SELECT count(*) FILTER (WHERE out_of_distribution), count(*) FROM visual_predictions "
        f"WHERE model_version = ? AND scores IS NOT NULL AND video_id {IN_LIST}",
        [visual_version, list(video_ids)],
    )[0]
    return int(row[0] or 0), int(row[1] or 0)


def unplayable(catalog: Catalog, video_ids: Sequence[str]) -> set[str]:
    """Videos whose file did not open (a probe failure): never served, whatever their title says."""
    return {
        r[0]
        for r in catalog.query(
            f"SELECT video_id FROM failures WHERE stage = 'probe' AND video_id {IN_LIST}", [list(video_ids)]
        )
    }


def failed_results(catalog: Catalog, fusion_version: str, video_ids: Sequence[str]) -> set[str]:
    """Videos a fusion version recorded as failed (nothing to classify, or unplayable)."""
    return {
        r[0]
        for r in catalog.query(
            f"SELECT video_id FROM video_results WHERE model_version = ? AND status = 'failed' AND video_id {IN_LIST}",
            [fusion_version, list(video_ids)],
        )
    }


def gold_locked_rows(catalog: Catalog) -> list[tuple[str, list[str], bool | None]]:
    """(video, its gold positives, has text) of the gold videos kept as the locked test."""
    return [
        (r[0], list(r[1] or []), r[2])
        for r in catalog.query(
            "SELECT t.video_id, list(h.category_id) FILTER (WHERE h.is_positive), any_value(p.has_text) "
            "FROM locked_test t JOIN label_coverage c ON c.video_id = t.video_id AND c.label_set = 'gold' "
            "AND c.exhaustive LEFT JOIN human_labels h ON h.video_id = t.video_id AND h.label_set = 'gold' "
            "LEFT JOIN text_predictions p ON p.video_id = t.video_id "
            "WHERE t.source = 'gold-split' GROUP BY t.video_id ORDER BY t.video_id"
        )
    ]


def labelled_categories(catalog: Catalog, label_set: str) -> set[str]:
    """Categories with at least one label of the set (positive or negative)."""
    rows = catalog.query("SELECT DISTINCT category_id FROM human_labels WHERE label_set = ?", [label_set])
    return {r[0] for r in rows}
