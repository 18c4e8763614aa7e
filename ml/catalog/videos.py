"""The registry's rows as the stages read them: a video's text, the facts its metadata vector is built
from, its probed duration, its file, and which videos are registered at all.

The text teacher, the label-budget evaluation and `vidcat explain` read the same text fields; the
visual student and `vidcat explain` the same container facts; gold scene import, scene certification,
the scene stage and the embeddings check the same probed durations. One reading each, next to the schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ml.catalog.store import IN_LIST, Catalog

VIDEO_TEXT_COLUMNS = ("video_id", "title", "description", "tags", "language")
EDITOR_COVERED = "video_id IN (SELECT video_id FROM label_coverage WHERE label_set = 'editor')"

# The facts the visual metadata vector is built from, in the order of ml.visual.meta.META_COLUMNS
# (tests/ml/visual/test_data.py holds the two equal).
VIDEO_FACT_COLUMNS: tuple[str, ...] = (
    "video_id",
    "language",
    "uploaded_at",
    "duration_s",
    "fps",
    "width",
    "height",
    "rotation",
    "has_audio",
)
VIDEO_FACTS_QUERY = (
    "SELECT v.video_id, v.language, v.uploaded_at, p.duration_s, p.fps, p.width, p.height, p.rotation, "
    "p.has_audio FROM videos v LEFT JOIN video_probe p ON p.video_id = v.video_id"
)


def video_rows(
    catalog: Catalog, video_ids: Sequence[str] | None = None, *, editor_covered: bool = False
) -> list[dict[str, Any]]:
    """Text fields (``VIDEO_TEXT_COLUMNS``) of ``video_ids``, or of every video, in registration order.

    ``editor_covered`` keeps only videos with an editor coverage row (the text teacher's training set).
    """
    conditions: list[str] = []
    args: list = []
    if video_ids is not None:
        conditions.append(f"video_id {IN_LIST}")
        args.append(list(video_ids))
    if editor_covered:
        conditions.append(EDITOR_COVERED)
    sql = f"SELECT {', '.join(VIDEO_TEXT_COLUMNS)} FROM videos"
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    rows = catalog.query(sql + " ORDER BY seq", args)
    return [dict(zip(VIDEO_TEXT_COLUMNS, r, strict=True)) for r in rows]


def video_facts(catalog: Catalog, video_ids: Sequence[str] | None = None) -> list[tuple]:
    """Rows of ``VIDEO_FACT_COLUMNS`` for ``video_ids`` (scoring a batch), or for every video (training).

    A video without a probe row still has one, its container facts None.
    """
    if video_ids is None:
        return catalog.query(VIDEO_FACTS_QUERY)
    return catalog.query(VIDEO_FACTS_QUERY + f" WHERE v.video_id {IN_LIST}", [list(video_ids)])


# How far a time (a gold range's end, a scene's end) may lie past the probed duration: one sampling step
# at 1 fps (a container's duration and the last frame's time differ by up to a frame interval).
DURATION_SLACK_S = 1.0
# Only durations the probe measured: a video without one has no bound on its frames or ranges.
PROBED_DURATIONS_QUERY = "SELECT video_id, duration_s FROM video_probe WHERE duration_s IS NOT NULL"


def probed_durations(catalog: Catalog, video_ids: Sequence[str]) -> dict[str, float]:
    """video_id -> probed duration (s) of those of ``video_ids`` that have one."""
    rows = catalog.query(PROBED_DURATIONS_QUERY + f" AND video_id {IN_LIST}", [list(video_ids)])
    return {r[0]: float(r[1]) for r in rows}


def probed_durations_of_batches(catalog: Catalog, batch_ids: Sequence[str]) -> dict[str, float]:
    """video_id -> probed duration (s) of the batches' members that have one: bounds on their frame counts."""
    rows = catalog.query(
        PROBED_DURATIONS_QUERY + f" AND video_id IN (SELECT video_id FROM batch_members WHERE batch_id {IN_LIST})",
        [list(batch_ids)],
    )
    return {r[0]: float(r[1]) for r in rows}


def video_uri(catalog: Catalog, video_id: str) -> str | None:
    """Where the video's file is (None for an unknown video)."""
    return catalog.scalar("SELECT uri FROM videos WHERE video_id = ?", [video_id])


def registered_ids(catalog: Catalog) -> set[str]:
    """Every registered video."""
    return {r[0] for r in catalog.query("SELECT video_id FROM videos")}
