"""`scene_thresholds`: per category, the scene score whose precision on verified gold scenes is certified."""

import dagster as dg

from assets.core.metering import metered
from assets.core.resources import VidcatResource
from ml.catalog.model_registry import latest_model
from ml.catalog.summary import md_table
from ml.segments.certification import certified_summary, certify_on_gold


@dg.asset(deps=["visual_model", "frame_embeddings"], group_name="segments", kinds={"duckdb"})
@metered
def scene_thresholds(context: dg.AssetExecutionContext, vidcat: VidcatResource) -> dg.MaterializeResult:
    """The promise for scenes: thresholds certified on the detected scenes of gold videos with verified ranges."""
    settings = vidcat.settings()
    catalog = vidcat.catalog()
    record = latest_model(catalog, "visual_model", required=False)
    if record is None:
        context.log.warning("no visual model yet (see the visual_model asset): no scene can be scored")
        return dg.MaterializeResult(metadata={"status": "no visual model yet"})
    policy = settings.threshold_policy()
    thresholds, gold = certify_on_gold(catalog, settings, record, policy)
    summary = certified_summary(thresholds)
    if gold.student_trained_on:
        context.log.warning(
            f"{gold.student_trained_on} gold video(s) with verified scenes were training videos of visual model "
            f"{record.version} and were left out; retrain the student to certify on them"
        )
    if not thresholds.certified:
        context.log.warning(
            f"no scene threshold certified on {gold.truth.shape[0]} gold scenes of {len(gold.videos)} videos: "
            "scenes carry scores but no category (import verified scene ranges with `vidcat import-gold`)"
        )
    ws = vidcat.working_set()
    rows = [
        (
            c,
            ws.by_id(c).full_name if c in ws else c,
            f"{t.threshold:.3f}",
            f"{t.precision:.2f}",
            f"{t.lower_bound:.2f}",
            t.positives,
        )
        for c, t in zip(thresholds.categories, thresholds.thresholds, strict=True)
        if t.enabled
    ]
    gaps = [
        (g["category_id"], g["gold_scenes"], g["more_positives"], g["reason"][:80]) for g in summary["not_certified"]
    ]
    return dg.MaterializeResult(
        metadata={
            "version": thresholds.version,
            "visual_model_version": record.version,
            "promise": policy.promise("scenes"),
            "gold_videos": dg.MetadataValue.int(len(gold.videos)),
            "gold_scenes": dg.MetadataValue.int(int(gold.truth.shape[0])),
            "positive_scenes": dg.MetadataValue.int(int(gold.truth.any(axis=1).sum())),
            "certified": dg.MetadataValue.int(summary["certified"]),
            "categories": dg.MetadataValue.int(summary["of"]),
            "gold_videos_without_frames": dg.MetadataValue.int(gold.without_frames),
            "gold_left_out_student_trained_on": dg.MetadataValue.int(gold.student_trained_on),
            "ranges_past_end": dg.MetadataValue.int(gold.ranges_past_end),
            "thresholds": dg.MetadataValue.md(
                md_table(rows, ["id", "category", "threshold", "gold precision", "certified >=", "gold scenes"])
                if rows
                else "none certified: scenes carry scores but no category"
            ),
            "not_certified": dg.MetadataValue.md(
                md_table(gaps, ["id", "positive gold scenes", "verify more", "why"]) if gaps else "none"
            ),
        }
    )
