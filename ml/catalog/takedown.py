"""Taking videos down: marked in the catalog, so that no export serves them again.

The mark, not a deletion: the video's history (labels, predictions, failures) stays for audits, and the
serving export withdraws every marked video from the serving store on its next run of the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

from ml.catalog.store import Catalog


def registered(catalog: Catalog, video_ids: Sequence[str]) -> set[str]:
    """Which of ``video_ids`` the registry knows."""
    rows = catalog.query(
        "SELECT video_id FROM videos WHERE video_id IN (SELECT unnest(?::VARCHAR[]))", [list(video_ids)]
    )
    return {r[0] for r in rows}


def take_down(catalog: Catalog, video_ids: Sequence[str], reason: str) -> None:
    """Mark the videos taken down now, with ``reason``, in one transaction."""
    with catalog.transaction() as con:
        con.execute(
            "UPDATE videos SET taken_down_at = now(), taken_down_reason = ? "
            "WHERE video_id IN (SELECT unnest(?::VARCHAR[]))",
            [reason, list(video_ids)],
        )
