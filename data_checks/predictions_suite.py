"""Expectations on a batch's `predictions` rows: what ad serving will read.

Every expectation is critical. These rows are the product; a category outside the working set, a
score outside [0, 1], a duplicate key or a decision that its own thresholds do not support means the
fusion step is wrong for the whole batch, not for one video.

Consistency with thresholds: a row says which source(s) gave the category. For ``text`` the text
score must reach the text threshold, for ``visual`` the visual one, for ``both`` both; for ``fused``
(a combining rule emitted it though neither source alone would) the row's score must reach the
fused threshold; for ``backoff`` (a parent said where none of its subtree is, ml/fusion/hierarchy.py)
the node score must reach the node's certified cut. A source whose threshold is NULL (it cannot reach
the precision target for that category) must not emit it. A video never carries a category together
with one of its descendants (the rows' paths say which is which).
The thresholds are the ones stored on the row, or, when the `thresholds` table rows are passed, the
ones of the row's ``thresholds_version`` there (so a row cannot carry a stale copy).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from data_checks.gx_runner import param, run_suite
from data_checks.outcome import CheckOutcome

SUITE = "predictions"
SOURCES = ("text", "visual", "both", "fused", "backoff")
THRESHOLD_SOURCES = ("text", "visual", "fused", "backoff")
DEFAULT_TOLERANCE = 1e-6


def join_thresholds(predictions: Any, thresholds: Any) -> Any:
    """Replace the row's text/visual thresholds by the `thresholds` table's for its version.

    ``thresholds`` has the table's columns (version, category_id, source, threshold, enabled); a
    disabled threshold counts as NULL.
    """
    t = thresholds.copy()
    t["threshold"] = t["threshold"].where(t["enabled"].astype(bool))
    out = predictions.drop(columns=[f"{s}_threshold" for s in THRESHOLD_SOURCES], errors="ignore")
    for source in THRESHOLD_SOURCES:
        part = t[t["source"] == source][["version", "category_id", "threshold"]].rename(
            columns={"version": "thresholds_version", "threshold": f"{source}_threshold"}
        )
        out = out.merge(part, on=["thresholds_version", "category_id"], how="left")
    return out


def decision_consistent(df: Any, tolerance: float = DEFAULT_TOLERANCE) -> Any:
    """Per row: does the stated source's score reach its threshold (within ``tolerance``)?"""
    text_ok = df["text_score"].astype("float64") >= df["text_threshold"].astype("float64") - tolerance
    visual_ok = df["visual_score"].astype("float64") >= df["visual_threshold"].astype("float64") - tolerance
    fused_threshold = df["fused_threshold"] if "fused_threshold" in df.columns else float("nan")
    fused_ok = df["score"].astype("float64") >= fused_threshold - tolerance
    backoff_threshold = df["backoff_threshold"] if "backoff_threshold" in df.columns else float("nan")
    backoff_ok = df["score"].astype("float64") >= backoff_threshold - tolerance
    source = df["source"]
    # Comparisons with NaN are False: a missing score or threshold never supports a decision.
    return (
        ((source == "text") & text_ok)
        | ((source == "visual") & visual_ok)
        | ((source == "both") & text_ok & visual_ok)
        | ((source == "fused") & fused_ok)
        | ((source == "backoff") & backoff_ok)
    )


def with_its_descendant(df: Any) -> Any:
    """Per row: does the same video (and model version) also carry a category below this one?"""
    import pandas as pd

    if "path" not in df.columns or not len(df):
        return pd.Series(False, index=df.index)
    paths = df.groupby(["video_id", "model_version"])["path"].agg(lambda p: [str(x) for x in p if x is not None])
    below = [
        path is not None and any(o.startswith(f"{path} > ") for o in paths[(v, m)])
        for v, m, path in zip(df["video_id"], df["model_version"], df["path"], strict=True)
    ]
    return pd.Series(below, index=df.index)


def _expectations() -> list[Any]:
    import great_expectations.expectations as gxe

    crit = "critical"
    out = [
        gxe.ExpectColumnValuesToNotBeNull(column=c, severity=crit, meta={"why": "part of the key"})
        for c in ("video_id", "category_id", "model_version")
    ]
    out += [
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["video_id", "category_id", "model_version"],
            severity=crit,
            meta={"why": "re-runs must replace rows, never duplicate them"},
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="category_id",
            value_set=param("category_ids"),
            severity=crit,
            meta={"why": "only working-set categories may be served"},
        ),
        gxe.ExpectColumnValuesToNotBeNull(column="score", severity=crit, meta={"why": "ad serving ranks by it"}),
        gxe.ExpectColumnValuesToBeBetween(
            column="score", min_value=0, max_value=1, severity=crit, meta={"why": "scores are probabilities"}
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="text_score", min_value=0, max_value=1, severity=crit, meta={"why": "null when no text"}
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="visual_score", min_value=0, max_value=1, severity=crit, meta={"why": "null when no frames"}
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="source", value_set=list(SOURCES), severity=crit, meta={"why": "provenance is reported"}
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="decision_consistent",
            value_set=[True],
            severity=crit,
            meta={"why": "a category its own source's threshold does not support breaks the 80% precision promise"},
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="with_its_descendant",
            value_set=[False],
            severity=crit,
            meta={"why": "a video is said to be about a category or one of its parents, never both"},
        ),
    ]
    return out


def validate_predictions(
    df: Any,
    *,
    category_ids: Iterable[str],
    thresholds: Any | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> CheckOutcome:
    """Validate `predictions` rows (one batch) against the working set and the thresholds."""
    frame = join_thresholds(df, thresholds) if thresholds is not None else df.copy()
    for column in ("fused_threshold", "backoff_threshold"):
        if column not in frame.columns:
            frame[column] = float("nan")
    for column in ("score", "text_score", "visual_score", *(f"{s}_threshold" for s in THRESHOLD_SOURCES)):
        frame[column] = frame[column].astype("float64")
    frame["decision_consistent"] = decision_consistent(frame, tolerance)
    frame["with_its_descendant"] = with_its_descendant(frame)
    ids = sorted({str(c) for c in category_ids})
    return run_suite(
        SUITE,
        frame,
        _expectations,
        parameters={"category_ids": ids},
        context={
            "n_categories": len(ids),
            "tolerance": tolerance,
            "thresholds_from": "thresholds table" if thresholds is not None else "rows",
        },
    )
