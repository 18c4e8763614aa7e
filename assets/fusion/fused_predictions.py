"""`fused_predictions`: each video's final categories with provenance, in DuckDB `predictions`."""

import time

import dagster as dg

from assets.core.metering import metered
from assets.core.partitions import batch_backfill_policy, batch_keys, video_batches
from assets.core.resources import VidcatResource
from ml.catalog.batching import batch_video_ids
from ml.catalog.summary import md_table, videos_with_categories
from ml.fusion.stage import ensure_source_scores, fuse_batch, load_current_fusion

OOD_CHECK = "out_of_distribution_share"


@dg.asset(
    partitions_def=video_batches,
    backfill_policy=batch_backfill_policy,
    deps=["text_predictions", "visual_predictions", "category_thresholds"],
    group_name="fusion",
    kinds={"duckdb"},
    check_specs=[
        dg.AssetCheckSpec(
            OOD_CHECK,
            asset="fused_predictions",
            blocking=False,
            description="Share of videos the visual source abstained on (out of distribution) below ood_warn_share",
        )
    ],
)
@metered
def fused_predictions(context: dg.AssetExecutionContext, vidcat: VidcatResource):
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
            for k in ("videos", "classified", "emitted", "no_text", "no_visual", "neither", "out_of_distribution"):
                totals[k] = totals.get(k, 0) + getattr(result, k)
            totals["visual_scored"] = totals.get("visual_scored", 0) + result.visual_scored
            for k, n in result.by_source.items():
                by_source[k] = by_source.get(k, 0) + n
    if filled:
        context.log.info(f"scored with the fusion model's own versions first: {', '.join(filled)}")
    videos = max(totals.get("videos", 0), 1)
    with_category = videos_with_categories(catalog, batch_keys(context), fusion.version)
    settings = vidcat.settings()
    ood = totals.get("out_of_distribution", 0)
    ood_share = ood / totals["visual_scored"] if totals.get("visual_scored") else 0.0
    if ood:
        context.log.warning(f"{ood} video(s) unlike the student's training data: the visual source abstained")
    yield dg.MaterializeResult(
        metadata={
            "videos": dg.MetadataValue.int(totals.get("videos", 0)),
            "out_of_distribution": dg.MetadataValue.int(ood),
            "out_of_distribution_share": dg.MetadataValue.float(round(ood_share, 4)),
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
    yield dg.AssetCheckResult(
        check_name=OOD_CHECK,
        passed=ood_share <= settings.ood_warn_share,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "out_of_distribution_share": dg.MetadataValue.float(round(ood_share, 4)),
            "warn_share": dg.MetadataValue.float(settings.ood_warn_share),
            "videos_scored": dg.MetadataValue.int(totals.get("visual_scored", 0)),
        },
        description=f"{ood} of {totals.get('visual_scored', 0)} videos out of distribution for the visual model",
    )
