"""The catalog: one DuckDB file that every stage reads and writes.

DuckDB allows one writing process per file. Dagster's run workers (two at a time), the daemon's sensor
and the CLI are separate processes, so every access here is a short connection taken under a file
lock (shared for readers, exclusive for writers: a pool of one writer). A process that is not ours
and holds the file (a user's `duckdb` shell) makes us retry with backoff, then fail with a message
saying who to stop. Each write is one transaction, so a crash leaves the old state or the new one.

The schema is created and migrated by this module: ``SCHEMA_MIGRATIONS`` is append-only and the
applied version is kept in ``schema_version``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from ml.errors import UserFacingError

LOCK_RETRY_S = 60.0
# `column IN_LIST` with one parameter, a list of ids: a whole id list in one bound array.
IN_LIST = "IN (SELECT unnest(?::VARCHAR[]))"


class CatalogLockedError(UserFacingError, RuntimeError):
    """Another process kept the DuckDB file locked for longer than we are willing to wait."""


SCHEMA_MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "videos, batches, probe, failures, labels, models, predictions",
        """
        CREATE TABLE videos (
            video_id       VARCHAR PRIMARY KEY,
            seq            BIGINT NOT NULL,          -- registration order: the upload sensor's cursor
            uri            VARCHAR NOT NULL,         -- resolved absolute path under a media root
            content_sha256 VARCHAR,                  -- identical uploads are registered once
            size_bytes     BIGINT,
            title          VARCHAR,
            description    VARCHAR,
            tags           VARCHAR,
            language       VARCHAR,                  -- declared by the uploader; may be NULL
            creator        VARCHAR,
            uploaded_at    TIMESTAMP,
            registered_at  TIMESTAMP NOT NULL,
            origin         VARCHAR NOT NULL          -- manifest file name, 'inbox', 'demo', ...
        );
        CREATE UNIQUE INDEX videos_seq ON videos(seq);
        CREATE INDEX videos_sha ON videos(content_sha256);

        CREATE TABLE batches (
            batch_id    VARCHAR PRIMARY KEY,         -- also the Dagster partition key
            created_at  TIMESTAMP NOT NULL,
            origin      VARCHAR NOT NULL,            -- 'backfill' or 'sensor'
            n_videos    INTEGER NOT NULL,
            first_seq   BIGINT NOT NULL,
            last_seq    BIGINT NOT NULL
        );
        CREATE TABLE batch_members (
            video_id  VARCHAR PRIMARY KEY,           -- a video belongs to at most one batch, forever
            batch_id  VARCHAR NOT NULL,
            seq       BIGINT NOT NULL
        );
        CREATE INDEX batch_members_batch ON batch_members(batch_id);

        CREATE TABLE video_probe (
            video_id        VARCHAR PRIMARY KEY,
            batch_id        VARCHAR,
            container       VARCHAR,
            video_codec     VARCHAR,
            pix_fmt         VARCHAR,
            width           INTEGER,
            height          INTEGER,
            rotation        INTEGER,                 -- degrees from the display matrix
            fps             DOUBLE,                  -- average frame rate
            vfr             BOOLEAN,                 -- frame durations vary
            duration_s      DOUBLE,
            duration_source VARCHAR,                 -- container, stream or packets
            n_frames        BIGINT,
            bit_rate        BIGINT,
            size_bytes      BIGINT,
            has_audio       BOOLEAN,
            audio_codec     VARCHAR,
            probed_at       TIMESTAMP NOT NULL
        );

        CREATE TABLE failures (
            video_id     VARCHAR NOT NULL,
            stage        VARCHAR NOT NULL,           -- probe, frames, text, visual, fusion, ...
            batch_id     VARCHAR,
            error_class  VARCHAR NOT NULL,
            message      VARCHAR NOT NULL,
            failed_at    TIMESTAMP NOT NULL,
            PRIMARY KEY (video_id, stage)
        );

        CREATE TABLE human_labels (
            video_id     VARCHAR NOT NULL,
            category_id  VARCHAR NOT NULL,
            label_set    VARCHAR NOT NULL,           -- 'editor' (training) or 'gold' (human-verified)
            is_positive  BOOLEAN NOT NULL,
            annotator    VARCHAR,
            created_at   TIMESTAMP NOT NULL,
            PRIMARY KEY (video_id, category_id, label_set)
        );
        -- A video listed here with exhaustive = true has every category judged: the ones not in
        -- human_labels are negatives. Spot-check answers are not exhaustive.
        CREATE TABLE label_coverage (
            video_id    VARCHAR NOT NULL,
            label_set   VARCHAR NOT NULL,
            exhaustive  BOOLEAN NOT NULL,
            PRIMARY KEY (video_id, label_set)
        );

        CREATE TABLE model_registry (
            model_name     VARCHAR NOT NULL,         -- text_model, visual_model, ...
            version        VARCHAR NOT NULL,
            created_at     TIMESTAMP NOT NULL,
            artifact_path  VARCHAR NOT NULL,
            categories     VARCHAR[],                -- order of the score vectors this model emits
            params         JSON,
            metrics        JSON,
            training_data  JSON,
            PRIMARY KEY (model_name, version)
        );

        -- Per-source scores: one row per video and model version, a score vector aligned with
        -- model_registry.categories (200 floats per video, not 200 rows).
        CREATE TABLE text_predictions (
            video_id       VARCHAR NOT NULL,
            model_version  VARCHAR NOT NULL,
            batch_id       VARCHAR,
            has_text       BOOLEAN NOT NULL,
            language       VARCHAR,                  -- detected
            text_chars     INTEGER,
            scores         FLOAT[],                  -- NULL when has_text is false
            predicted_at   TIMESTAMP NOT NULL,
            PRIMARY KEY (video_id, model_version)
        );
        CREATE TABLE pseudo_labels (
            video_id       VARCHAR NOT NULL,
            category_id    VARCHAR NOT NULL,
            model_version  VARCHAR NOT NULL,         -- the teacher's version
            batch_id       VARCHAR,
            target         FLOAT NOT NULL,           -- 1/0 hard target, or the calibrated score
            kind           VARCHAR NOT NULL,         -- positive or negative
            PRIMARY KEY (video_id, category_id, model_version)
        );
        CREATE TABLE visual_predictions (
            video_id       VARCHAR NOT NULL,
            model_version  VARCHAR NOT NULL,
            batch_id       VARCHAR,
            n_frames       INTEGER,
            scores         FLOAT[],
            predicted_at   TIMESTAMP NOT NULL,
            PRIMARY KEY (video_id, model_version)
        );
        CREATE TABLE thresholds (
            version      VARCHAR NOT NULL,
            category_id  VARCHAR NOT NULL,
            source       VARCHAR NOT NULL,           -- text, visual, fused, backoff
            threshold    DOUBLE,                     -- NULL when the source cannot reach the target
            precision    DOUBLE,
            recall       DOUBLE,
            support      INTEGER,
            lower_bound  DOUBLE,
            enabled      BOOLEAN NOT NULL,
            is_visual    BOOLEAN,
            created_at   TIMESTAMP NOT NULL,
            PRIMARY KEY (version, category_id, source)
        );
        CREATE TABLE predictions (
            video_id              VARCHAR NOT NULL,
            category_id           VARCHAR NOT NULL,
            model_version         VARCHAR NOT NULL,  -- text+visual+thresholds versions, one key
            score                 DOUBLE NOT NULL,
            source                VARCHAR NOT NULL,  -- text, visual, both, fused or backoff
            text_score            DOUBLE,
            visual_score          DOUBLE,
            text_threshold        DOUBLE,
            visual_threshold      DOUBLE,
            fusion                VARCHAR,
            text_model_version    VARCHAR,
            visual_model_version  VARCHAR,
            thresholds_version    VARCHAR,
            batch_id              VARCHAR,
            predicted_at          TIMESTAMP NOT NULL,
            PRIMARY KEY (video_id, category_id, model_version)
        );
        """,
    ),
    (
        2,
        "per-video outcome of fusion and the current_predictions view for ad serving",
        """
        -- One row per video and fused model version: "classified" (also with no category: that is a
        -- state, not the absence of predictions rows) or "failed" (unplayable file, or neither text nor
        -- frames; the reason is in failures). The latest row decides what is served.
        CREATE TABLE video_results (
            video_id       VARCHAR NOT NULL,
            model_version  VARCHAR NOT NULL,
            batch_id       VARCHAR,
            status         VARCHAR NOT NULL,
            n_categories   INTEGER NOT NULL,
            has_text       BOOLEAN,
            has_visual     BOOLEAN,
            classified_at  TIMESTAMP NOT NULL,
            PRIMARY KEY (video_id, model_version)
        );
        -- What ad serving reads: each video's categories from its most recent classification.
        CREATE VIEW current_predictions AS
        SELECT p.video_id, p.category_id, p.score, p.source, p.text_score, p.visual_score,
               p.model_version, p.batch_id, p.predicted_at
        FROM predictions p
        JOIN (SELECT video_id, arg_max(model_version, classified_at) AS model_version
              FROM video_results GROUP BY video_id) latest
          ON p.video_id = latest.video_id AND p.model_version = latest.model_version;
        """,
    ),
    (
        3,
        "locked test, weighted pseudo-labels, out-of-distribution scores and per-source abstentions",
        """
        -- Videos kept for the one evaluation nothing trains or tunes on (ml/catalog/holdout.py).
        CREATE TABLE locked_test (
            video_id  VARCHAR PRIMARY KEY,
            source    VARCHAR NOT NULL,              -- gold-split, demo-ground-truth or manual
            added_at  TIMESTAMP NOT NULL
        );
        -- How much a pseudo-label counts in the student's loss (its confidence); 1 for hard labels.
        ALTER TABLE pseudo_labels ADD COLUMN weight FLOAT DEFAULT 1.0;
        -- Distance of the video's frames to the student's training data, and whether that is too far
        -- for the visual source to judge it (ml/visual/ood.py).
        ALTER TABLE visual_predictions ADD COLUMN ood_score FLOAT;
        ALTER TABLE visual_predictions ADD COLUMN out_of_distribution BOOLEAN;
        -- Why a source gave a video nothing: NULL when it judged the video.
        ALTER TABLE video_results ADD COLUMN text_abstained VARCHAR;
        ALTER TABLE video_results ADD COLUMN visual_abstained VARCHAR;
        """,
    ),
    (
        4,
        "take-downs: a taken-down video is never served, in the catalog's view or the serving store",
        """
        ALTER TABLE videos ADD COLUMN taken_down_at TIMESTAMP;
        ALTER TABLE videos ADD COLUMN taken_down_reason VARCHAR;
        DROP VIEW current_predictions;
        CREATE VIEW current_predictions AS
        SELECT p.video_id, p.category_id, p.score, p.source, p.text_score, p.visual_score,
               p.model_version, p.batch_id, p.predicted_at
        FROM predictions p
        JOIN (SELECT video_id, arg_max(model_version, classified_at) AS model_version
              FROM video_results GROUP BY video_id) latest
          ON p.video_id = latest.video_id AND p.model_version = latest.model_version
        JOIN videos v ON v.video_id = p.video_id
        WHERE v.taken_down_at IS NULL;
        """,
    ),
    (
        5,
        "categories carry their level: tier and path, for leaves and back-off parents (source 'backoff')",
        """
        ALTER TABLE predictions ADD COLUMN tier INTEGER;
        ALTER TABLE predictions ADD COLUMN path VARCHAR;
        DROP VIEW current_predictions;
        CREATE VIEW current_predictions AS
        SELECT p.video_id, p.category_id, p.score, p.source, p.text_score, p.visual_score,
               p.model_version, p.batch_id, p.predicted_at, p.tier, p.path
        FROM predictions p
        JOIN (SELECT video_id, arg_max(model_version, classified_at) AS model_version
              FROM video_results GROUP BY video_id) latest
          ON p.video_id = latest.video_id AND p.model_version = latest.model_version
        JOIN videos v ON v.video_id = p.video_id
        WHERE v.taken_down_at IS NULL;
        """,
    ),
    (
        6,
        "scenes: segment_predictions, the current_segments view, verified gold scene ranges",
        """
        -- Time ranges an editor verified on a gold video: every category on screen with where it is
        -- (ranges may overlap; a category not listed is absent). Scene thresholds are certified on them.
        CREATE TABLE gold_scenes (
            video_id     VARCHAR NOT NULL,
            range_index  INTEGER NOT NULL,           -- order in the imported answer
            start_s      DOUBLE NOT NULL,
            end_s        DOUBLE NOT NULL,
            category_id  VARCHAR NOT NULL,
            annotator    VARCHAR,
            created_at   TIMESTAMP NOT NULL,
            PRIMARY KEY (video_id, range_index)
        );
        -- One row per detected scene, video and student version: the scenes tile [0, duration].
        CREATE TABLE segment_predictions (
            video_id            VARCHAR NOT NULL,
            model_version       VARCHAR NOT NULL,    -- the student's version
            scene_index         INTEGER NOT NULL,    -- 0, 1, ... in time order
            start_s             DOUBLE NOT NULL,
            end_s               DOUBLE NOT NULL,
            n_frames            INTEGER NOT NULL,
            scores              FLOAT[],             -- aligned with model_registry.categories; NULL: no frame
            categories          VARCHAR[] NOT NULL,  -- given under certified scene thresholds, best first
            category_scores     FLOAT[] NOT NULL,    -- their scores, same order
            break_before        BOOLEAN NOT NULL,    -- a suggested mid-roll ad break at start_s
            abstained           VARCHAR,             -- why no category could be given (NULL: judged)
            thresholds_version  VARCHAR,             -- the scene thresholds applied (NULL: none certified)
            batch_id            VARCHAR,
            segmented_at        TIMESTAMP NOT NULL,
            PRIMARY KEY (video_id, model_version, scene_index)
        );
        CREATE INDEX segment_predictions_batch ON segment_predictions(batch_id);
        -- What ad serving reads: each video's scenes from its most recent segmentation, never a
        -- taken-down video's.
        CREATE VIEW current_segments AS
        SELECT s.video_id, s.scene_index, s.start_s, s.end_s, s.categories, s.category_scores,
               s.break_before, s.abstained, s.model_version, s.thresholds_version, s.batch_id, s.segmented_at
        FROM segment_predictions s
        JOIN (SELECT video_id, arg_max(model_version, segmented_at) AS model_version
              FROM segment_predictions GROUP BY video_id) latest
          ON s.video_id = latest.video_id AND s.model_version = latest.model_version
        JOIN videos v ON v.video_id = s.video_id
        WHERE v.taken_down_at IS NULL;
        """,
    ),
]

SCHEMA_VERSION = SCHEMA_MIGRATIONS[-1][0]


@dataclass(frozen=True)
class Catalog:
    """Handle on the catalog file; cheap to create, holds no connection."""

    path: Path

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    @contextlib.contextmanager
    def connect(self, write: bool = True, sandboxed: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection under the catalog lock; closed on exit.

        ``sandboxed``: a read-only connection for queries typed by people: no file system access at
        all (no COPY TO, ATTACH, INSTALL, read_text or read_csv of any path, not even under the data
        root, where the embedding shards are), and the configuration locked so a query cannot switch
        that back. `vidcat sql` runs on a snapshot instead (``snapshot``), so that its query holds no lock.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if sandboxed and not self.path.exists():
            raise FileNotFoundError(f"no catalog at {self.path}; run `vidcat register` or `make demo` first")
        if not write and not self.path.exists():
            write = True  # a read of a catalog that does not exist yet creates it empty
        with self._locked(write):
            con = _open_with_retry(self.path, read_only=not write, config=SANDBOX_CONFIG if sandboxed else None)
            try:
                yield con
            finally:
                con.close()

    @contextlib.contextmanager
    def _locked(self, write: bool) -> Iterator[None]:
        """The catalog's file lock (exclusive to write, shared to read); the wait is recorded (``lock_waits``)."""
        requested = time.monotonic()
        with open(self.lock_path, "a+") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
            _record_wait(time.monotonic() - requested, write)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def snapshot(self, folder: Path | None = None) -> Iterator[Path]:
        """A private copy of the catalog, taken under the shared lock and deleted on exit.

        DuckDB lets no process open a file that another process writes, and no writer in while a reader
        has it open, so a long query on the catalog itself would hold every run's writes for as long as
        it runs. A copy costs the writers only the copy: a clone on file systems that share blocks (XFS,
        btrfs), otherwise a plain copy from the page cache (measured in docs/deploy.md).
        """
        if not self.path.exists():
            raise FileNotFoundError(f"no catalog at {self.path}; run `vidcat register` or `make demo` first")
        folder = Path(folder or self.path.parent / ".snapshots")
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_snapshots(folder)
        target = Path(tempfile.mkdtemp(prefix=snapshot_prefix(), dir=folder))
        try:
            copy = target / self.path.name
            with self._locked(write=False):
                clone_file(self.path, copy)
                wal = self.path.with_name(self.path.name + ".wal")
                if wal.exists():  # what a killed writer left: the copy replays it on open
                    clone_file(wal, copy.with_name(copy.name + ".wal"))
            yield copy
        finally:
            shutil.rmtree(target, ignore_errors=True)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One atomic write: all of it lands or none of it."""
        with self.connect(write=True) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def schema_version(self) -> int | None:
        """The applied schema version read without the writer's lock; None for a missing or empty catalog."""
        if not self.path.exists():
            return None
        with self.connect(write=False) as con:
            found = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
            ).fetchone()[0]
            if not found:
                return None
            return int(con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])

    def ensure_schema(self) -> int:
        """Create or migrate the schema; returns the version now in place. Safe to call often.

        A catalog already at this version is only read (shared lock), so commands that read never wait
        for a writer's lock nor make writers wait for them beyond their own short reads.
        """
        current = self.schema_version()
        if current == SCHEMA_VERSION:
            return current
        if current is not None and current > SCHEMA_VERSION:
            raise RuntimeError(
                f"catalog {self.path} has schema version {current}, newer than this code "
                f"({SCHEMA_VERSION}); upgrade vidcat or point VIDCAT_HOME at another data root"
            )
        with self.connect(write=True) as con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                " version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMP)"
            )
            row = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
            current = int(row[0]) if row else 0
            if current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"catalog {self.path} has schema version {current}, newer than this code "
                    f"({SCHEMA_VERSION}); upgrade vidcat or point VIDCAT_HOME at another data root"
                )
            for version, description, sql in SCHEMA_MIGRATIONS:
                if version <= current:
                    continue
                con.execute("BEGIN TRANSACTION")
                try:
                    con.execute(sql)
                    con.execute("INSERT INTO schema_version VALUES (?, ?, now())", [version, description])
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
                current = version
        return current

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.connect(write=False) as con:
            return con.execute(sql, params or []).fetchall()

    def query_df(self, sql: str, params: Sequence[Any] | None = None):  # -> pandas.DataFrame
        with self.connect(write=False) as con:
            return con.execute(sql, params or []).df()

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        with self.transaction() as con:
            con.execute(sql, params or [])

    def table_counts(self) -> dict[str, int]:
        with self.connect(write=False) as con:
            tables = [
                r[0]
                for r in con.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'main' AND table_type = 'BASE TABLE' ORDER BY table_name"
                ).fetchall()
            ]
            return {t: int(con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in tables}


SANDBOX_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}


