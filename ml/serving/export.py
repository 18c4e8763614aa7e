"""The serving store ad servers read: each video's current categories in PostgreSQL, one batch at a time.

The DuckDB catalog is single-writer and local; ad servers read a video by its id from Postgres. After
a batch is fused, its videos' current classification is exported in **one Postgres transaction**:

1. ``video_classification`` is upserted **only where newer** (``classified_at`` at least the stored
   one), returning the videos that changed;
2. for those videos only, ``video_category`` rows are replaced (a video classified with no category
   keeps its classification row and has no category rows);
3. for the same videos, ``video_segments`` rows are replaced by the video's current scenes (time
   range, categories under certified scene thresholds, a suggested mid-roll break at its start): a
   video's scenes always belong to the classification beside them;
4. videos of the batch that must not be served any more (taken down, or whose file turned out
   unplayable) are deleted, categories and scenes with them (``ON DELETE CASCADE``).

So exporting a batch twice gives the same rows; after a rescore, re-exporting an old batch changes
nothing (the guard in 1); a crash or a killed connection leaves the transaction undone; and a reader
sees a video's old categories and scenes or its new ones, never a mix (one transaction, read committed). The
export is off until ``serving_dsn`` is set (vidcat.toml or VIDCAT_SERVING_DSN).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ml.catalog.results import current_categories, latest_results, taken_down_members
from ml.catalog.segments import current_batch_segments
from ml.catalog.store import Catalog

SERVING_SCHEMA = """
CREATE TABLE IF NOT EXISTS video_classification (
    video_id       text PRIMARY KEY,
    model_version  text NOT NULL,
    classified_at  timestamptz NOT NULL,
    n_categories   int NOT NULL
);
CREATE TABLE IF NOT EXISTS video_category (
    video_id     text NOT NULL REFERENCES video_classification (video_id) ON DELETE CASCADE,
    category_id  text NOT NULL,
    score        real NOT NULL,
    source       text NOT NULL,
    PRIMARY KEY (video_id, category_id)
);
-- The category's level (1 = top of IAB) and path; a back-off parent has source 'backoff'.
ALTER TABLE video_category ADD COLUMN IF NOT EXISTS tier int;
ALTER TABLE video_category ADD COLUMN IF NOT EXISTS path text;
-- Where in the video: scenes tiling [0, duration], each with the categories given under certified scene
-- thresholds (best first; empty where none is certified) and whether a mid-roll break is suggested at
-- its start.
CREATE TABLE IF NOT EXISTS video_segments (
    video_id      text NOT NULL REFERENCES video_classification (video_id) ON DELETE CASCADE,
    scene_index   int NOT NULL,
    start_s       real NOT NULL,
    end_s         real NOT NULL,
    categories    text[] NOT NULL,
    scores        real[] NOT NULL,
    break_before  boolean NOT NULL,
    PRIMARY KEY (video_id, scene_index)
);
"""


@dataclass
class VideoRecord:
    video_id: str
    model_version: str
    classified_at: dt.datetime
    categories: list[tuple[str, float, str, int | None, str | None]]  # (category_id, score, source, tier, path)
    # (scene_index, start_s, end_s, categories, scores, break_before), in time order
    segments: list[tuple[int, float, float, list[str], list[float], bool]] = field(default_factory=list)


@dataclass
class BatchPayload:
    batch_id: str
    serve: list[VideoRecord] = field(default_factory=list)
    withdraw: list[str] = field(default_factory=list)  # taken down, or not playable: not to be served


@dataclass
class ExportResult:
    batch_id: str
    videos: int
    updated: int
    unchanged: int
    withdrawn: int
    categories: int
    seconds: float
    segments: int = 0


def batch_payload(catalog: Catalog, batch_id: str) -> BatchPayload:
    """The batch's videos as ad serving must see them: each one's most recent classification."""
    rows = latest_results(catalog, batch_id)
    cats: dict[str, list[tuple[str, float, str, int | None, str | None]]] = {}
    for vid, cat, score, source, tier, path in current_categories(catalog, batch_id):
        cats.setdefault(vid, []).append((cat, float(score), source, tier, path))
    scenes: dict[str, list[tuple[int, float, float, list[str], list[float], bool]]] = {}
    for vid, k, start, end, names, scores, brk in current_batch_segments(catalog, batch_id):
        scenes.setdefault(vid, []).append(
            (int(k), float(start), float(end), list(names or []), [float(x) for x in scores or []], bool(brk))
        )
    payload = BatchPayload(batch_id)
    taken = taken_down_members(catalog, batch_id)
    for vid, version, at, status, down in rows:
        if down or status != "classified":
            payload.withdraw.append(vid)
        else:
            payload.serve.append(
                VideoRecord(vid, version, at.replace(tzinfo=dt.UTC), cats.get(vid, []), scenes.get(vid, []))
            )
    payload.withdraw = sorted(set(payload.withdraw) | taken)
    return payload


def connect(dsn: str, **kwargs: Any):  # -> psycopg.Connection
    import psycopg

    try:
        return psycopg.connect(dsn, connect_timeout=10, **kwargs)
    except psycopg.OperationalError as exc:
        raise ConnectionError(
            f"cannot reach the serving database ({exc}); check serving_dsn in vidcat.toml or VIDCAT_SERVING_DSN"
        ) from exc


def ensure_schema(conn) -> None:
    with conn.transaction():
        conn.execute(SERVING_SCHEMA)


def export_batch(conn, payload: BatchPayload, between: Callable[[], None] | None = None) -> ExportResult:
    """One transaction: newer-wins upsert, categories and scenes replaced for what changed, withdrawn videos deleted.

    ``between`` runs after the upsert and before the categories are written (tests use it to kill the
    connection mid-transaction).
    """
    started = time.monotonic()
    updated: list[str] = []
    n_categories = n_segments = 0
    with conn.transaction(), conn.cursor() as cur:
        if payload.serve:
            cur.execute(
                "CREATE TEMP TABLE incoming (video_id text, model_version text, classified_at timestamptz, "
                "n_categories int) ON COMMIT DROP"
            )
            with cur.copy("COPY incoming FROM STDIN") as copy:
                for r in payload.serve:
                    copy.write_row((r.video_id, r.model_version, r.classified_at, len(r.categories)))
            cur.execute(
                "INSERT INTO video_classification AS c SELECT * FROM incoming "
                "ON CONFLICT (video_id) DO UPDATE SET model_version = excluded.model_version, "
                "classified_at = excluded.classified_at, n_categories = excluded.n_categories "
                "WHERE c.classified_at <= excluded.classified_at RETURNING c.video_id"
            )
            updated = [r[0] for r in cur.fetchall()]
            if between is not None:
                between()
            if updated:
                cur.execute("DELETE FROM video_category WHERE video_id = ANY(%s)", [updated])
                changed = set(updated)
                with cur.copy(
                    "COPY video_category (video_id, category_id, score, source, tier, path) FROM STDIN"
                ) as copy:
                    for r in payload.serve:
                        if r.video_id in changed:
                            for cat, score, source, tier, path in r.categories:
                                copy.write_row((r.video_id, cat, score, source, tier, path))
                                n_categories += 1
                cur.execute("DELETE FROM video_segments WHERE video_id = ANY(%s)", [updated])
                with cur.copy(
                    "COPY video_segments (video_id, scene_index, start_s, end_s, categories, scores, break_before) "
                    "FROM STDIN"
                ) as copy:
                    for r in payload.serve:
                        if r.video_id in changed:
                            for k, start, end, names, scores, brk in r.segments:
                                copy.write_row((r.video_id, k, start, end, names, scores, brk))
                                n_segments += 1
        withdrawn = 0
        if payload.withdraw:
            cur.execute("DELETE FROM video_classification WHERE video_id = ANY(%s)", [payload.withdraw])
            withdrawn = cur.rowcount
    return ExportResult(
        payload.batch_id,
        len(payload.serve) + len(payload.withdraw),
        len(updated),
        len(payload.serve) - len(updated),
        withdrawn,
        n_categories,
        time.monotonic() - started,
        n_segments,
    )


def withdraw(conn, video_ids: list[str]) -> int:
    """Delete videos from the serving store at once (a take-down must not wait for a batch)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("DELETE FROM video_classification WHERE video_id = ANY(%s)", [list(video_ids)])
        return cur.rowcount


