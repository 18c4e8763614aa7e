"""`visual_predictions`: the student's probability per category for every video with frames."""

import dagster as dg

from assets.core.metering import metered
from assets.core.partitions import batch_backfill_policy, batch_keys, video_batches
from assets.core.resources import VidcatResource
from ml.catalog.model_registry import latest_model
from ml.visual.stage import score_batch_visual


@dg.asset(
    partitions_def=video_batches,
    backfill_policy=batch_backfill_policy,
    deps=["frame_embeddings", "visual_model"],
    group_name="visual",
    kinds={"onnx", "duckdb"},
)
@metered
def visual_predictions(context: dg.AssetExecutionContext, vidcat: VidcatResource) -> dg.MaterializeResult:
    """Batch inference from the exported (ONNX) student over the batch's embedding shard."""
    settings = vidcat.settings()
    catalog = vidcat.catalog()
    record = latest_model(catalog, "visual_model", required=False)
    if record is None:
        context.log.warning("no visual model yet (see the visual_model asset): nothing to score")
        return dg.MaterializeResult(metadata={"status": "no visual model yet", "videos": dg.MetadataValue.int(0)})
    videos = scored = ood = 0
    seconds = 0.0
    with vidcat.engine() as engine:
        for batch_id in batch_keys(context):
            r = score_batch_visual(catalog, record, settings, batch_id, engine=engine)
            videos += r.videos
            scored += r.scored
            ood += r.out_of_distribution
            seconds += r.seconds
    return dg.MaterializeResult(
        metadata={
            "videos": dg.MetadataValue.int(videos),
            "scored": dg.MetadataValue.int(scored),
            "without_frames": dg.MetadataValue.int(videos - scored),
            "out_of_distribution": dg.MetadataValue.int(ood),
            "videos_per_s": dg.MetadataValue.float(round(scored / max(seconds, 1e-9), 1)),
            "model_version": record.version,
        }
    )
