"""`text_predictions`: the teacher's calibrated probability per category for every video with text."""

import dagster as dg

from assets.core.metering import metered
from assets.core.partitions import batch_backfill_policy, batch_keys, video_batches
from assets.core.resources import VidcatResource
from ml.catalog.batching import batch_video_ids
from ml.text.stage import current_teacher, score_batch_text


@dg.asset(
    partitions_def=video_batches,
    backfill_policy=batch_backfill_policy,
    deps=["video_registry", "text_model"],
    group_name="text",
    kinds={"duckdb"},
)
@metered
def text_predictions(context: dg.AssetExecutionContext, vidcat: VidcatResource) -> dg.MaterializeResult:
    """One row per video: has_text, detected language, and scores (none when there is no usable text)."""
    catalog = vidcat.catalog()
    record = current_teacher(catalog)
    videos = with_text = 0
    languages: dict[str, int] = {}
    failures = []
    for batch_id in batch_keys(context):
        result = score_batch_text(catalog, record, batch_id, batch_video_ids(catalog, batch_id))
        videos += result.videos
        with_text += result.with_text
        failures += result.failures
        for k, n in result.languages.items():
            languages[k] = languages.get(k, 0) + n
    for f in failures:
        context.log.warning(f"{f.video_id}: {f.message}")
    return dg.MaterializeResult(
        metadata={
            "videos": dg.MetadataValue.int(videos),
            "with_text": dg.MetadataValue.int(with_text),
            "text_share": dg.MetadataValue.float(round(with_text / max(videos, 1), 4)),
            "failures": dg.MetadataValue.int(len(failures)),
            "languages": dg.MetadataValue.json(dict(sorted(languages.items(), key=lambda kv: -kv[1]))),
            "model_version": record.version,
        }
    )
