"""`fused_predictions`: each video's final categories with provenance, in DuckDB `predictions`."""

import time

import dagster as dg

from ml.catalog.batching import batch_video_ids
from ml.catalog.summary import md_table
from ml.fusion.stage import ensure_source_scores, fuse_batch, load_current_fusion
from orchestration.partitions import batch_backfill_policy, batch_keys, video_batches
from orchestration.resources import VidcatResource


@dg.asset(
    partitions_def=video_batches,
    backfill_policy=batch_backfill_policy,
    deps=["text_predictions", "visual_predictions", "category_thresholds"],
    group_name="fusion",
    kinds={"duckdb"},
)
def fused_predictions(context: dg.AssetExecutionContext, vidcat: VidcatResource) -> dg.MaterializeResult:
    """Final categories per video (source text, visual, both or fused), scores, thresholds and model versions."""
    catalog = vidcat.catalog()
    fusion = load_current_fusion(catalog)
    started = time.monotonic()
    totals: dict[str, int] = {}
    by_source: dict[str, int] = {}
    filled = []
    with vidcat.engine() as engine:
        for batch_id in batch_keys(context):
            video_ids = batch_video_ids(catalog, batch_id)
            added = ensure_source_scores(catalog, vidcat.settings(), fusion, batch_id, video_ids, engine=engine)
            filled += [f"{batch_id}:{source}" for source, done in added.items() if done]
            result = fuse_batch(catalog, fusion, batch_id, video_ids)
            for k in ("videos", "classified", "emitted", "no_text", "no_visual", "neither"):
                totals[k] = totals.get(k, 0) + getattr(result, k)
            for k, n in result.by_source.items():
                by_source[k] = by_source.get(k, 0) + n
    if filled:
        context.log.info(f"scored with the fusion model's own versions first: {', '.join(filled)}")
    videos = max(totals.get("videos", 0), 1)
    with_category = catalog.scalar(
        "SELECT count(*) FROM video_results WHERE model_version = ? AND n_categories > 0 "
        "AND batch_id IN (SELECT unnest(?::VARCHAR[]))",
        [fusion.version, batch_keys(context)],
    )
    return dg.MaterializeResult(
        metadata={
            "videos": dg.MetadataValue.int(totals.get("videos", 0)),
            "categories_emitted": dg.MetadataValue.int(totals.get("emitted", 0)),
            "coverage": dg.MetadataValue.float(round(with_category / videos, 4)),
            "categories_per_video": dg.MetadataValue.float(round(totals.get("emitted", 0) / videos, 3)),
            "videos_without_text": dg.MetadataValue.int(totals.get("no_text", 0)),
            "videos_without_frames": dg.MetadataValue.int(totals.get("no_visual", 0)),
            "by_source": dg.MetadataValue.md(md_table(sorted(by_source.items()), ["source", "categories"])),
            "fusion_version": fusion.version,
            "rule": fusion.model.rule,
            "rescored_with_pinned_versions": dg.MetadataValue.text(", ".join(filled) or "none"),
            "wall_s": dg.MetadataValue.float(round(time.monotonic() - started, 2)),
        }
    )
