"""Counts a person wants to see about the catalog: shown in asset metadata and by `vidcat status`."""

from __future__ import annotations

from collections.abc import Sequence

from ml.catalog.batching import pending
from ml.catalog.store import Catalog


def registry_stats(catalog: Catalog) -> dict:
    with catalog.connect(write=False) as con:
        videos = con.execute("SELECT count(*) FROM videos").fetchone()[0]
        batches = con.execute("SELECT count(*) FROM batches").fetchone()[0]
        editor = con.execute("SELECT count(*) FROM label_coverage WHERE label_set = 'editor'").fetchone()[0]
        gold = con.execute("SELECT count(DISTINCT video_id) FROM human_labels WHERE label_set = 'gold'").fetchone()[0]
        langs = con.execute(
            "SELECT coalesce(language, 'unknown'), count(*) FROM videos GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 12"
        ).fetchall()
        failures = con.execute(
            "SELECT stage, error_class, count(*) FROM failures GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2"
        ).fetchall()
    return {
        "videos": int(videos),
        "unbatched": pending(catalog).count,
        "batches": int(batches),
        "editor_labelled": int(editor),
        "gold_labelled": int(gold),
        "languages": [(str(a), int(b)) for a, b in langs],
        "failures": [(str(a), str(b), int(c)) for a, b, c in failures],
    }


def videos_with_categories(catalog: Catalog, batch_ids: Sequence[str], model_version: str) -> int:
    """Videos of the batches that fusion ``model_version`` gave at least one category: the numerator of coverage."""
    return int(
        catalog.scalar(
            "SELECT count(*) FROM video_results WHERE model_version = ? AND n_categories > 0 "
            "AND batch_id IN (SELECT unnest(?::VARCHAR[]))",
            [model_version, list(batch_ids)],
        )
        or 0
    )


def batch_table(catalog: Catalog, limit: int = 50) -> list[tuple]:
    """Per batch: videos, probed, failed (any stage), given at least one category (current models)."""
    return catalog.query(
        """
        SELECT b.batch_id, b.origin, b.n_videos,
               (SELECT count(*) FROM video_probe p WHERE p.batch_id = b.batch_id) AS probed,
               (SELECT count(DISTINCT f.video_id) FROM failures f WHERE f.batch_id = b.batch_id) AS failed,
               (SELECT count(DISTINCT q.video_id) FROM current_predictions q WHERE q.batch_id = b.batch_id)
                   AS categorised
        FROM batches b ORDER BY b.batch_id LIMIT ?
        """,
        [limit],
    )


def md_table(rows, header) -> str:
    """A markdown table for Dagster metadata and CLI output."""
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
