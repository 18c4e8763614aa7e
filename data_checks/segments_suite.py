"""Expectations on a batch's `segment_predictions` rows: the scenes ad serving places breaks between.

Every expectation is critical. Ad serving reads a video's scenes as a partition of its time: every
second belongs to exactly one scene, so a mid-roll break or a scene's category can be looked up at any
instant. A video whose scenes do not start at 0, leave a gap, overlap, run backwards or run past the
video's end would place an ad where nothing was judged; a repeated (video, scene) key means a re-run
duplicated rows instead of replacing them.

The tiling is judged per row against the row before it in the same video (``scene_index`` order), so
GE sees plain boolean columns. "Within the duration": the last scene ends at the probed duration (a
video whose frames reach a duration that claims less is extended one step past its last frame,
`scenes.video_duration`, so one sampling step of slack; the probe already trusts packets over a header
that claims less than they hold), and no scene ends past it; a video without a probed duration is
judged on the tiling alone.
"""

from __future__ import annotations

from typing import Any

from data_checks.gx_runner import run_suite
from data_checks.outcome import CheckOutcome
from ml.catalog.videos import DURATION_SLACK_S

SUITE = "segment_predictions"
TOLERANCE_S = 1e-6


def tiling_columns(df: Any, tolerance: float = TOLERANCE_S, slack_s: float = DURATION_SLACK_S) -> Any:
    """The rows with boolean columns: ``index_in_order``, ``starts_where_previous_ends``, ``positive_length``,
    ``within_duration``, ``last_ends_at_duration`` (True for rows other than a video's last)."""
    import numpy as np

    frame = df.sort_values(["video_id", "scene_index"], kind="stable").reset_index(drop=True)
    start = frame["start_s"].astype("float64")
    end = frame["end_s"].astype("float64")
    duration = frame["duration_s"].astype("float64") if "duration_s" in frame else start * np.nan
    first = frame["video_id"] != frame["video_id"].shift(1)
    last = frame["video_id"] != frame["video_id"].shift(-1)
    rank = frame.groupby("video_id").cumcount()
    previous_end = end.shift(1)
    known = duration.notna()
    frame["index_in_order"] = frame["scene_index"].astype("int64") == rank
    frame["starts_where_previous_ends"] = np.where(
        first, start.abs() <= tolerance, (start - previous_end).abs() <= tolerance
    ).astype(bool)
    frame["positive_length"] = (end > start).astype(bool)
    frame["within_duration"] = (~known | (end <= duration + slack_s)).astype(bool)
    frame["last_ends_at_duration"] = (~last | ~known | (end >= duration - tolerance)).astype(bool)
    return frame


def _expectations() -> list[Any]:
    import great_expectations.expectations as gxe

    crit = "critical"
    out = [
        gxe.ExpectColumnValuesToNotBeNull(column=c, severity=crit, meta={"why": "part of the key"})
        for c in ("video_id", "scene_index", "start_s", "end_s")
    ]
    out.append(
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["video_id", "scene_index"],
            severity=crit,
            meta={"why": "re-runs must replace a video's scenes, never duplicate them"},
        )
    )
    why = {
        "index_in_order": "scenes are numbered 0, 1, ... in time order",
        "starts_where_previous_ends": "scenes tile the video: the first starts at 0, each where the one before "
        "ends (no gap, no overlap)",
        "positive_length": "a scene ends after it starts",
        "within_duration": "no scene runs past the video's end",
        "last_ends_at_duration": "the last scene ends at the video's end: every second is in a scene",
    }
    out += [
        gxe.ExpectColumnValuesToBeInSet(column=c, value_set=[True], severity=crit, meta={"why": w})
        for c, w in why.items()
    ]
    return out


def validate_segments(df: Any, tolerance: float = TOLERANCE_S) -> CheckOutcome:
    """Validate `segment_predictions` rows (one batch, one student version) joined with ``duration_s``."""
    frame = tiling_columns(df, tolerance)
    return run_suite(
        SUITE,
        frame,
        _expectations,
        context={
            "tolerance_s": tolerance,
            "duration_slack_s": DURATION_SLACK_S,
            "videos": int(frame["video_id"].nunique()) if len(frame) else 0,
        },
    )
