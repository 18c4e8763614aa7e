"""The private Dagster names vidcat relies on still mean what `orchestration/backfill.py` expects.

Each assertion names the Dagster name it checks, so that after an upgrade the failure says which one
moved or changed (the fix then lives in `orchestration/dagster_private.py` alone).
"""

from __future__ import annotations

import importlib
import inspect

import pytest

# Where each name lived when this was written (Dagster 1.13): the first place to look after an upgrade.
PRIVATE_SOURCES = {
    "PartitionRangeSelector": "dagster._core.definitions.selector",
    "PartitionsByAssetSelector": "dagster._core.definitions.selector",
    "PartitionsSelector": "dagster._core.definitions.selector",
    "BulkActionStatus": "dagster._core.execution.backfill",
    "PartitionBackfill": "dagster._core.execution.backfill",
    "SqliteRunStorage": "dagster._core.storage.runs",
    "ASSET_PARTITION_RANGE_END_TAG": "dagster._core.storage.tags",
    "ASSET_PARTITION_RANGE_START_TAG": "dagster._core.storage.tags",
    "GRPC_INFO_TAG": "dagster._core.storage.tags",
    "PARTITION_NAME_TAG": "dagster._core.storage.tags",
    "WILL_RETRY_TAG": "dagster._core.storage.tags",
    "make_new_backfill_id": "dagster._core.utils",
}


@pytest.mark.parametrize("name", sorted(PRIVATE_SOURCES))
def test_each_private_name_is_still_where_it_was(name):
    module = importlib.import_module(PRIVATE_SOURCES[name])
    assert hasattr(module, name), f"Dagster moved {name} out of {PRIVATE_SOURCES[name]}: update dagster_private.py"


def test_the_isolating_module_exports_every_name():
    from orchestration import dagster_private

    assert set(dagster_private.__all__) == set(PRIVATE_SOURCES)


def test_run_tags_keep_the_values_runs_are_written_with():
    """Runs already stored carry these strings: a renamed tag would hide their batches from recovery."""
    from orchestration import dagster_private as p

    assert p.PARTITION_NAME_TAG == "dagster/partition"
    assert p.ASSET_PARTITION_RANGE_START_TAG == "dagster/asset_partition_range_start"
    assert p.ASSET_PARTITION_RANGE_END_TAG == "dagster/asset_partition_range_end"
    assert p.WILL_RETRY_TAG == "dagster/will_retry"
    # Written by the default run launcher when a code server starts the run (what the daemon launches).
    assert p.GRPC_INFO_TAG == ".dagster/grpc_info"


def test_backfill_statuses_vidcat_reads_and_writes_exist():
    from orchestration.dagster_private import BulkActionStatus

    for status in ("REQUESTED", "CANCELING", "CANCELED", "COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED"):
        assert hasattr(BulkActionStatus, status), f"BulkActionStatus.{status} is gone"


def test_backfill_constructor_takes_the_arguments_vidcat_passes():
    import dagster as dg

    from orchestration.dagster_private import (
        PartitionBackfill,
        PartitionRangeSelector,
        PartitionsByAssetSelector,
        PartitionsSelector,
    )

    params = inspect.signature(PartitionBackfill.from_partitions_by_assets).parameters
    for arg in (
        "backfill_id",
        "asset_graph",
        "backfill_timestamp",
        "tags",
        "dynamic_partitions_store",
        "partitions_by_assets",
        "title",
        "description",
        "run_config",
    ):
        assert arg in params, f"PartitionBackfill.from_partitions_by_assets lost its `{arg}` argument"
    # The selectors are records (no inspectable signature): build one as `launch_backfill` does.
    ranges = [PartitionRangeSelector(start="b00000001", end="b00000001")]
    selector = PartitionsByAssetSelector(
        asset_key=dg.AssetKey("video_probe"), partitions=PartitionsSelector(ranges=ranges)
    )
    assert selector.partitions.ranges[0].start == "b00000001"


def test_new_backfill_ids_are_short_lowercase_words():
    from orchestration.dagster_private import make_new_backfill_id

    backfill_id = make_new_backfill_id()
    assert isinstance(backfill_id, str) and backfill_id.isalpha() and backfill_id.islower()


def test_a_local_instance_keeps_its_runs_in_sqlite(settings):
    """`daemon_running` decides from this that only processes of this machine can serve the instance."""
    from orchestration.backfill import get_instance
    from orchestration.dagster_private import SqliteRunStorage

    assert isinstance(get_instance(settings).run_storage, SqliteRunStorage)
