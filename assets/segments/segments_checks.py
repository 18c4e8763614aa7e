"""Asset check on `segment_predictions`, per batch, blocking: the scenes tile each video within its duration.

Blocking because the serving export reads these scenes: a gap, an overlap or a scene past the end
would put a mid-roll break or a scene's category where nothing was judged.
"""

import dagster as dg

from assets.core.check_results import outcome_check_result
from assets.core.metering import metered
from assets.core.partitions import video_batches
from assets.core.resources import VidcatResource
from assets.segments.segment_predictions import segment_predictions
from data_checks.segments_suite import validate_segments
from ml.catalog.model_registry import latest_model
from ml.catalog.segments import segment_rows


@dg.asset_check(asset=segment_predictions, partitions_def=video_batches, blocking=True)
@metered
def scene_tiling_expectations(context: dg.AssetCheckExecutionContext, vidcat: VidcatResource) -> dg.AssetCheckResult:
    """Scenes start at 0, meet without gap or overlap, end at the video's end; unique (video, scene) keys."""
    catalog = vidcat.catalog()
    batch_ids = list(context.partition_keys)
    record = latest_model(catalog, "visual_model", required=False)
    if record is None:
        return dg.AssetCheckResult(passed=True, description="no visual model yet: no scene to check")
    outcome = validate_segments(segment_rows(catalog, batch_ids, record.version))
    return outcome_check_result(outcome, batches=dg.MetadataValue.text(",".join(batch_ids)))
