"""Batches: immutable groups of registered videos, one Dagster partition each.

A partition per video would not scale (Dagster handles about 100k partitions per asset; the catalog
has millions of videos), so work is grouped. Videos are batched in registration order (`seq`), which
makes "everything not yet batched" the suffix `seq > max(batches.last_seq)`: a sensor tick reads two
numbers from an index instead of anti-joining millions of rows. A video enters at most one batch
(primary key on `batch_members.video_id`), so two processes that batch at once cannot double-book.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ml.catalog.store import Catalog
from ml.errors import InvalidInput

BATCH_ID_WIDTH = 8


def batch_number(batch_id: str) -> int:
    return int(batch_id[1:])


@dataclass(frozen=True)
class Pending:
    count: int
    cursor_seq: int
    oldest_registered_at: dt.datetime | None


@dataclass(frozen=True)
class BatchInfo:
    batch_id: str
    n_videos: int
    first_seq: int
    last_seq: int
    origin: str


def pending(catalog: Catalog) -> Pending:
    """How many registered videos wait for a batch, and since when (two index lookups)."""
    with catalog.connect(write=False) as con:
        cursor = con.execute("SELECT coalesce(max(last_seq), 0) FROM batches").fetchone()[0]
        count, oldest = con.execute(
            "SELECT count(*), min(registered_at) FROM videos WHERE seq > ?", [cursor]
        ).fetchone()
    return Pending(count=int(count), cursor_seq=int(cursor), oldest_registered_at=oldest)


def create_batches(
    catalog: Catalog,
    batch_size: int,
    origin: str,
    *,
    close_partial: bool = True,
    max_batches: int | None = None,
) -> list[BatchInfo]:
    """Cut the unbatched suffix of the registry into batches of ``batch_size`` videos.

    ``close_partial`` also closes a last, smaller batch (backfill always; the sensor when the oldest
    pending video has waited long enough). Runs in one transaction.
    """
    if batch_size < 1:
        raise InvalidInput("batch_size must be >= 1")
    with catalog.transaction() as con:
        cursor = con.execute("SELECT coalesce(max(last_seq), 0) FROM batches").fetchone()[0]
        next_no = con.execute(
            "SELECT coalesce(max(CAST(substr(batch_id, 2) AS BIGINT)), 0) + 1 FROM batches"
        ).fetchone()[0]
        limit_rows = None if max_batches is None else max_batches * batch_size
        n_pending = con.execute(
            "SELECT count(*) FROM (SELECT 1 FROM videos WHERE seq > ? ORDER BY seq LIMIT ?)",
            [cursor, limit_rows if limit_rows is not None else 2**62],
        ).fetchone()[0]
        n_full, rest = divmod(int(n_pending), batch_size)
        n_batches = n_full + (1 if (rest and close_partial) else 0)
        if max_batches is not None:
            n_batches = min(n_batches, max_batches)
        if n_batches == 0:
            return []
        n_take = min(int(n_pending), n_batches * batch_size)
        # Members: the next n_take videos by seq, numbered into consecutive batches.
        con.execute(
            f"""
            CREATE TEMP TABLE new_members AS
            SELECT video_id, seq,
                   'b' || lpad(CAST(? + (row_number() OVER (ORDER BY seq) - 1) // ? AS VARCHAR),
                               {BATCH_ID_WIDTH}, '0') AS batch_id
            FROM videos WHERE seq > ? ORDER BY seq LIMIT ?
            """,
            [int(next_no), batch_size, cursor, n_take],
        )
        con.execute(
            "INSERT INTO batches SELECT batch_id, now(), ?, count(*), min(seq), max(seq) "
            "FROM new_members GROUP BY batch_id",
            [origin],
        )
        con.execute("INSERT INTO batch_members SELECT video_id, batch_id, seq FROM new_members")
        rows = con.execute(
            "SELECT batch_id, count(*), min(seq), max(seq) FROM new_members GROUP BY batch_id ORDER BY batch_id"
        ).fetchall()
        con.execute("DROP TABLE new_members")
    return [BatchInfo(b, int(n), int(f), int(last), origin) for b, n, f, last in rows]


def batch_video_ids(catalog: Catalog, batch_id: str) -> list[str]:
    rows = catalog.query("SELECT video_id FROM batch_members WHERE batch_id = ? ORDER BY seq", [batch_id])
    return [r[0] for r in rows]


def batches_of(catalog: Catalog, video_ids: Sequence[str]) -> dict[str, str]:
    """video_id -> its batch, for those of ``video_ids`` that are batched (where their frames are stored)."""
    rows = catalog.query(
        "SELECT video_id, batch_id FROM batch_members WHERE video_id IN (SELECT unnest(?::VARCHAR[]))",
        [list(video_ids)],
    )
    return {r[0]: r[1] for r in rows}


def batches_after(catalog: Catalog, batch_no: int, origin: str | None = None) -> list[str]:
    """Batch ids with a number above ``batch_no`` (optionally of one origin), oldest first."""
    sql = "SELECT batch_id FROM batches WHERE CAST(substr(batch_id, 2) AS BIGINT) > ?"
    params: list = [batch_no]
    if origin is not None:
        sql += " AND origin = ?"
        params.append(origin)
    return [r[0] for r in catalog.query(sql + " ORDER BY batch_id", params)]


def all_batches(catalog: Catalog, origin: str | None = None) -> list[str]:
    """Every batch id (or those of one ``origin``: backfill, sensor), oldest first."""
    if origin is None:
        return [r[0] for r in catalog.query("SELECT batch_id FROM batches ORDER BY batch_id")]
    return [r[0] for r in catalog.query("SELECT batch_id FROM batches WHERE origin = ? ORDER BY batch_id", [origin])]


def batch_videos(catalog: Catalog, batch_id: str) -> list[tuple[str, str]]:
    """(video_id, uri) of a batch in registration order."""
    rows = catalog.query(
        "SELECT m.video_id, v.uri FROM batch_members m JOIN videos v USING (video_id) "
        "WHERE m.batch_id = ? ORDER BY m.seq",
        [batch_id],
    )
    return [(r[0], r[1]) for r in rows]


def probed_videos(catalog: Catalog, batch_id: str) -> list[tuple[str, str]]:
    """(video_id, uri) of the batch's videos the probe could read, in registration order: the others
    already have their failure row."""
    rows = catalog.query(
        "SELECT m.video_id, v.uri FROM batch_members m JOIN videos v USING (video_id) "
        "JOIN video_probe p USING (video_id) WHERE m.batch_id = ? ORDER BY m.seq",
        [batch_id],
    )
    return [(r[0], r[1]) for r in rows]


@dataclass(frozen=True)
class UnfinishedBatch:
    batch_id: str
    origin: str
    created_at: dt.datetime
    n_videos: int
    without_result: int  # members with no row in video_results (classified or failed) under any model
    age_s: float  # since the batch was created
    # Steps whose last attempt on the batch failed (from the orchestrator): the steps after fusion write
    # no video_results, so without this a batch whose export failed would look finished.
    failed_steps: tuple[str, ...] = ()
    # Members with a result, but none under the current fusion: scored by models since replaced.
    stale: int = 0


def unfinished_batches(
    catalog: Catalog, failed_steps: Mapping[str, Sequence[str]] | None = None, current_version: str | None = None
) -> list[UnfinishedBatch]:
    """Batches some of whose videos have no result at all, or none under ``current_version`` (the
    current fusion), or named in ``failed_steps``.

    Fusion writes a result for every member of a batch it runs (``classified``, or ``failed`` with the
    reason in ``failures``), so a member without any is work still owed, whatever happened to the run;
    and a member without one under the current fusion was scored by models since retrained (a batch a
    `--train` left out because a run held it then). The steps after fusion leave no such trace; the
    caller, which can read the orchestrator, passes the batches where one of them failed. Anti-joins
    over the members on the results' key: a few hundred milliseconds at millions of videos, fine for
    `vidcat backfill` and `vidcat status`, not for a sensor tick.
    """
    steps = {b: tuple(s) for b, s in (failed_steps or {}).items() if s}
    rows = catalog.query(
        """
        WITH members AS (
            SELECT m.batch_id, m.video_id,
                   NOT EXISTS (SELECT 1 FROM video_results r WHERE r.video_id = m.video_id) AS no_result,
                   ?::VARCHAR IS NOT NULL AND NOT EXISTS (
                       SELECT 1 FROM video_results r WHERE r.video_id = m.video_id AND r.model_version = ?
                   ) AS not_current
            FROM batch_members m
        )
        SELECT b.batch_id, b.origin, b.created_at, b.n_videos,
               count(*) FILTER (WHERE m.no_result) AS without_result,
               count(*) FILTER (WHERE m.not_current AND NOT m.no_result) AS stale,
               epoch(now()::TIMESTAMP) - epoch(b.created_at) AS age_s
        FROM members m
        JOIN batches b USING (batch_id)
        WHERE list_contains(?::VARCHAR[], b.batch_id) OR m.no_result OR m.not_current
        GROUP BY ALL ORDER BY b.batch_id
        """,
        [current_version, current_version, sorted(steps)],
    )
    return [
        UnfinishedBatch(b, o, c, int(n), int(w), float(a), steps.get(b, ()), int(st)) for b, o, c, n, w, st, a in rows
    ]
