"""Stored classifications, read here so that `ml/serving/` holds no catalog SQL.

One video's, as `vidcat explain` shows it: its result row, its categories with both sources'
evidence, its failures. A batch's, as the serving export gives it to ad serving: each member's most
recent result, the categories served now, and which members are taken down.
"""

from __future__ import annotations

from ml.catalog.store import Catalog


def classified_result(catalog: Catalog, video_id: str, fusion_version: str) -> tuple | None:
    """(batch_id, n_categories, has_text, has_visual, classified_at, text_abstained, visual_abstained) of
    the video as fusion ``fusion_version`` classified it; None when it has not (or it failed)."""
    rows = catalog.query(
        "SELECT batch_id, n_categories, has_text, has_visual, classified_at, text_abstained, visual_abstained "
        "FROM video_results WHERE status = 'classified' AND video_id = ? AND model_version = ?",
        [video_id, fusion_version],
    )
    return rows[0] if rows else None


def video_categories(catalog: Catalog, video_id: str, fusion_version: str) -> dict[str, tuple]:
    """category_id -> (category_id, score, source, text_score, visual_score, text_threshold,
    visual_threshold, tier, path) of every category fusion ``fusion_version`` gave the video."""
    return {
        r[0]: r
        for r in catalog.query(
            "SELECT category_id, score, source, text_score, visual_score, text_threshold, visual_threshold, tier, path "
            "FROM predictions WHERE video_id = ? AND model_version = ?",
            [video_id, fusion_version],
        )
    }


def video_failures(catalog: Catalog, video_id: str) -> list[tuple[str, str, str]]:
    """(stage, error_class, message) of every failure on record for the video."""
    return catalog.query("SELECT stage, error_class, message FROM failures WHERE video_id = ?", [video_id])


def latest_results(catalog: Catalog, batch_id: str) -> list[tuple]:
    """(video_id, model_version, classified_at, status, taken down) of each member of the batch with a
    result, from its most recent classification, by video: what the serving store is given."""
    return catalog.query(
        "WITH latest AS (SELECT video_id, arg_max(model_version, classified_at) AS model_version, "
        "max(classified_at) AS classified_at, arg_max(status, classified_at) AS status FROM video_results "
        "WHERE video_id IN (SELECT video_id FROM batch_members WHERE batch_id = ?) GROUP BY video_id) "
        "SELECT l.video_id, l.model_version, l.classified_at, l.status, v.taken_down_at IS NOT NULL "
        "FROM latest l JOIN videos v USING (video_id) ORDER BY l.video_id",
        [batch_id],
    )


def current_categories(catalog: Catalog, batch_id: str) -> list[tuple]:
    """(video_id, category_id, score, source, tier, path) the batch's members are served now
    (``current_predictions``), by video and category."""
    return catalog.query(
        "SELECT video_id, category_id, score, source, tier, path FROM current_predictions "
        "WHERE video_id IN (SELECT video_id FROM batch_members WHERE batch_id = ?) ORDER BY video_id, category_id",
        [batch_id],
    )


def taken_down_members(catalog: Catalog, batch_id: str) -> set[str]:
    """Members of the batch marked taken down (ml/catalog/takedown.py), with a result or not."""
    return {
        r[0]
        for r in catalog.query(
            "SELECT m.video_id FROM batch_members m JOIN videos v USING (video_id) "
            "WHERE m.batch_id = ? AND v.taken_down_at IS NOT NULL",
            [batch_id],
        )
    }
