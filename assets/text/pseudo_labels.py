"""`pseudo_labels`: confident teacher predictions that become the visual model's training targets."""

import dagster as dg

from assets.core.metering import metered
from assets.core.partitions import batch_backfill_policy, batch_keys, video_batches
from assets.core.resources import VidcatResource
from ml.catalog.batching import batch_video_ids
from ml.catalog.summary import md_table
from ml.text.stage import current_teacher, pseudo_label_batch, teacher_thresholds


@dg.asset(
    partitions_def=video_batches,
    backfill_policy=batch_backfill_policy,
    deps=["text_predictions"],
    group_name="text",
    kinds={"duckdb"},
)
@metered
def pseudo_labels(context: dg.AssetExecutionContext, vidcat: VidcatResource) -> dg.MaterializeResult:
    """The teacher's calibrated scores of informative videos as soft targets; positives hold 90% precision
    (lower bound) on held-out editor labels."""
    settings = vidcat.settings()
    ws = vidcat.working_set()
    catalog = vidcat.catalog()
    record = current_teacher(catalog)
    thresholds = teacher_thresholds(record, settings)
    scored = with_positive = positives = negatives = soft = 0
    per_category: dict[str, int] = {}
    agreement = []
    for batch_id in batch_keys(context):
        r = pseudo_label_batch(catalog, record, thresholds, batch_id, batch_video_ids(catalog, batch_id), settings)
        scored += r.videos_scored
        with_positive += r.videos_with_positive
        positives += r.positives
        negatives += r.negatives
        soft += r.soft
        for c, n in r.per_category.items():
            per_category[c] = per_category.get(c, 0) + n
        if r.gold_precision and r.gold_precision["positive"]["judged"]:
            agreement.append(r.gold_precision["positive"])
    judged = sum(a["judged"] for a in agreement)
    agree = sum((a["micro"] or 0) * a["judged"] for a in agreement)
    enabled = [t for t in thresholds if t.enabled]
    rows = [(c, ws.by_id(c).full_name, n) for c, n in sorted(per_category.items(), key=lambda kv: -kv[1])]
    return dg.MaterializeResult(
        metadata={
            "videos_scored": dg.MetadataValue.int(scored),
            "videos_with_pseudo_label": dg.MetadataValue.int(with_positive),
            "positives": dg.MetadataValue.int(positives),
            "negatives": dg.MetadataValue.int(negatives),
            "soft": dg.MetadataValue.int(soft),
            "categories_enabled": dg.MetadataValue.int(len(enabled)),
            "per_category": dg.MetadataValue.md(md_table(rows, ["id", "category", "positives"])),
            # How a teacher's bias is watched: agreement of positive pseudo-labels with gold answers.
            "gold_precision": dg.MetadataValue.float(round(agree / judged, 4))
            if judged
            else dg.MetadataValue.text("no gold labels in this batch"),
            "gold_judged": dg.MetadataValue.int(judged),
            "teacher_version": record.version,
        }
    )
