"""Asset check on `video_registry`: the registry suite (data_checks/registry_suite.py), blocking."""

import dagster as dg

from assets.catalog.video_registry import video_registry
from assets.core.check_results import outcome_check_result
from assets.core.metering import metered
from assets.core.resources import VidcatResource
from data_checks.registry_suite import validate_registry
from ml.catalog.check_inputs import count_videos, newest_videos

# The newest rows by registration order. Older rows were checked when they were new, and id and seq
# uniqueness are also primary/unique keys in DuckDB, so a full scan of millions of rows each time the
# registry materializes would buy little for its memory (titles are measured in SQL, never loaded).
REGISTRY_CHECK_MAX_ROWS = 500_000


@dg.asset_check(asset=video_registry, blocking=True)
@metered
def registry_expectations(context: dg.AssetCheckExecutionContext, vidcat: VidcatResource) -> dg.AssetCheckResult:
    """Unique ids and seqs, URIs under the media roots (blocking); language codes and title length (warn)."""
    settings = vidcat.settings()
    catalog = vidcat.catalog()
    total = count_videos(catalog)
    df = newest_videos(catalog, REGISTRY_CHECK_MAX_ROWS)
    outcome = validate_registry(df, media_roots=settings.allowed_roots)
    if not outcome.passed:
        context.log.warning(outcome.summary())
    return outcome_check_result(outcome, videos_total=dg.MetadataValue.int(total))
