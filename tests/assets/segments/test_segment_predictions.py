"""`scene_thresholds` and `segment_predictions` through `dagster.materialize` on the session's trained catalog."""

from __future__ import annotations

import dagster as dg
import pytest

from tests.pipeline import patched_env

pytestmark = pytest.mark.slow


def _catalog(pipeline):
    from ml.catalog.store import Catalog

    return Catalog(pipeline.data_root / "catalog.duckdb")


def test_every_batch_is_segmented_checked_and_described(pipeline):
    from ml.catalog.model_registry import latest_model
    from ml.catalog.segments import current_segments

    c = _catalog(pipeline)
    (thr,) = pipeline.results[("scene_thresholds", None)].asset_materializations_for_node("scene_thresholds")
    assert thr.metadata["gold_videos"].value > 0 and thr.metadata["gold_scenes"].value > 0
    student = latest_model(c, "visual_model").version
    assert thr.metadata["visual_model_version"].value == student
    with_frames = {r[0] for r in c.query("SELECT video_id FROM visual_predictions WHERE n_frames > 0")}
    for batch in pipeline.batches:
        run = pipeline.results[("fused_predictions", batch)]
        (mat,) = run.asset_materializations_for_node("segment_predictions")
        meta = {k: v.value for k, v in mat.metadata.items()}
        assert meta["segmented"] == meta["videos"] and meta["failed"] == 0
        if meta["videos"]:  # (a batch of only unplayable uploads has no frames to cut)
            assert meta["mean_scenes_per_video"] >= 1.0 and 0.0 <= meta["share_of_scenes_with_category"] <= 1.0
        assert meta["cpu_s"] >= 0 and meta["model_version"] == student
        (check,) = [e for e in run.get_asset_check_evaluations() if e.check_name == "scene_tiling_expectations"]
        assert check.passed
    scenes = current_segments(c, sorted(with_frames))
    assert set(scenes) == with_frames  # every video with frames has scenes; the rest are in failures already
    assert all(s[0]["start_s"] == 0.0 for s in scenes.values())


def test_the_tiling_check_fails_on_a_broken_tiling_and_a_rerun_repairs_it(pipeline):
    from assets.core.partitions import video_batches
    from assets.segments.segments_checks import scene_tiling_expectations

    c = _catalog(pipeline)
    batch = pipeline.batches[0]
    (vid,) = c.query(
        "SELECT video_id FROM segment_predictions WHERE batch_id = ? GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
        [batch],
    )[0]
    before = c.query("SELECT count(*), sum(end_s) FROM segment_predictions WHERE batch_id = ?", [batch])
    c.execute("UPDATE segment_predictions SET start_s = start_s + 0.5 WHERE video_id = ?", [vid])  # a gap at 0
    with patched_env(pipeline.env):
        # The check alone on that batch, as the UI's "execute check" runs it (a run of no asset, so the
        # partition goes in as the run's tag: Dagster validates `partition_key` against assets only).
        job = dg.define_asset_job(
            "tiling_check", selection=dg.AssetSelection.checks(scene_tiling_expectations), partitions_def=video_batches
        )
        defs = dg.Definitions(
            assets=_assets(), asset_checks=[scene_tiling_expectations], jobs=[job], resources=_resources()
        )
        broken = defs.resolve_job_def("tiling_check").execute_in_process(
            tags={"dagster/partition": batch}, instance=dg.DagsterInstance.get(), raise_on_error=False
        )
        (evaluation,) = broken.get_asset_check_evaluations()
        assert not evaluation.passed
        assert "starts_where_previous_ends" in evaluation.metadata["summary"].value
        repaired = dg.materialize(
            [*_assets(), scene_tiling_expectations],
            selection=[dg.AssetKey("segment_predictions")],
            partition_key=batch,
            instance=dg.DagsterInstance.get(),
            resources=_resources(),
        )
    assert repaired.success
    assert all(e.passed for e in repaired.get_asset_check_evaluations())
    assert c.query("SELECT count(*), sum(end_s) FROM segment_predictions WHERE batch_id = ?", [batch]) == before


def _assets():
    from orchestration.definitions import all_assets

    return list(all_assets)


def _resources():
    from assets.core.resources import VidcatResource

    return {"vidcat": VidcatResource()}
