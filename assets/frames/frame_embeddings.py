"""`frame_embeddings`: frames at 1 fps, encoded by the pretrained image encoder, one 8-bit shard per batch."""

import dagster as dg

from assets.core.metering import metered
from assets.core.partitions import batch_backfill_policy, batch_keys, video_batches
from assets.core.resources import VidcatResource
from ml.catalog.summary import md_table
from ml.frames.stage import frames_for_batch


@dg.asset(
    partitions_def=video_batches,
    backfill_policy=batch_backfill_policy,
    deps=["video_probe"],
    group_name="frames",
    kinds={"pyav", "onnx", "parquet"},
)
@metered
def frame_embeddings(context: dg.AssetExecutionContext, vidcat: VidcatResource) -> dg.MaterializeResult:
    """1 fps frames (cap 300) through EfficientNet-Lite0 (ONNX), quantized to 8 bits, one Parquet shard per batch."""
    settings = vidcat.settings()
    catalog = vidcat.catalog()
    totals = {"videos": 0, "embedded": 0, "frames": 0, "bytes": 0, "seconds": 0.0, "grid": 0.0, "dec": 0.0, "enc": 0.0}
    failures, shards = [], []
    with vidcat.engine() as engine:
        engine_name = engine.name
        for batch_id in batch_keys(context):
            result = frames_for_batch(catalog, batch_id, settings, engine)
            for f in result.failures:
                context.log.warning(f"{batch_id}/{f.video_id}: {f.error_class}: {f.message}")
            failures += result.failures
            shards.append(str(result.shard))
            totals["videos"] += result.videos
            totals["embedded"] += result.embedded
            totals["frames"] += result.frames
            totals["bytes"] += result.shard_bytes
            totals["seconds"] += result.decode_encode_s
            totals["dec"] += result.decode_cpu_s
            totals["enc"] += result.encode_cpu_s
            totals["grid"] = max(totals["grid"], result.max_grid_error_s)
    return dg.MaterializeResult(
        metadata={
            "videos": dg.MetadataValue.int(totals["videos"]),
            "embedded": dg.MetadataValue.int(totals["embedded"]),
            "frames": dg.MetadataValue.int(totals["frames"]),
            "failures": dg.MetadataValue.int(len(failures)),
            "wall_s": dg.MetadataValue.float(round(totals["seconds"], 2)),
            "frames_per_s": dg.MetadataValue.float(round(totals["frames"] / max(totals["seconds"], 1e-9), 1)),
            "max_grid_error_s": dg.MetadataValue.float(round(totals["grid"], 3)),
            "decode_cpu_s": dg.MetadataValue.float(round(totals["dec"], 2)),
            "encode_cpu_s": dg.MetadataValue.float(round(totals["enc"], 2)),
            "encoder": settings.image_encoder,
            "engine": engine_name,
            "shard": dg.MetadataValue.path(shards[0] if len(shards) == 1 else ", ".join(shards)),
            "shard_mb": dg.MetadataValue.float(round(totals["bytes"] / 1e6, 3)),
            "failure_examples": dg.MetadataValue.md(
                md_table(
                    [(f.video_id, f.error_class, f.message[:100]) for f in failures[:10]], ["video", "error", "message"]
                )
            ),
        }
    )
