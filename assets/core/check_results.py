"""The one place a `CheckOutcome` becomes a Dagster check result, so every check shows failures alike."""

from typing import Any

import dagster as dg

from data_checks.outcome import CRITICAL, CheckOutcome


def outcome_check_result(outcome: CheckOutcome, **extra_metadata: Any) -> dg.AssetCheckResult:
    """A failed critical expectation is an ERROR (stops a blocking check's downstream); warnings are WARN."""
    meta = outcome.as_metadata()
    metadata: dict[str, Any] = {
        "rows": dg.MetadataValue.int(meta["rows"]),
        "expectations": dg.MetadataValue.int(meta["expectations"]),
        "failed": dg.MetadataValue.int(len(meta["failed_expectations"])),
        "summary": dg.MetadataValue.md(meta["summary_md"]),
        "failed_expectations": dg.MetadataValue.json(meta["failed_expectations"]),
        "failing_rows": dg.MetadataValue.json(meta["failing_rows"]),
        "parameters": dg.MetadataValue.json(meta["parameters"]),
        **extra_metadata,
    }
    severity = dg.AssetCheckSeverity.ERROR if outcome.severity in (None, CRITICAL) else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        passed=outcome.passed, severity=severity, metadata=metadata, description=outcome.summary()
    )
