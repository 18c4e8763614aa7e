"""`video_registry` and `video_probe` through `dagster.materialize` on a generated batch with bad files."""

from __future__ import annotations

import dagster as dg

from assets.catalog.video_probe import video_probe
from assets.catalog.video_registry import video_registry
from assets.core.resources import VidcatResource
from ml.catalog.batching import create_batches
from ml.catalog.registration import register_rows


def test_probe_batch_records_facts_and_failures(settings, catalog, ws, video_factory):
    good = video_factory("good.mp4")
    webm = video_factory("good.webm", container=".webm", codec="libvpx-vp9")
    empty = settings.media_dir / "empty.mp4"
    empty.write_bytes(b"")
    rows = [
        (i, {"id": vid, "uri": str(p)})
        for i, (vid, p) in enumerate([("good", good), ("webm", webm), ("empty", empty)], start=1)
    ]
    register_rows(catalog, rows, settings.media_dir, settings.allowed_roots, ws, origin="test")
    (batch,) = create_batches(catalog, 10, "backfill")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("video_batches", [batch.batch_id])
    resources = {"vidcat": VidcatResource()}

    assert dg.materialize([video_registry], instance=instance, resources=resources).success
    for _ in range(2):  # re-running the batch replaces its rows, never duplicates them
        result = dg.materialize(
            [video_registry, video_probe],
            selection=[video_probe],
            partition_key=batch.batch_id,
            instance=instance,
            resources=resources,
        )
        assert result.success
    (mat,) = result.asset_materializations_for_node("video_probe")
    assert mat.metadata["videos"].value == 3
    assert mat.metadata["probed"].value == 2
    assert mat.metadata["failures"].value == 1
    assert catalog.query("SELECT video_id, video_codec FROM video_probe ORDER BY 1") == [
        ("good", "h264"),
        ("webm", "vp9"),
    ]
    assert catalog.query("SELECT video_id, stage, error_class, batch_id FROM failures") == [
        ("empty", "probe", "EmptyFile", batch.batch_id)
    ]
    # The file is fixed and re-probed: its failure row goes away.
    empty.write_bytes(good.read_bytes() + b"\0")
    dg.materialize(
        [video_registry, video_probe],
        selection=[video_probe],
        partition_key=batch.batch_id,
        instance=instance,
        resources=resources,
    )
    assert catalog.scalar("SELECT count(*) FROM failures") == 0
    assert catalog.scalar("SELECT count(*) FROM video_probe") == 3
