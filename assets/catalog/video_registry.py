"""`video_registry`: every known video, in DuckDB `videos`; materializing it also takes in the inbox."""

import dagster as dg

from assets.core.metering import metered
from assets.core.resources import VidcatResource
from ml.catalog.inbox import scan_inbox
from ml.catalog.summary import md_table, registry_stats


@dg.asset(group_name="catalog", kinds={"duckdb"})
@metered
def video_registry(context: dg.AssetExecutionContext, vidcat: VidcatResource) -> dg.MaterializeResult:
    """Every known video (DuckDB `videos`). Materializing registers complete drops from the inbox."""
    settings = vidcat.settings()
    catalog = vidcat.catalog()
    scan = scan_inbox(catalog, settings.inbox_dir, list(settings.allowed_roots), vidcat.working_set())
    for w in scan.report.warnings:
        context.log.warning(w)
    for r in scan.report.rejected:
        context.log.warning(f"inbox drop {r.video_id}: rejected: {r.reason}")
    stats = registry_stats(catalog)
    return dg.MaterializeResult(
        metadata={
            "videos": dg.MetadataValue.int(stats["videos"]),
            "registered_from_inbox": dg.MetadataValue.int(len(scan.report.registered)),
            "rejected_from_inbox": dg.MetadataValue.int(len(scan.report.rejected)),
            "unbatched": dg.MetadataValue.int(stats["unbatched"]),
            "batches": dg.MetadataValue.int(stats["batches"]),
            "with_editor_labels": dg.MetadataValue.int(stats["editor_labelled"]),
            "with_gold_labels": dg.MetadataValue.int(stats["gold_labelled"]),
            "languages": dg.MetadataValue.md(md_table(stats["languages"], ["language", "videos"])),
        }
    )
