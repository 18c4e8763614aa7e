"""Registry and probe asset checks through `dagster.materialize`: pass, warn, and block downstream.

A tiny downstream asset stands in for the later stages: when a blocking check fails with ERROR it
must not run for that batch; a WARN result must let it run.
"""

from __future__ import annotations

import dataclasses

import dagster as dg
import pytest

import ml.frames.stage as video_probe_module
from assets.catalog.probe_checks import probe_expectations
from assets.catalog.registry_checks import registry_expectations
from assets.catalog.video_probe import video_probe
from assets.catalog.video_registry import video_registry
from assets.core.partitions import batch_backfill_policy, video_batches
from assets.core.resources import VidcatResource
from ml.catalog.batching import create_batches
from ml.catalog.registration import register_rows


@dg.asset(partitions_def=video_batches, deps=[video_probe], backfill_policy=batch_backfill_policy)
def after_probe() -> None:
    """Stands in for frame_embeddings: runs only if the probe check lets it."""


@dg.asset(deps=[video_registry])
def after_registry() -> None:
    """Stands in for anything unpartitioned that reads the registry."""


@pytest.fixture
def batch(settings, catalog, ws, video_factory):
    """Three registered, batched videos and an instance that knows the batch partition."""
    rows = [(i, {"id": f"v{i}", "uri": str(video_factory(f"v{i}.mp4", duration_s=1.0))}) for i in range(1, 4)]
    register_rows(catalog, rows, settings.media_dir, settings.allowed_roots, ws, origin="test")
    (b,) = create_batches(catalog, 10, "backfill")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("video_batches", [b.batch_id])
    return b.batch_id, instance


def run_probe(batch_id, instance, tags=None):
    return dg.materialize(
        [video_registry, video_probe, probe_expectations, after_probe],
        selection=dg.AssetSelection.assets(video_probe, after_probe),
        partition_key=batch_id,
        instance=instance,
        resources={"vidcat": VidcatResource()},
        raise_on_error=False,
        tags=tags,
    )


def materialized(result, node: str) -> bool:
    return bool(result.asset_materializations_for_node(node))


def test_clean_batch_passes_and_downstream_runs(batch):
    batch_id, instance = batch
    result = run_probe(batch_id, instance)
    assert result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed and evaluation.partition == batch_id
    assert evaluation.metadata["rows"].value == 3 and evaluation.metadata["members"].value == 3
    assert materialized(result, "after_probe")


def test_implausible_duration_warns_and_does_not_block(batch, monkeypatch):
    batch_id, instance = batch
    real = video_probe_module.probe_many

    def negative_duration(videos, **kw):
        ok, failed = real(videos, **kw)
        ok[0] = (ok[0][0], dataclasses.replace(ok[0][1], duration_s=-3.0))
        return ok, failed

    monkeypatch.setattr(video_probe_module, "probe_many", negative_duration)
    result = run_probe(batch_id, instance)
    assert result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    (failed,) = evaluation.metadata["failed_expectations"].value
    assert (failed["kwargs"]["column"], failed["severity"]) == ("duration_s", "warning")
    assert [r["video_id"] for r in evaluation.metadata["failing_rows"].value] == ["v1"]
    assert materialized(result, "after_probe")


def test_structural_defect_blocks_the_batch_downstream(batch, monkeypatch):
    batch_id, instance = batch
    real = video_probe_module.probe_many

    def zero_width(videos, **kw):
        ok, failed = real(videos, **kw)
        ok[1] = (ok[1][0], dataclasses.replace(ok[1][1], width=0))
        return ok, failed

    monkeypatch.setattr(video_probe_module, "probe_many", zero_width)
    result = run_probe(batch_id, instance)
    assert not result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.partition == batch_id
    assert "width" in evaluation.metadata["summary"].value
    assert [r["video_id"] for r in evaluation.metadata["failing_rows"].value] == ["v2"]
    assert materialized(result, "video_probe")  # the asset itself is written; what follows is held back
    assert not materialized(result, "after_probe")
    assert "after_probe" not in {e.step_key for e in result.get_step_success_events()}


def test_registry_check_blocks_on_a_uri_outside_the_roots(batch, catalog):
    _, instance = batch
    resources = {"vidcat": VidcatResource()}
    nodes = [video_registry, registry_expectations, after_registry]
    result = dg.materialize(nodes, instance=instance, resources=resources, raise_on_error=False)
    assert result.success and result.get_asset_check_evaluations()[0].passed
    assert materialized(result, "after_registry")

    catalog.execute(
        "INSERT INTO videos (video_id, seq, uri, registered_at, origin) "
        "SELECT 'planted', max(seq) + 1, '/etc/passwd', now(), 'test' FROM videos"
    )
    result = dg.materialize(nodes, instance=instance, resources=resources, raise_on_error=False)
    assert not result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert [r["video_id"] for r in evaluation.metadata["failing_rows"].value] == ["planted"]
    assert not materialized(result, "after_registry")


