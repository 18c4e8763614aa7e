"""`video_probe`: container facts per video of a batch (PyAV), broken files as `failures` rows."""

import time

import dagster as dg

from assets.catalog.video_registry import video_registry
from assets.core.metering import metered
from assets.core.partitions import batch_backfill_policy, batch_keys, video_batches
from assets.core.resources import VidcatResource
from ml.catalog.summary import md_table
from ml.frames.stage import probe_batch


@dg.asset(
    partitions_def=video_batches,
    backfill_policy=batch_backfill_policy,
    deps=[video_registry],
    group_name="catalog",
    kinds={"pyav", "duckdb"},
)
@metered
def video_probe(context: dg.AssetExecutionContext, vidcat: VidcatResource) -> dg.MaterializeResult:
    """Container facts per video (duration, fps, codec, size, audio); unreadable files become failures."""
    settings = vidcat.settings()
    catalog = vidcat.catalog()
    started = time.monotonic()
    n_videos = n_ok = 0
    failures = []
    codecs: dict[str, int] = {}
    total_s = 0.0
    for batch_id in batch_keys(context):
        result = probe_batch(catalog, batch_id, settings)
        ok, failed = result.probed, result.failures
        n_videos += result.videos
        n_ok += len(ok)
        failures.extend(failed)
        for _, r in ok:
            codecs[r.video_codec] = codecs.get(r.video_codec, 0) + 1
            total_s += r.duration_s or 0.0
        for f in failed:
            context.log.warning(f"{batch_id}/{f.video_id}: {f.error_class}: {f.message}")
    return dg.MaterializeResult(
        metadata={
            "videos": dg.MetadataValue.int(n_videos),
            "probed": dg.MetadataValue.int(n_ok),
            "failures": dg.MetadataValue.int(len(failures)),
            "video_hours": dg.MetadataValue.float(round(total_s / 3600, 3)),
            "codecs": dg.MetadataValue.md(md_table(sorted(codecs.items(), key=lambda x: -x[1]), ["codec", "videos"])),
            "failure_examples": dg.MetadataValue.md(
                md_table(
                    [(f.video_id, f.error_class, f.message[:120]) for f in failures[:10]], ["video", "error", "message"]
                )
            ),
            "wall_s": dg.MetadataValue.float(round(time.monotonic() - started, 2)),
        }
    )
