"""`vidcat backfill`: batching, partitions and the stored asset backfill, without running it."""

from __future__ import annotations

from orchestration.backfill import get_instance, launch_backfill
from tests.conftest import registry_rows


def test_backfill_batches_adds_partitions_and_stores_one_backfill(settings, catalog):
    registry_rows(catalog, 10)
    launch = launch_backfill(settings, catalog)
    assert launch.partitions == ["b00000001", "b00000002", "b00000003"]
    instance = get_instance(settings)
    assert instance.get_dynamic_partitions("video_batches") == launch.partitions
    backfill = instance.get_backfill(launch.backfill_id)
    assert backfill.is_asset_backfill
    assert {k.to_user_string() for k in backfill.asset_selection} == set(launch.assets)
    assert "video_probe" in launch.assets and "video_registry" not in launch.assets

    # Idempotent: nothing new to batch, no second backfill.
    again = launch_backfill(settings, catalog)
    assert again.backfill_id is None and again.new_batches == []
    assert len(instance.get_backfills()) == 1

    # New uploads get their own batch; --rescore covers every batch; --train adds the unpartitioned
    # assets and covers every batch too (new models learn from, and re-score, the whole catalog).
    registry_rows(catalog, 2, start=11)
    new = launch_backfill(settings, catalog)
    assert new.partitions == ["b00000004"] and "video_registry" not in new.assets
    everything = ["b00000001", "b00000002", "b00000003", "b00000004"]
    retrain = launch_backfill(settings, catalog, train=True)
    assert retrain.partitions == everything and "video_registry" in retrain.assets and not retrain.new_batches
    rescore = launch_backfill(settings, catalog, rescore=True)
    assert rescore.partitions == everything
    assert instance.get_backfill(rescore.backfill_id).status.value == "REQUESTED"


def test_batches_of_a_failed_launch_are_picked_up_by_the_next(settings, catalog):
    from ml.catalog.batching import create_batches

    registry_rows(catalog, 5)
    create_batches(catalog, 4, "backfill")  # committed, then the launch died before the backfill was stored
    launch = launch_backfill(settings, catalog)
    assert launch.new_batches == [] and launch.partitions == ["b00000001", "b00000002"]