@dataclass
class LockWaits:
    """Time spent waiting for the catalog lock, by the writes and reads of some span of work."""

    writes: int = 0
    reads: int = 0
    total_s: float = 0.0
    max_write_s: float = 0.0
    max_read_s: float = 0.0


_COLLECTORS: list[LockWaits] = []


def _record_wait(seconds: float, write: bool) -> None:
    for c in _COLLECTORS:
        c.total_s += seconds
        if write:
            c.writes += 1
            c.max_write_s = max(c.max_write_s, seconds)
        else:
            c.reads += 1
            c.max_read_s = max(c.max_read_s, seconds)


@contextlib.contextmanager
def lock_waits() -> Iterator[LockWaits]:
    """Collect this process's waits for the catalog lock while the block runs (a step's metadata
    reports them: how long others, a reader included, held up its writes)."""
    waits = LockWaits()
    _COLLECTORS.append(waits)
    try:
        yield waits
    finally:
        _COLLECTORS.remove(waits)


def clone_file(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst``: a block-sharing clone where the file system has them, else a full copy."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        try:
            fcntl.ioctl(fout.fileno(), FICLONE, fin.fileno())
            return
        except OSError:
            pass  # ext4, tmpfs, overlay: no clones
    shutil.copyfile(src, dst)  # sendfile on Linux: no round trip through Python


FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)


