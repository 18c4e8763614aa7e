"""The upload sensor through Dagster's sensor context: partitions, run requests, cursor."""

from __future__ import annotations

import json

import dagster as dg

from assets.core.resources import VidcatResource
from ml.catalog.model_registry import register_model
from orchestration.definitions import defs
from tests.conftest import make_video, registry_rows


def _trained(catalog, settings):
    """The sensor scores with current models; here only their registry row matters."""
    register_model(catalog, "fusion", "v-test", settings.models_dir / "fusion" / "v-test.json", ["533"])


def _tick(instance, cursor=None, batch_size=4):
    sensor = defs.resolve_sensor_def("upload_sensor")
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"vidcat": VidcatResource(batch_size=batch_size)}
    ) as ctx:
        return sensor(ctx)


def test_uploads_wait_until_models_exist(settings, catalog):
    instance = dg.DagsterInstance.ephemeral()
    registry_rows(catalog, 9)
    result = _tick(instance)
    assert not result.run_requests and "no trained models yet" in result.skip_reason.skip_message
    assert catalog.scalar("SELECT count(*) FROM batches") == 0


def test_new_videos_become_partitions_and_runs_once(settings, catalog):
    instance = dg.DagsterInstance.ephemeral()
    _trained(catalog, settings)
    registry_rows(catalog, 9)
    result = _tick(instance)
    assert [r.partition_key for r in result.run_requests] == ["b00000001", "b00000002"]
    assert [r.run_key for r in result.run_requests] == ["b00000001", "b00000002"]
    (add,) = result.dynamic_partitions_requests
    assert add.partitions_def_name == "video_batches" and list(add.partition_keys) == ["b00000001", "b00000002"]
    assert result.cursor == "2"
    # The 9th video waits (batch not full, not old); a second tick with the cursor requests nothing new.
    again = _tick(instance, cursor=result.cursor)
    assert not again.run_requests and again.cursor == "2"
    assert "1 video(s) pending" in again.skip_reason.skip_message


def test_old_pending_video_closes_a_partial_batch(settings, catalog):
    instance = dg.DagsterInstance.ephemeral()
    _trained(catalog, settings)
    registry_rows(catalog, 1, age_s=3600)
    result = _tick(instance)
    assert [r.partition_key for r in result.run_requests] == ["b00000001"]


def test_inbox_drop_is_registered_and_batched_by_the_sensor(settings, catalog):
    instance = dg.DagsterInstance.ephemeral()
    _trained(catalog, settings)
    make_video(settings.inbox_dir / "clip.mp4")
    (settings.inbox_dir / "clip.json").write_text(json.dumps({"id": "clip", "title": "My dog"}))
    registry_rows(catalog, 3, start=10)
    result = _tick(instance)
    assert [r.partition_key for r in result.run_requests] == ["b00000001"]
    assert catalog.query("SELECT video_id FROM batch_members WHERE batch_id = 'b00000001' ORDER BY seq")[-1] == (
        "clip",
    )
