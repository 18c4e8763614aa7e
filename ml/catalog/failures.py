"""Failure rows: every video that cannot pass a stage is recorded, with what to do about it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb

from ml.catalog.store import delete_where_in, insert_rows


@dataclass(frozen=True)
class Failure:
    video_id: str
    stage: str
    error_class: str
    message: str

    @classmethod
    def from_exception(cls, video_id: str, stage: str, exc: BaseException) -> Failure:
        return cls(video_id, stage, type(exc).__name__, str(exc)[:2000] or repr(exc))


def record_stage_outcome(
    con: duckdb.DuckDBPyConnection,
    stage: str,
    batch_id: str | None,
    succeeded: Iterable[str],
    failures: Iterable[Failure],
) -> None:
    """Within the caller's transaction: clear this stage's old failures of the batch's videos, add new ones."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    ok = list(succeeded)
    bad = list(failures)
    delete_where_in(con, "failures", "video_id", ok + [f.video_id for f in bad], "AND stage = ?", [stage])
    insert_rows(
        con,
        "failures",
        ["video_id", "stage", "batch_id", "error_class", "message", "failed_at"],
        [(f.video_id, stage, batch_id, f.error_class, f.message, now) for f in bad],
    )
