"""`segment_predictions`: each video's scenes (start, end) and their categories, from the stored frame embeddings."""

import dagster as dg

from assets.core.metering import metered
from assets.core.partitions import batch_backfill_policy, batch_keys, video_batches
from assets.core.resources import VidcatResource
from ml.catalog.model_registry import latest_model
from ml.segments.stage import segment_batch


@dg.asset(
    partitions_def=video_batches,
    backfill_policy=batch_backfill_policy,
    deps=["frame_embeddings", "visual_predictions", "scene_thresholds"],
    group_name="segments",
    kinds={"onnx", "duckdb"},
)
@metered
def segment_predictions(context: dg.AssetExecutionContext, vidcat: VidcatResource) -> dg.MaterializeResult:
    """Scene boundaries from the batch's shard (no second decode), the student per scene, certified scene thresholds."""
    settings = vidcat.settings()
    catalog = vidcat.catalog()
    record = latest_model(catalog, "visual_model", required=False)
    if record is None:
        context.log.warning("no visual model yet (see the visual_model asset): no scene to score")
        return dg.MaterializeResult(metadata={"status": "no visual model yet", "videos": dg.MetadataValue.int(0)})
    videos = segmented = scenes = with_category = breaks = 0
    failures: list[str] = []
    thresholds_version = None
    for batch_id in batch_keys(context):
        r = segment_batch(catalog, settings, record, batch_id)
        videos += r.videos
        segmented += r.segmented
        scenes += r.scenes
        with_category += r.with_category
        breaks += r.breaks
        failures += [f"{f.video_id}: {f.error_class}: {f.message}"[:200] for f in r.failures]
        thresholds_version = r.thresholds_version
    for line in failures:
        context.log.warning(f"not segmented: {line}")
    if thresholds_version is None:
        context.log.warning(
            f"no scene thresholds certified for student {record.version}: scenes carry scores but no category "
            "(materialize scene_thresholds)"
        )
    return dg.MaterializeResult(
        metadata={
            "videos": dg.MetadataValue.int(videos),
            "segmented": dg.MetadataValue.int(segmented),
            "failed": dg.MetadataValue.int(len(failures)),
            "scenes": dg.MetadataValue.int(scenes),
            "mean_scenes_per_video": dg.MetadataValue.float(round(scenes / max(segmented, 1), 2)),
            "share_of_scenes_with_category": dg.MetadataValue.float(round(with_category / max(scenes, 1), 3)),
            "suggested_breaks": dg.MetadataValue.int(breaks),
            "model_version": record.version,
            "scene_thresholds_version": thresholds_version or "none certified: scenes carry scores, no category",
        }
    )
