"""Queries typed by people (`vidcat sql`): on a snapshot, with a time limit and a row cap.

A person's query may scan the whole catalog for a minute. On the catalog file itself it would hold
the DuckDB file (and our shared lock) all that time, and every run's writes, the upload sensor and
`vidcat status` would queue behind it. So the query runs on a private copy taken under the shared lock
(milliseconds for the demo's catalog; see ``Catalog.snapshot``), in a sandbox that opens no other
file, and is interrupted at its time limit. The rows it prints are capped, so a `SELECT *` over
millions of videos cannot flood a terminal or a pipe.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import duckdb

from ml.catalog.store import SANDBOX_CONFIG, Catalog
from ml.errors import UserFacingError


class QueryRefused(UserFacingError, PermissionError):
    """The query tried to write, or to read or write a file: not what a read-only query tool does."""


class QueryTimedOut(UserFacingError, TimeoutError):
    """The query ran past its time limit and was interrupted."""


class QueryFailed(UserFacingError, ValueError):
    """The query is not valid SQL for the catalog (a typo, an unknown column)."""


@dataclass
class QueryResult:
    header: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool  # more rows existed than the cap
    snapshot_s: float  # how long the copy held the shared lock (what writers may have waited)
    query_s: float


def run_query(catalog: Catalog, sql: str, timeout_s: float, max_rows: int) -> QueryResult:
    """Run one read-only query on a snapshot of the catalog; stop it after ``timeout_s``, keep ``max_rows``."""
    started = time.monotonic()
    with catalog.snapshot() as copy:
        snapshot_s = time.monotonic() - started
        # Half the cores at most: a person's query must not starve the runs of the machine it shares.
        threads = max(1, (os.cpu_count() or 2) // 2)
        con = duckdb.connect(str(copy), read_only=True, config={**SANDBOX_CONFIG, "threads": threads})
        timer = threading.Timer(timeout_s, con.interrupt)
        timer.daemon = True
        began = time.monotonic()
        timer.start()
        try:
            cur = con.execute(sql)
            header = [d[0] for d in cur.description or []]
            rows = cur.fetchmany(max_rows + 1)
        except duckdb.InterruptException as exc:
            raise QueryTimedOut(f"stopped after {timeout_s:g} s") from exc
        except duckdb.PermissionException as exc:
            raise QueryRefused(str(exc)) from exc
        except duckdb.Error as exc:
            if "read-only" in str(exc).lower() or "read only" in str(exc).lower():
                raise QueryRefused(str(exc)) from exc
            raise QueryFailed(str(exc)) from exc
        finally:
            timer.cancel()
            con.close()
    return QueryResult(header, rows[:max_rows], len(rows) > max_rows, snapshot_s, time.monotonic() - began)
