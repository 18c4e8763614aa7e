"""The upload sensor: new registrations (and inbox drops) become batches, one run per batch."""

import time

import dagster as dg

from assets.core.partitions import BATCHES_PARTITION_NAME
from assets.core.resources import VidcatResource
from ml.catalog.inbox import scan_inbox
from ml.catalog.model_registry import latest_model
from ml.catalog.upload_batching import plan_tick

SCORE_JOB_NAME = "score_batch"


def build_upload_sensor(job, interval_s: int) -> dg.SensorDefinition:
    @dg.sensor(
        name="upload_sensor",
        job=job,
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Registers inbox drops, closes batches by size or age, requests one run per new batch.",
    )
    def upload_sensor(context: dg.SensorEvaluationContext, vidcat: VidcatResource) -> dg.SensorResult:
        started = time.perf_counter()
        settings = vidcat.settings()
        catalog = vidcat.catalog()
        scan = scan_inbox(catalog, settings.inbox_dir, list(settings.allowed_roots), vidcat.working_set())
        for r in scan.report.rejected:
            context.log.warning(f"inbox drop {r.video_id} rejected: {r.reason}")
        cursor = int(context.cursor) if context.cursor else 0
        if latest_model(catalog, "fusion", required=False) is None:
            # New uploads wait, unbatched, until the first models exist; `vidcat backfill --train` makes them.
            return dg.SensorResult(
                skip_reason="no trained models yet: run `vidcat backfill --train --wait` (or `make demo`) first",
                cursor=str(cursor),
            )
        plan = plan_tick(
            catalog,
            cursor,
            batch_size=settings.batch_size,
            max_wait_s=settings.batch_max_wait_s,
            max_batches=settings.sensor_max_batches_per_tick,
        )
        context.log.info(
            f"tick: {len(scan.report.registered)} registered from inbox, {plan.pending} pending, "
            f"{len(plan.new_batches)} new batch(es), {len(plan.to_request)} requested, "
            f"{time.perf_counter() - started:.3f}s"
        )
        if not plan.to_request:
            return dg.SensorResult(skip_reason=plan.reason, cursor=str(plan.cursor))
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(run_key=batch_id, partition_key=batch_id, tags={"vidcat/origin": "sensor"})
                for batch_id in plan.to_request
            ],
            dynamic_partitions_requests=[
                dg.AddDynamicPartitionsRequest(
                    partitions_def_name=BATCHES_PARTITION_NAME, partition_keys=plan.to_request
                )
            ],
            cursor=str(plan.cursor),
        )

    return upload_sensor
