"""Scenes in the catalog: `segment_predictions` rows, the `current_segments` view, scene thresholds.

Written by the scene stage (`ml/segments/stage.py`: one transaction per batch that first deletes the
batch's rows for the student version, so re-running a batch replaces them) and by the scene
certification (`ml/segments/certification.py`: the `thresholds` table with source ``scene``, as the
video thresholds are stored). Read by the serving export, `vidcat explain`, the spot-check sheet and
the `segment_predictions` asset check, through the functions here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import duckdb

from ml.catalog.model_registry import replace_thresholds
from ml.catalog.store import IN_LIST, Catalog, delete_where_in, insert_rows

SCENE_SOURCE = "scene"
SEGMENT_COLUMNS = (
    "video_id",
    "model_version",
    "scene_index",
    "start_s",
    "end_s",
    "n_frames",
    "scores",
    "categories",
    "category_scores",
    "break_before",
    "abstained",
    "thresholds_version",
    "batch_id",
    "segmented_at",
)
CURRENT_COLUMNS = ("video_id", "scene_index", "start_s", "end_s", "categories", "category_scores", "break_before")


def replace_batch_segments(
    con: duckdb.DuckDBPyConnection, video_ids: Sequence[str], model_version: str, rows: Sequence[Sequence[Any]]
) -> int:
    """Within the caller's transaction: the videos' scenes for ``model_version`` replaced by ``rows``
    (``SEGMENT_COLUMNS`` order)."""
    delete_where_in(con, "segment_predictions", "video_id", list(video_ids), "AND model_version = ?", [model_version])
    return insert_rows(con, "segment_predictions", list(SEGMENT_COLUMNS), rows)


def current_segments(catalog: Catalog, video_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """video_id -> its current scenes in time order (``CURRENT_COLUMNS`` plus ``abstained``, the versions
    and ``scores``), from ``current_segments``; videos without scenes are absent.

    ``scores``: the student's score of every one of its categories (None: no frame), from the scene's
    `segment_predictions` row: the view serves what was given, `vidcat explain` also shows the best
    category of a scene that was given none.
    """
    rows = catalog.query(
        "SELECT c.video_id, c.scene_index, c.start_s, c.end_s, c.categories, c.category_scores, c.break_before, "
        "c.abstained, c.model_version, c.thresholds_version, s.scores FROM current_segments c "
        "JOIN segment_predictions s USING (video_id, model_version, scene_index) "
        f"WHERE c.video_id {IN_LIST} ORDER BY c.video_id, c.scene_index",
        [list(video_ids)],
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for vid, k, s, e, cats, scores, brk, abstained, version, thr, vector in rows:
        out.setdefault(vid, []).append(
            {
                "scene_index": int(k),
                "start_s": float(s),
                "end_s": float(e),
                "categories": list(cats or []),
                "category_scores": [float(x) for x in scores or []],
                "break_before": bool(brk),
                "abstained": abstained,
                "model_version": version,
                "thresholds_version": thr,
                "scores": None if vector is None else [float(x) for x in vector],
            }
        )
    return out


def current_batch_segments(catalog: Catalog, batch_id: str) -> list[tuple]:
    """(video_id, scene_index, start_s, end_s, categories, category_scores, break_before) of the batch's
    members as served now (``current_segments``), by video and scene: what the serving export writes."""
    return catalog.query(
        f"SELECT {', '.join(CURRENT_COLUMNS)} FROM current_segments "
        "WHERE video_id IN (SELECT video_id FROM batch_members WHERE batch_id = ?) ORDER BY video_id, scene_index",
        [batch_id],
    )


def segment_rows(catalog: Catalog, batch_ids: Sequence[str], model_version: str) -> Any:  # -> pandas.DataFrame
    """The batches' scenes of one student version with each video's probed duration: what the check reads."""
    return catalog.query_df(
        "SELECT s.video_id, s.scene_index, s.start_s, s.end_s, s.n_frames, s.categories, s.category_scores, "
        "p.duration_s FROM segment_predictions s LEFT JOIN video_probe p USING (video_id) "
        f"WHERE s.batch_id {IN_LIST} AND s.model_version = ? ORDER BY s.video_id, s.scene_index",
        [list(batch_ids), model_version],
    )


def write_scene_thresholds(con: duckdb.DuckDBPyConnection, version: str, rows: Sequence[Sequence[Any]]) -> None:
    """Within the caller's transaction: the ``thresholds`` rows (source ``scene``) of one version.

    ``rows``: (category_id, threshold, precision, recall, support, lower_bound, enabled).
    """
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    replace_thresholds(
        con,
        version,
        [(version, c, SCENE_SOURCE, t, p, r, n, lb, bool(on), None, now) for c, t, p, r, n, lb, on in rows],
        source=SCENE_SOURCE,
    )


def scene_threshold_rows(catalog: Catalog, version: str) -> list[tuple]:
    """(category_id, threshold, precision, recall, support, lower_bound, enabled) of one version's scene
    thresholds, by category."""
    return catalog.query(
        "SELECT category_id, threshold, precision, recall, support, lower_bound, enabled FROM thresholds "
        "WHERE version = ? AND source = ? ORDER BY category_id",
        [version, SCENE_SOURCE],
    )


def segment_summary(catalog: Catalog) -> dict[str, int]:
    """Videos with current scenes, their scenes, and the scenes given a category (for `vidcat status`)."""
    row = catalog.query(
        "SELECT count(DISTINCT video_id), count(*), count(*) FILTER (WHERE len(categories) > 0) FROM current_segments"
    )[0]
    return {"videos": int(row[0]), "scenes": int(row[1]), "with_category": int(row[2])}
