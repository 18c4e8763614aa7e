"""The scene suite: scenes that do not tile their video within its duration fail, critically."""

from __future__ import annotations

import pandas as pd
import pytest

from data_checks.segments_suite import validate_segments


def tiled() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "video_id": ["a", "a", "a", "b"],
            "scene_index": [0, 1, 2, 0],
            "start_s": [0.0, 12.5, 20.0, 0.0],
            "end_s": [12.5, 20.0, 30.0, 7.0],
            "duration_s": [30.0, 30.0, 30.0, None],  # b: never probed, judged on its tiling alone
        }
    )


def test_scenes_that_tile_pass():
    outcome = validate_segments(tiled())
    assert outcome.passed, outcome.summary()


@pytest.mark.parametrize(
    ("change", "column"),
    [
        ({"start_s": (0, 1.0)}, "starts_where_previous_ends"),  # does not start at 0
        ({"start_s": (1, 13.0)}, "starts_where_previous_ends"),  # a gap
        ({"start_s": (2, 18.0)}, "starts_where_previous_ends"),  # an overlap
        ({"end_s": (2, 40.0)}, "within_duration"),  # past the end
        ({"end_s": (2, 25.0)}, "last_ends_at_duration"),  # the last seconds in no scene
        ({"scene_index": (2, 1)}, "index_in_order"),  # a duplicated key from a re-run that did not replace
    ],
)
def test_a_broken_tiling_fails_critically(change, column):
    df = tiled()
    for col, (row, value) in change.items():
        df.loc[row, col] = value
    outcome = validate_segments(df)
    assert not outcome.passed and outcome.blocking_failed
    assert column in {f.column for f in outcome.failed}, outcome.summary()