def test_a_run_packing_several_batches_checks_them_together(settings, catalog, ws, video_factory):
    """Backfills pack up to four batches per run (a partition range): one result covers all of them."""
    from orchestration.dagster_private import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    rows = [(i, {"id": f"v{i}", "uri": str(video_factory(f"v{i}.mp4", duration_s=1.0))}) for i in range(1, 5)]
    register_rows(catalog, rows, settings.media_dir, settings.allowed_roots, ws, origin="test")
    first, second = (b.batch_id for b in create_batches(catalog, 2, "backfill"))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("video_batches", [first, second])
    tags = {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: second}
    result = run_probe(None, instance, tags=tags)
    assert result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed and evaluation.partition is None  # a range has no single partition to record
    assert evaluation.metadata["batches"].value == f"{first},{second}"
    assert evaluation.metadata["members"].value == 4
    assert {m.partition for m in result.asset_materializations_for_node("after_probe")} == {first, second}


def test_checks_are_loaded_and_run_with_the_batch_job():
    from orchestration.definitions import all_checks, defs

    keys = {key for c in all_checks for key in c.check_keys}
    assert dg.AssetCheckKey(dg.AssetKey("video_probe"), "probe_expectations") in keys
    assert dg.AssetCheckKey(dg.AssetKey("video_registry"), "registry_expectations") in keys
    job = defs.resolve_job_def("score_batch")
    assert "video_probe_probe_expectations" in {n.name for n in job.nodes}
    assert job.backfill_policy == batch_backfill_policy  # the partitioned check does not change packing


def _stand_in(name: str, body):
    """An asset with the real asset's key (so the real check runs on it) that writes what ``body`` writes."""

    @dg.asset(name=name, partitions_def=video_batches)
    def stand_in(context):
        return body(context.partition_key)

    return stand_in


def _check_on_stand_in(name: str, body, check, batch_id: str, instance):
    """The real ``check`` evaluated on the batch after a stand-in for asset ``name`` wrote ``body``'s rows."""
    result = dg.materialize(
        [_stand_in(name, body), check],
        partition_key=batch_id,
        instance=instance,
        resources={"vidcat": VidcatResource()},
        raise_on_error=False,
    )
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def _expectation_names(evaluation) -> set[str]:
    return {f["expectation"] for f in evaluation.metadata["failed_expectations"].value}


def test_embedding_check_fails_on_a_missing_shard_or_a_dropped_video(batch, settings):
    """Every probed member must be in the batch's shard or have a frames failure; no shard at all fails."""
    import numpy as np

    from assets.frames.embeddings_checks import embedding_expectations
    from ml.frames.embedding_store import VideoEmbeddings, shard_path, write_shard
    from ml.frames.image_encoder import get_spec

    batch_id, instance = batch
    assert run_probe(batch_id, instance).success
    dim = get_spec(settings.image_encoder).dim
    path = shard_path(settings.embeddings_dir, settings.image_encoder, batch_id)

    def check(videos: list[str] | None):
        def write(b: str) -> None:
            if videos is None:
                return
            rng = np.random.default_rng(0)
            rows = []
            for v in videos:
                emb = rng.normal(size=(1, dim)).astype(np.float32)
                rows.append(VideoEmbeddings(v, np.zeros(1, np.float32), emb / np.linalg.norm(emb)))
            write_shard(path, rows, encoder=settings.image_encoder)

        return _check_on_stand_in("frame_embeddings", write, embedding_expectations, batch_id, instance)

    missing = check(None)
    assert not missing.passed and "no frame-embedding shard" in missing.description
    dropped = check(["v1", "v2"])
    assert not dropped.passed and "expect_table_row_count_to_equal" in _expectation_names(dropped)
    complete = check(["v1", "v2", "v3"])
    assert "expect_table_row_count_to_equal" not in _expectation_names(complete)
    assert complete.passed or complete.severity == dg.AssetCheckSeverity.WARN  # nothing blocking fails
    assert complete.metadata["probed"].value == 3


def test_prediction_check_reads_the_version_the_asset_wrote_and_every_member_needs_a_result(batch, catalog, settings):
    """The rows of the fusion version the asset recorded, not the newest model's (a --train may register a
    newer one while the batch runs); a member without a result under it fails the check instead of passing
    on zero rows; a materialization that records no version fails it too."""
    from assets.fusion.predictions_checks import prediction_expectations
    from ml.catalog.model_registry import register_model
    from tests.conftest import result_rows

    batch_id, instance = batch
    register_model(catalog, "fusion", "f-newer", settings.models_dir, [])  # newer than what the batch wrote

    def check(results_for: list[str], recorded: bool = True):
        def fuse(b: str) -> dg.MaterializeResult:
            result_rows(catalog, results_for, "f-written", b)
            return dg.MaterializeResult(metadata={"fusion_version": "f-written"} if recorded else {})

        return _check_on_stand_in("fused_predictions", fuse, prediction_expectations, batch_id, instance)

    short = check(["v1", "v2"])
    assert not short.passed and "2 of 3 videos have a result under f-written" in short.description
    done = check(["v3"])  # no category for any video: no rows, every member has its result
    assert done.passed and done.metadata["fusion_versions"].value == "f-written"
    unrecorded = check([], recorded=False)
    assert not unrecorded.passed and "records a fusion_version" in unrecorded.description
