"""The result of one suite on one frame, in a shape that any orchestrator can show.

Severity follows Great Expectations' own: ``critical`` expectations guard what downstream stages rely
on (a failure should stop them), ``warning`` ones flag implausible values that a person should look at
while the batch goes on. The Dagster side maps them to ERROR and WARN.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

CRITICAL = "critical"
WARNING = "warning"
MAX_OBSERVED_VALUES = 5
MAX_STR = 200


@dataclass(frozen=True)
class FailedExpectation:
    name: str  # the expectation type, e.g. expect_column_values_to_be_unique
    severity: str  # critical or warning
    kwargs: dict[str, Any]
    observed: dict[str, Any]  # unexpected count/percent, a few unexpected values, or the observed value
    why: str = ""  # the expectation's meta "why": what a failure means for the pipeline
    error: str | None = None  # set when the expectation could not run (missing column, bad type)

    @property
    def column(self) -> str | None:
        return self.kwargs.get("column") or self.kwargs.get("column_A")

    def as_dict(self) -> dict[str, Any]:
        out = {
            "expectation": self.name,
            "severity": self.severity,
            "kwargs": self.kwargs,
            "observed": self.observed,
            "why": self.why,
        }
        if self.error:
            out["error"] = self.error
        return jsonable(out)


@dataclass(frozen=True)
class CheckOutcome:
    suite: str
    passed: bool
    n_rows: int
    n_expectations: int
    failed: tuple[FailedExpectation, ...] = ()
    examples: tuple[dict[str, Any], ...] = ()  # a few failing rows, each with the expectations it fails
    context: dict[str, Any] = field(default_factory=dict)  # the parameters the suite ran with

    @property
    def severity(self) -> str | None:
        """critical if any critical expectation failed, warning if only warnings did, None if passed."""
        if not self.failed:
            return None
        return CRITICAL if any(f.severity == CRITICAL for f in self.failed) else WARNING

    @property
    def blocking_failed(self) -> bool:
        return self.severity == CRITICAL

    def summary(self) -> str:
        if self.passed:
            return f"{self.suite}: {self.n_expectations} expectations passed on {self.n_rows} rows"
        names = ", ".join(f"{f.name}({f.column})" if f.column else f.name for f in self.failed)
        head = f"{self.suite}: {len(self.failed)}/{self.n_expectations} failed ({self.severity})"
        return f"{head} on {self.n_rows} rows: {names}"

    def as_metadata(self) -> dict[str, Any]:
        return outcome_metadata(self)


def outcome_metadata(outcome: CheckOutcome) -> dict[str, Any]:
    """Plain JSON-able metadata; keys ending in ``_md`` are Markdown, lists and dicts are JSON.

    Kept free of orchestrator types so the same dict can go into a Dagster check, a log line or a
    JSON file; the asset layer only wraps the values.
    """
    return {
        "suite": outcome.suite,
        "rows": outcome.n_rows,
        "expectations": outcome.n_expectations,
        "failed_expectations": [f.as_dict() for f in outcome.failed],
        "failing_rows": jsonable(list(outcome.examples)),
        "parameters": jsonable(outcome.context),
        "summary_md": _summary_md(outcome),
    }


def _summary_md(outcome: CheckOutcome) -> str:
    if outcome.passed:
        return f"All {outcome.n_expectations} expectations passed on {outcome.n_rows} rows."
    lines = ["| expectation | column | severity | unexpected | examples |", "| --- | --- | --- | --- | --- |"]
    for f in outcome.failed:
        unexpected = f.observed.get("unexpected_count", f.observed.get("observed_value", ""))
        examples = f.error or ", ".join(str(v) for v in f.observed.get("unexpected_values", []))
        examples = examples.replace("|", "\\|").replace("\n", " ")[:200]
        lines.append(f"| {f.name} | {f.column or ''} | {f.severity} | {unexpected} | {examples} |")
    return "\n".join(lines)


def jsonable(value: Any, max_str: int | None = None) -> Any:
    """Recursively turn numpy/pandas scalars, timestamps, NaN and tuples into plain JSON values.

    ``max_str`` clips long strings (a 20,000-character description has no place in check metadata).
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v, max_str) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v, max_str) for v in value]
    if isinstance(value, str):
        return value if max_str is None or len(value) <= max_str else value[:max_str] + "…"
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dt.datetime | dt.date):
        text = value.isoformat()
        return None if text == "NaT" else text
    if hasattr(value, "item") and callable(value.item):  # numpy scalar (also np.bool_, np.float32)
        try:
            return jsonable(value.item(), max_str)
        except (ValueError, TypeError):
            pass
    if hasattr(value, "tolist"):  # numpy array
        return jsonable(value.tolist(), max_str)
    if hasattr(value, "isoformat"):  # pandas Timestamp
        return value.isoformat()
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)
