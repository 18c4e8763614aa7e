"""Asset check on `fused_predictions`, per batch, blocking: the rows ad serving reads.

Categories in the working set, scores in [0, 1], unique keys, and every decision supported by its
own thresholds (from the `thresholds` table, not the row's copy). Blocking stops the batch's drift
report; the rows are already written when the check runs, so `current_predictions` consumers that
must not serve an unchecked batch read the check status (see docs/data-checks.md).

The rows checked are those of the fusion version the asset recorded on its materialization, not the
newest model's: a `--train` finishing in between would otherwise point the check at another version's
rows (none, which passed). Every member must have a result under that version, so a batch the fusion
step skipped cannot pass on zero rows either.
"""

import dagster as dg

from assets.core.check_results import outcome_check_result
from assets.core.metering import metered
from assets.core.partitions import video_batches
from assets.core.resources import VidcatResource
from assets.fusion.fused_predictions import fused_predictions
from data_checks.predictions_suite import validate_predictions
from ml.catalog.check_inputs import member_count, prediction_rows, result_count, threshold_rows


def written_versions(instance: dg.DagsterInstance, batch_ids: list[str]) -> dict[str, str]:
    """Batch -> the fusion version of its latest `fused_predictions` materialization (absent: none recorded)."""
    found: dict[str, str] = {}
    seen: set[str] = set()
    cursor = None
    while len(seen) < len(batch_ids):
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=fused_predictions.key, asset_partitions=batch_ids),
            limit=max(len(batch_ids), 100),
            cursor=cursor,
        )
        for record in page.records:  # newest first
            version = (
                record.asset_materialization.metadata.get("fusion_version") if record.asset_materialization else None
            )
            if record.partition_key in seen:
                continue
            seen.add(record.partition_key)  # the latest one decides, recorded or not
            if version is not None:
                found[record.partition_key] = str(getattr(version, "value", version))
        if not page.has_more:
            break
        cursor = page.cursor
    return found


@dg.asset_check(asset=fused_predictions, partitions_def=video_batches, blocking=True)
@metered
def prediction_expectations(context: dg.AssetCheckExecutionContext, vidcat: VidcatResource) -> dg.AssetCheckResult:
    """Working-set categories, scores in [0, 1], no duplicates, decisions consistent with thresholds."""
    catalog = vidcat.catalog()
    batch_ids = list(context.partition_keys)
    versions = written_versions(context.instance, batch_ids)
    unrecorded = [b for b in batch_ids if b not in versions]
    by_version: dict[str, list[str]] = {}
    for b, v in versions.items():
        by_version.setdefault(v, []).append(b)
    problems = [f"no fused_predictions materialization records a fusion_version for {', '.join(unrecorded)}"]
    problems = problems if unrecorded else []
    for version, batches in by_version.items():
        members, results = member_count(catalog, batches), result_count(catalog, batches, version)
        if results != members:
            problems.append(f"{','.join(batches)}: {results} of {members} videos have a result under {version}")
    if problems:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"batches": dg.MetadataValue.text(",".join(batch_ids))},
            description="; ".join(problems) + ": the fusion step did not finish these batches; re-run them "
            "(`vidcat backfill --wait`)",
        )
    import pandas as pd

    frames = [prediction_rows(catalog, batches, version) for version, batches in by_version.items()]
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    thresholds = threshold_rows(catalog, sorted(set(df["thresholds_version"])) if len(df) else [])
    outcome = validate_predictions(df, category_ids=vidcat.working_set().ids, thresholds=thresholds)
    return outcome_check_result(
        outcome,
        batches=dg.MetadataValue.text(",".join(batch_ids)),
        fusion_versions=dg.MetadataValue.text(",".join(sorted(by_version))),
    )
