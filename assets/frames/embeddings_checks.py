"""Asset check on `frame_embeddings`, per batch, blocking: no NaN, right dimension, frame counts, norms.

Blocking because the visual model and the drift report read these shards: a NaN or a wrong
dimension would poison training or every prediction of the batch.
"""

import dagster as dg

from assets.core.check_results import outcome_check_result
from assets.core.metering import metered
from assets.core.partitions import video_batches
from assets.core.resources import VidcatResource
from assets.frames.frame_embeddings import frame_embeddings
from data_checks.embeddings_suite import summarize_embeddings, validate_frame_embeddings
from ml.catalog.check_inputs import failure_count, probed_count
from ml.catalog.videos import probed_durations_of_batches
from ml.frames.embedding_store import iter_videos, shard_path


@dg.asset_check(asset=frame_embeddings, partitions_def=video_batches, blocking=True)
@metered
def embedding_expectations(context: dg.AssetCheckExecutionContext, vidcat: VidcatResource) -> dg.AssetCheckResult:
    """Finite values, encoder dimension, frame counts consistent with durations, norms in range."""
    from ml.frames.image_encoder import get_spec

    settings = vidcat.settings()
    catalog = vidcat.catalog()
    batch_ids = list(context.partition_keys)
    paths = {b: shard_path(settings.embeddings_dir, settings.image_encoder, b) for b in batch_ids}
    missing = [b for b, p in paths.items() if not p.exists()]
    if missing:
        # The frame step writes a shard for every batch it runs, even an empty one: none means its
        # videos would silently have no visual score.
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"batches": dg.MetadataValue.text(",".join(batch_ids)), "missing": ",".join(missing)},
            description=f"no frame-embedding shard for batch(es) {', '.join(missing)}: re-run their frame step "
            "(`vidcat backfill --wait`)",
        )
    durations = probed_durations_of_batches(catalog, batch_ids)
    df = summarize_embeddings(iter_videos(list(paths.values())), durations)
    probed = probed_count(catalog, batch_ids)
    failed = failure_count(catalog, batch_ids, stage="frames")
    outcome = validate_frame_embeddings(
        df,
        dim=get_spec(settings.image_encoder).dim,
        fps=settings.fps,
        max_frames=settings.max_frames,
        expected_rows=probed - failed,
    )
    return outcome_check_result(
        outcome,
        batches=dg.MetadataValue.text(",".join(batch_ids)),
        shards=dg.MetadataValue.int(len(paths)),
        probed=dg.MetadataValue.int(probed),
        frame_failures=dg.MetadataValue.int(failed),
    )
