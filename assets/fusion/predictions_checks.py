"""Asset check on `fused_predictions`, per batch, blocking: the rows ad serving reads.

Categories in the working set, scores in [0, 1], unique keys, and every decision supported by its
own thresholds (from the `thresholds` table, not the row's copy). Blocking stops the batch's drift
report; the rows are already written when the check runs, so `current_predictions` consumers that
must not serve an unchecked batch read the check status (see docs/data-checks.md).
"""

import dagster as dg

from assets.core.check_results import outcome_check_result
from assets.core.metering import metered
from assets.core.partitions import video_batches
from assets.core.resources import VidcatResource
from assets.fusion.fused_predictions import fused_predictions
from data_checks.predictions_suite import validate_predictions
from ml.catalog.check_inputs import prediction_rows, threshold_rows
from ml.catalog.model_registry import latest_model


@dg.asset_check(asset=fused_predictions, partitions_def=video_batches, blocking=True)
@metered
def prediction_expectations(context: dg.AssetCheckExecutionContext, vidcat: VidcatResource) -> dg.AssetCheckResult:
    """Working-set categories, scores in [0, 1], no duplicates, decisions consistent with thresholds."""
    catalog = vidcat.catalog()
    batch_ids = list(context.partition_keys)
    fusion = latest_model(catalog, "fusion")
    df = prediction_rows(catalog, batch_ids, fusion.version)
    versions = sorted(set(df["thresholds_version"])) if len(df) else []
    thresholds = threshold_rows(catalog, versions)
    outcome = validate_predictions(df, category_ids=vidcat.working_set().ids, thresholds=thresholds)
    return outcome_check_result(outcome, batches=dg.MetadataValue.text(",".join(batch_ids)))