def read_video(conn, video_id: str) -> dict[str, Any] | None:
    """What an ad server reads: one video by id, its classification, categories and scenes in one snapshot
    (one statement)."""
    row = conn.execute(
        "SELECT c.model_version, c.classified_at, c.n_categories, "
        "coalesce((SELECT json_agg(json_build_object('category_id', k.category_id, 'score', k.score, "
        "'source', k.source, 'tier', k.tier, 'path', k.path) ORDER BY k.score DESC) "
        "FROM video_category k WHERE k.video_id = c.video_id), '[]'), "
        "coalesce((SELECT json_agg(json_build_object('scene_index', s.scene_index, 'start_s', s.start_s, "
        "'end_s', s.end_s, 'categories', s.categories, 'scores', s.scores, 'break_before', s.break_before) "
        "ORDER BY s.scene_index) FROM video_segments s WHERE s.video_id = c.video_id), '[]') "
        "FROM video_classification c WHERE c.video_id = %s",
        [video_id],
    ).fetchone()
    if row is None:
        return None
    version, at, n, categories, segments = row
    return {
        "video_id": video_id,
        "model_version": version,
        "classified_at": at.isoformat(),
        "n_categories": n,
        "categories": categories,
        "segments": segments,
        "breaks": [s["start_s"] for s in segments if s["break_before"]],
    }
