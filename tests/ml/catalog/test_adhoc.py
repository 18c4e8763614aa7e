"""`vidcat sql` next to writers: a long query holds up nobody, stops at its time limit, prints capped rows."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ml.catalog.adhoc import QueryTimedOut, run_query
from ml.catalog.store import lock_waits, snapshot_prefix
from tests.conftest import registry_rows

VIDCAT = str(Path(sys.executable).with_name("vidcat"))
# Runs until interrupted: far more rows than a few seconds can sum.
ENDLESS = "SELECT sum(i) FROM range(1000000000000) t(i)"


def test_time_limit_and_row_cap(catalog):
    registry_rows(catalog, 5)
    result = run_query(catalog, "SELECT video_id FROM videos ORDER BY seq", timeout_s=5, max_rows=3)
    assert [r[0] for r in result.rows] == ["v1", "v2", "v3"] and result.truncated
    started = time.monotonic()
    with pytest.raises(QueryTimedOut, match=r"stopped after 0\.5 s"):
        run_query(catalog, ENDLESS, timeout_s=0.5, max_rows=10)
    assert time.monotonic() - started < 3.0
    assert not any((catalog.path.parent / ".snapshots").iterdir())  # the snapshot went with the query


def test_a_long_query_holds_up_no_writer_and_no_reader(settings, catalog):
    """The query runs on a snapshot: writes and `vidcat status` go on while it runs (before: they queued
    behind it for its whole length)."""
    registry_rows(catalog, 3)
    env = dict(os.environ)
    query = subprocess.Popen(
        [VIDCAT, "sql", "--timeout", "12", ENDLESS],
        cwd=settings.data_root.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    snapshots = settings.data_root / ".snapshots"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (snapshots.is_dir() and any(snapshots.iterdir())):
        time.sleep(0.05)
    assert snapshots.is_dir() and any(snapshots.iterdir()), query.communicate()
    time.sleep(0.5)  # well into the query
    with lock_waits() as waits:
        for i in range(10):
            registry_rows(catalog, 1, start=100 + i)
            time.sleep(0.1)
    assert waits.writes == 10 and waits.max_write_s < 1.0, waits
    status = subprocess.run(
        [VIDCAT, "status", "--json"], cwd=settings.data_root.parent, env=env, capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0 and json.loads(status.stdout)["videos"] == 13
    assert query.poll() is None, "the query should still be running"
    _, err = query.communicate(timeout=60)
    assert query.returncode == 2 and "stopped after 12 s" in err


def test_reading_commands_take_no_writer_lock(catalog):
    """A catalog at the current schema is opened for reading only: a reader's shared lock does not hold it up."""
    other = open(catalog.lock_path, "a+")  # noqa: SIM115 - held across the thread below
    fcntl.flock(other, fcntl.LOCK_SH)  # as a long reader would
    try:
        done = threading.Event()
        threading.Thread(target=lambda: (catalog.ensure_schema(), done.set()), daemon=True).start()
        assert done.wait(10), "ensure_schema waited for the writer's lock"
        assert catalog.scalar("SELECT count(*) FROM videos") == 0
    finally:
        fcntl.flock(other, fcntl.LOCK_UN)
        other.close()


def test_snapshots_of_killed_queries_are_removed(catalog):
    folder = catalog.path.parent / ".snapshots"
    folder.mkdir(exist_ok=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = folder / f"{snapshot_prefix(int(dead.stdout))}abc"
    stale.mkdir()
    (stale / "catalog.duckdb").write_bytes(b"x")
    foreign = folder / "another-host-1-abc"
    foreign.mkdir()
    with catalog.snapshot() as copy:
        assert copy.exists() and not stale.exists()
    assert foreign.exists()  # another machine's snapshot of a shared data root is not ours to judge


def test_sql_command_caps_rows(capsys, settings, catalog):
    from orchestration.cli import main

    registry_rows(catalog, 4)
    assert main(["sql", "--max-rows", "2", "--json", "SELECT video_id FROM videos ORDER BY seq"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == [{"video_id": "v1"}, {"video_id": "v2"}]
    assert "only the first 2 rows" in captured.err
