"""Asset check on `video_probe`, per batch: the probe suite (data_checks/probe_suite.py).

The check is partitioned like the asset, so a run of one batch records the result on that batch and
a failure stops that batch's downstream stages only. It is blocking, but only critical expectations
fail it with ERROR (rows not of the batch, a member neither probed nor failed, missing size or frame
facts): an implausible duration, rate, resolution or an unlisted codec fails it with WARN, which
Dagster shows and does not block on. A run that packs several batches (backfill policy) evaluates
them together: one result, and an ERROR holds back every batch of that run.
"""

import dagster as dg

from assets.catalog.video_probe import video_probe
from assets.core.check_results import outcome_check_result
from assets.core.metering import metered
from assets.core.partitions import video_batches
from assets.core.resources import VidcatResource
from data_checks.probe_suite import validate_probe
from ml.catalog.check_inputs import failure_count, member_count, probe_rows


@dg.asset_check(asset=video_probe, partitions_def=video_batches, blocking=True)
@metered
def probe_expectations(context: dg.AssetCheckExecutionContext, vidcat: VidcatResource) -> dg.AssetCheckResult:
    """Batch rows complete and well-formed (blocking); plausible duration, fps, size and codec (warn)."""
    batch_ids = list(context.partition_keys)
    catalog = vidcat.catalog()
    df = probe_rows(catalog, batch_ids)
    members = member_count(catalog, batch_ids)
    failed = failure_count(catalog, batch_ids, stage="probe")
    outcome = validate_probe(df, batch_ids=batch_ids, expected_rows=members - failed)
    if not outcome.passed:
        context.log.warning(f"{','.join(batch_ids)}: {outcome.summary()}")
    return outcome_check_result(
        outcome,
        batches=dg.MetadataValue.text(",".join(batch_ids)),
        members=dg.MetadataValue.int(members),
        probe_failures=dg.MetadataValue.int(failed),
    )