def snapshot_prefix(pid: int | None = None) -> str:
    """Names a snapshot after its host and process, so another machine's live snapshot is never taken for stale."""
    return f"{socket.gethostname()}-{pid or os.getpid()}-"


def remove_stale_snapshots(folder: Path) -> None:
    """Snapshots left by `vidcat sql` processes of this host that were killed (their pid is gone)."""
    host = socket.gethostname() + "-"
    if not Path("/proc").is_dir() or not folder.is_dir():
        return
    for entry in folder.iterdir():
        if not entry.name.startswith(host):
            continue
        pid = entry.name[len(host) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(entry, ignore_errors=True)


def _open_with_retry(path: Path, read_only: bool, config: dict | None = None) -> duckdb.DuckDBPyConnection:
    """Our own processes queue on the file lock; this covers foreign holders of the DuckDB file."""
    deadline = time.monotonic() + LOCK_RETRY_S
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=dict(config or {}))
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                if "lock" in str(exc).lower():
                    raise CatalogLockedError(
                        f"catalog {path} stayed locked by another process for {LOCK_RETRY_S:.0f}s "
                        f"({exc}); close other DuckDB sessions on this file and retry"
                    ) from exc
                raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 1.0)


def open_catalog(path: Path) -> Catalog:
    """The catalog at ``path`` with its schema in place."""
    catalog = Catalog(Path(path))
    catalog.ensure_schema()
    return catalog


def insert_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    replace: bool = False,
) -> int:
    """Bulk insert through a DataFrame (one vectorized statement, not one per row); empty is a no-op.

    ``replace`` overwrites rows with the same primary key (INSERT OR REPLACE).
    """
    if not rows:
        return 0
    import pandas as pd

    frame = pd.DataFrame.from_records(list(rows), columns=list(columns))  # noqa: F841 - read by DuckDB below
    cols = ", ".join(f'"{c}"' for c in columns)
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    # DuckDB's replacement scan reads the local DataFrame `frame` by name: one vectorized statement.
    con.execute(f'{verb} INTO "{table}" ({cols}) SELECT {cols} FROM frame')
    return len(rows)


def delete_where_in(
    con: duckdb.DuckDBPyConnection,
    table: str,
    column: str,
    values: Sequence[str],
    extra_sql: str = "",
    extra_params: Sequence[Any] = (),
) -> None:
    """DELETE rows whose ``column`` is in ``values`` (the idempotent half of replace-by-key)."""
    if not values:
        return
    con.execute(
        f'DELETE FROM "{table}" WHERE "{column}" IN (SELECT unnest(?::VARCHAR[])) {extra_sql}',
        [list(values), *extra_params],
    )
