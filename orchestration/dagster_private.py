"""Every name vidcat takes from Dagster's private modules (``dagster._...``), and nowhere else.

Dagster has no public API for what `vidcat backfill` and its crash recovery do: store an asset backfill
over chosen partitions (the object the UI's Materialize button creates), read and change a backfill's
status, and read the tags Dagster writes on runs (partition, partition range, automatic retry, the code
server that launched it). Private modules move without notice between releases, so they are imported
here only: ``tests/orchestration/test_dagster_private.py`` checks each name after an upgrade and fails
naming the one that moved, and ``tests/test_layout.py`` refuses a ``dagster._`` import anywhere else.
Public names (``dg.RunsFilter``, ``dg.DagsterRunStatus``, ``dg.partition_loading_context``) are used
from ``dagster`` directly.
"""

from __future__ import annotations

from dagster._core.definitions.selector import (
    PartitionRangeSelector,
    PartitionsByAssetSelector,
    PartitionsSelector,
)
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    GRPC_INFO_TAG,
    PARTITION_NAME_TAG,
    WILL_RETRY_TAG,
)
from dagster._core.utils import make_new_backfill_id

__all__ = [
    "ASSET_PARTITION_RANGE_END_TAG",
    "ASSET_PARTITION_RANGE_START_TAG",
    "GRPC_INFO_TAG",
    "PARTITION_NAME_TAG",
    "WILL_RETRY_TAG",
    "BulkActionStatus",
    "PartitionBackfill",
    "PartitionRangeSelector",
    "PartitionsByAssetSelector",
    "PartitionsSelector",
    "SqliteRunStorage",
    "make_new_backfill_id",
]
