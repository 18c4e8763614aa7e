"""`drift_report`: an Evidently report of the batch against the training reference, linked from the UI."""

import dagster as dg

from assets.core.metering import metered
from assets.core.partitions import batch_backfill_policy, batch_keys, video_batches
from assets.core.resources import VidcatResource
from ml.catalog.batching import batch_video_ids
from ml.catalog.model_registry import latest_model
from ml.catalog.scores import ood_counts
from ml.monitoring.drift import batch_drift, build_reference

DRIFT_CHECK = "drift_below_warn_share"


@dg.asset(
    partitions_def=video_batches,
    backfill_policy=batch_backfill_policy,
    deps=["frame_embeddings", "text_predictions", "fused_predictions"],
    group_name="monitoring",
    kinds={"evidently", "html"},
    check_specs=[
        dg.AssetCheckSpec(
            DRIFT_CHECK,
            asset="drift_report",
            blocking=False,
            description="Share of drifted features below drift_warn_share (warns only)",
        )
    ],
)
@metered
def drift_report(context: dg.AssetExecutionContext, vidcat: VidcatResource):
    """Frame-embedding PCA, language mix, text presence, container facts and category rates vs the reference."""
    from data_checks.report_retention import prune_reports

    settings = vidcat.settings()
    catalog = vidcat.catalog()
    visual = latest_model(catalog, "visual_model", required=False)
    if visual is None:
        # Drift is measured against the data the student learnt from; without a student there is none.
        yield dg.MaterializeResult(metadata={"status": "no visual model yet: no reference to compare with"})
        yield dg.AssetCheckResult(check_name=DRIFT_CHECK, passed=True, description="no reference yet")
        return
    text = latest_model(catalog, "text_model", required=False)
    fusion = latest_model(catalog, "fusion", required=False)
    text_version = text.version if text else None
    fusion_version = fusion.version if fusion else None
    reference = build_reference(catalog, settings, visual, text_version, fusion_version)
    worst = None
    flagged = scored = 0
    for batch_id in batch_keys(context):
        f, n = ood_counts(catalog, visual.version, batch_video_ids(catalog, batch_id))
        flagged, scored = flagged + f, scored + n
        summary, html, js = batch_drift(
            catalog,
            settings,
            reference,
            batch_id,
            batch_video_ids(catalog, batch_id),
            text_version,
            fusion_version,
            settings.drift_warn_share,
        )
        if worst is None or summary.share_drifted >= worst[0].share_drifted:
            worst = (summary, html, js, batch_id)
    pruned = prune_reports(settings.reports_dir / "drift")
    summary, html, js, batch_id = worst
    top = list(summary.drifted_columns[:5])
    yield dg.MaterializeResult(
        metadata={
            "share_drifted": dg.MetadataValue.float(round(summary.share_drifted, 4)),
            # Beside drift: the share of videos the visual source found unlike its training data.
            "out_of_distribution_share": dg.MetadataValue.float(round(flagged / scored, 4) if scored else 0.0),
            "out_of_distribution_videos": dg.MetadataValue.int(flagged),
            "drifted_features": dg.MetadataValue.int(summary.n_drifted),
            "features": dg.MetadataValue.int(summary.n_columns),
            "most_drifted": dg.MetadataValue.text(", ".join(top) or "none"),
            "report": dg.MetadataValue.url(html.resolve().as_uri()),
            "report_path": dg.MetadataValue.path(str(html)),
            "summary_json": dg.MetadataValue.path(str(js)),
            "reference_videos": dg.MetadataValue.int(summary.n_reference),
            "batch_videos": dg.MetadataValue.int(summary.n_current),
            "worst_batch": batch_id,
            "reports_pruned": dg.MetadataValue.int(len(pruned)),
        }
    )
    yield dg.AssetCheckResult(
        check_name=DRIFT_CHECK,
        passed=not summary.warning,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "share_drifted": dg.MetadataValue.float(round(summary.share_drifted, 4)),
            "warn_share": dg.MetadataValue.float(summary.warn_share),
            "most_drifted": dg.MetadataValue.text(", ".join(top) or "none"),
        },
        description=f"{summary.n_drifted}/{summary.n_columns} features drifted in {batch_id}",
    )
