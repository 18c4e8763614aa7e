"""Catalog schema, versioning, atomic writes and cross-process locking."""

from __future__ import annotations

import multiprocessing as mp

import duckdb
import pytest

from ml.catalog.store import SCHEMA_VERSION, Catalog, insert_rows, open_catalog

TABLES = {
    "videos",
    "batches",
    "batch_members",
    "video_probe",
    "failures",
    "human_labels",
    "label_coverage",
    "model_registry",
    "text_predictions",
    "pseudo_labels",
    "visual_predictions",
    "thresholds",
    "predictions",
    "schema_version",
}


def test_schema_created_and_versioned(catalog):
    counts = catalog.table_counts()
    assert set(counts) >= TABLES
    assert catalog.scalar("SELECT max(version) FROM schema_version") == SCHEMA_VERSION
    # Applying again is a no-op, not a second migration.
    assert catalog.ensure_schema() == SCHEMA_VERSION
    assert catalog.scalar("SELECT count(*) FROM schema_version") == len({v for v in range(1, SCHEMA_VERSION + 1)})


def test_newer_schema_refused(catalog):
    catalog.execute("INSERT INTO schema_version VALUES (?, 'future', now())", [SCHEMA_VERSION + 1])
    with pytest.raises(RuntimeError, match="newer than this code"):
        catalog.ensure_schema()


def test_transaction_is_all_or_nothing(catalog):
    with pytest.raises(ZeroDivisionError), catalog.transaction() as con:
        insert_rows(
            con,
            "batches",
            ["batch_id", "created_at", "origin", "n_videos", "first_seq", "last_seq"],
            [("b1", "2026-01-01", "backfill", 1, 1, 1)],
        )
        raise ZeroDivisionError
    assert catalog.scalar("SELECT count(*) FROM batches") == 0


def test_insert_rows_replace_is_idempotent(catalog):
    cols = ["video_id", "category_id", "label_set", "is_positive", "annotator", "created_at"]
    row = ("v1", "533", "gold", True, "t", "2026-01-01")
    for _ in range(3):
        with catalog.transaction() as con:
            insert_rows(con, "human_labels", cols, [row], replace=True)
    assert catalog.scalar("SELECT count(*) FROM human_labels") == 1
    with catalog.transaction() as con:
        assert insert_rows(con, "human_labels", cols, []) == 0


def _writer(path: str, worker: int, n: int) -> None:
    catalog = Catalog(__import__("pathlib").Path(path))
    for i in range(n):
        with catalog.transaction() as con:
            con.execute("INSERT INTO failures VALUES (?, 'probe', NULL, 'E', 'm', now())", [f"w{worker}-{i}"])


def test_concurrent_writers_from_processes_serialize(settings):
    """Two processes writing at once: no lock error, no lost write (the catalog lock queues them)."""
    catalog = open_catalog(settings.catalog_path)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(catalog.path), w, 15)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert catalog.scalar("SELECT count(*) FROM failures") == 30


def test_foreign_lock_holder_gets_clear_error(settings, monkeypatch):
    import ml.catalog.store as mc

    catalog = open_catalog(settings.catalog_path)
    monkeypatch.setattr(mc, "LOCK_RETRY_S", 0.3)
    ctx = mp.get_context("spawn")
    started, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_file, args=(str(catalog.path), started, release))
    holder.start()
    try:
        assert started.wait(30)
        with pytest.raises(mc.CatalogLockedError, match="close other DuckDB sessions"), catalog.connect():
            pass
    finally:
        release.set()
        holder.join(30)


def _hold_file(path: str, started, release) -> None:
    con = duckdb.connect(path)  # a foreign process that ignores our lock file
    started.set()
    release.wait(30)
    con.close()
