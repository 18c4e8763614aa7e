"""The catalog rows each data check validates, read here so that the checks hold no SQL of their own.

The suites in `data_checks/` are pure functions of a DataFrame; the asset checks only choose which
batches to validate. What "the rows of a batch" means (members, probe rows, failures, predictions of
one fusion version) is a question about the catalog's tables, answered next to their schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ml.catalog.store import IN_LIST, Catalog

# A list parameter bound once: `WHERE x IN (...)` over any number of batches without building SQL per call.


def count_videos(catalog: Catalog) -> int:
    return int(catalog.scalar("SELECT count(*) FROM videos") or 0)


def newest_videos(catalog: Catalog, limit: int) -> Any:  # -> pandas.DataFrame
    """The newest ``limit`` registry rows by registration order, titles measured in SQL, never loaded."""
    return catalog.query_df(
        "SELECT video_id, seq, uri, language, registered_at, length(title) AS title_len "
        "FROM videos ORDER BY seq DESC LIMIT ?",
        [limit],
    )


def probe_rows(catalog: Catalog, batch_ids: Sequence[str]) -> Any:  # -> pandas.DataFrame
    """The probe rows of the batches' members, whatever batch each row names.

    Chosen by membership, not by the row's own ``batch_id``: selecting on that column would make the
    probe suite's "rows of another batch" expectation true by construction, and a member whose row
    was written under another batch would read as a member never probed.
    """
    return catalog.query_df(
        f"SELECT p.* FROM video_probe p JOIN batch_members m USING (video_id) WHERE m.batch_id {IN_LIST} "
        "ORDER BY p.video_id",
        [list(batch_ids)],
    )


def member_count(catalog: Catalog, batch_ids: Sequence[str]) -> int:
    return int(catalog.scalar(f"SELECT count(*) FROM batch_members WHERE batch_id {IN_LIST}", [list(batch_ids)]) or 0)


def probed_count(catalog: Catalog, batch_ids: Sequence[str]) -> int:
    """Members of the batches the probe could read: each should reach the frame step's shard.

    Counted by membership, as ``probe_rows`` reads them: a member whose probe row names another batch
    was still probed, and its shard is the batch it belongs to.
    """
    return _members_with(catalog, batch_ids, "count(*) FROM video_probe p")


def result_count(catalog: Catalog, batch_ids: Sequence[str], model_version: str) -> int:
    """Members of the batches with a fusion result (classified or failed) under ``model_version``."""
    return _members_with(
        catalog, batch_ids, "count(DISTINCT r.video_id) FROM video_results r", "r.model_version = ?", [model_version]
    )


def failure_count(catalog: Catalog, batch_ids: Sequence[str], stage: str) -> int:
    """Members of the batches with a ``stage`` failure on record (they are expected to have no row there)."""
    return _members_with(catalog, batch_ids, "count(*) FROM failures f", "f.stage = ?", [stage])


def _members_with(
    catalog: Catalog, batch_ids: Sequence[str], count_from: str, where: str = "", params: Sequence[Any] = ()
) -> int:
    """``SELECT <count_from>`` joined to the batches' members (``m``), under ``where`` and its parameters."""
    condition = f"{where} AND " if where else ""
    sql = f"SELECT {count_from} JOIN batch_members m USING (video_id) WHERE {condition}m.batch_id {IN_LIST}"
    return int(catalog.scalar(sql, [*params, list(batch_ids)]) or 0)


def prediction_rows(catalog: Catalog, batch_ids: Sequence[str], model_version: str) -> Any:  # -> DataFrame
    return catalog.query_df(
        f"SELECT * FROM predictions WHERE batch_id {IN_LIST} AND model_version = ?",
        [list(batch_ids), model_version],
    )


def threshold_rows(catalog: Catalog, versions: Sequence[str]) -> Any:  # -> pandas.DataFrame
    """The thresholds the predictions claim to follow, from the table rather than the rows' own copies."""
    return catalog.query_df(f"SELECT * FROM thresholds WHERE version {IN_LIST}", [list(versions)])
