"""`serving_export`: each batch's current categories and scenes into the PostgreSQL store ad servers read."""

import dagster as dg

from assets.core.metering import metered
from assets.core.partitions import batch_backfill_policy, batch_keys, video_batches
from assets.core.resources import VidcatResource
from ml.serving.export import batch_payload, connect, ensure_schema, export_batch


@dg.asset(
    partitions_def=video_batches,
    backfill_policy=batch_backfill_policy,
    deps=["fused_predictions", "segment_predictions"],
    group_name="serving",
    kinds={"postgres"},
)
@metered
def serving_export(context: dg.AssetExecutionContext, vidcat: VidcatResource) -> dg.MaterializeResult:
    """One Postgres transaction per batch: newer wins, categories and scenes replaced, taken-down videos deleted."""
    settings = vidcat.settings()
    if not settings.serving_dsn:
        return dg.MaterializeResult(
            metadata={
                "status": "off: no serving database configured (serving_dsn in vidcat.toml or VIDCAT_SERVING_DSN)"
            }
        )
    catalog = vidcat.catalog()
    totals = {"videos": 0, "updated": 0, "unchanged": 0, "withdrawn": 0, "categories": 0, "segments": 0, "seconds": 0.0}
    with connect(settings.serving_dsn) as conn:
        ensure_schema(conn)
        for batch_id in batch_keys(context):
            r = export_batch(conn, batch_payload(catalog, batch_id))
            for key in totals:
                totals[key] += getattr(r, key)
    context.log.info(
        f"exported {totals['videos']} video(s): {totals['updated']} updated, {totals['unchanged']} already newer "
        f"or equal, {totals['withdrawn']} withdrawn"
    )
    return dg.MaterializeResult(
        metadata={
            "status": "exported",
            "videos": dg.MetadataValue.int(totals["videos"]),
            "updated": dg.MetadataValue.int(totals["updated"]),
            "unchanged": dg.MetadataValue.int(totals["unchanged"]),
            "withdrawn": dg.MetadataValue.int(totals["withdrawn"]),
            "categories_written": dg.MetadataValue.int(totals["categories"]),
            "segments_written": dg.MetadataValue.int(totals["segments"]),
            "export_s": dg.MetadataValue.float(round(totals["seconds"], 3)),
        }
    )
