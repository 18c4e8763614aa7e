"""Verified scene ranges of gold videos: where in the video each category is, as an editor checked it.

Scene thresholds are certified on them (`ml/segments/certification.py`), the way video thresholds
are certified on gold labels. An answer lists every category on screen with its time range(s);
ranges may overlap (two categories at once) and need not cover the video, and a category not listed
is judged absent from the video's time. Imported with `vidcat import-gold`:

* JSONL: ``"scenes": [{"start_s": 0, "end_s": 12.5, "category": "483"}, ...]``;
* CSV: a ``scenes`` column, ``start-end=category`` entries separated by ``;``, e.g.
  ``0-12.5=483; 12.5-30=484`` (the spot-check sheet lists the detected scenes beside it to copy from).

Each range is checked before anything is written: a number for each end, ``0 <= start < end``, the end
within the probed duration (plus one sampling step; a video not probed yet is checked when its
scenes are certified, which leaves out ranges past its end), a category of IAB 3.1 in the working set
(tier 3-4 ids roll up), and for an exhaustive answer one of the video's labels. A re-imported answer
with scenes replaces the video's ranges; one without leaves them as they were.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from typing import Any

import duckdb

from ml.catalog.store import Catalog, delete_where_in, insert_rows
from ml.catalog.videos import DURATION_SLACK_S
from ml.errors import UserFacingError

CSV_ENTRY = re.compile(r"^\s*([0-9.eE+-]+)\s*-\s*([0-9.eE+-]+)\s*=\s*(\S+)\s*$")
TimeRange = tuple[float, float, str]


class SceneRangeError(UserFacingError, ValueError):
    """A scene range that cannot be stored, with what to write instead."""


def parse_scene_ranges(value: Any) -> list[tuple[Any, Any, Any]]:
    """The raw (start, end, category) triples of a JSONL list or a CSV ``scenes`` cell; [] when empty."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        out = []
        for k, entry in enumerate(x for x in text.split(";") if x.strip()):
            m = CSV_ENTRY.match(entry)
            if m is None:
                raise SceneRangeError(
                    f"scenes entry {k + 1} {entry.strip()!r}: write each range as start-end=category in seconds, "
                    "e.g. 0-12.5=483; 12.5-30=484"
                )
            out.append((m.group(1), m.group(2), m.group(3)))
        return out
    if not isinstance(value, list):
        raise SceneRangeError(
            'scenes must be a list of {"start_s": .., "end_s": .., "category": ..} objects '
            f"(got {type(value).__name__})"
        )
    out = []
    for k, item in enumerate(value):
        if not isinstance(item, dict):
            raise SceneRangeError(f'scenes[{k}] must be an object {{"start_s", "end_s", "category"}}')
        out.append((item.get("start_s"), item.get("end_s"), item.get("category", item.get("category_id"))))
    return out


def validate_scene_ranges(
    raw: Sequence[tuple[Any, Any, Any]],
    roll_up: Callable[[str], str | None],
    duration_s: float | None,
    labels: set[str] | None = None,
) -> list[TimeRange]:
    """Checked ranges (start, end, working-set category) in input order; raises ``SceneRangeError``.

    ``roll_up`` maps an IAB id to its working-set category (None: outside the working set; raising
    ValueError: not an IAB id); ``labels``: the video's labels in an exhaustive answer.
    """
    out: list[TimeRange] = []
    for k, (start, end, category) in enumerate(raw):
        where = f"scenes[{k}]"
        try:
            s, e = float(start), float(end)
        except (TypeError, ValueError):
            raise SceneRangeError(f"{where}: start_s {start!r} and end_s {end!r} must be numbers of seconds") from None
        if not (s == s and e == e) or s in (float("inf"), float("-inf")) or e in (float("inf"), float("-inf")):
            raise SceneRangeError(f"{where}: start_s and end_s must be finite seconds")
        if s < 0:
            raise SceneRangeError(f"{where}: start_s {s:g} is negative; a video starts at 0")
        if not s < e:
            raise SceneRangeError(f"{where}: start_s {s:g} is not before end_s {e:g}; write start < end")
        if duration_s is not None and e > duration_s + DURATION_SLACK_S:
            raise SceneRangeError(
                f"{where}: end_s {e:g} is past the video's end ({duration_s:.1f} s as probed); "
                "correct the range or the video"
            )
        cat = str(category if category is not None else "").strip()
        if not cat:
            raise SceneRangeError(f"{where}: no category; give the IAB 3.1 id shown in this range")
        try:
            rolled = roll_up(cat)
        except ValueError as exc:
            raise SceneRangeError(f"{where}: {exc}") from None
        if rolled is None:
            raise SceneRangeError(f"{where}: category {cat!r} is outside the working set (`vidcat taxonomy`)")
        if labels is not None and rolled not in labels:
            raise SceneRangeError(
                f"{where}: category {rolled} is not among the video's labels {sorted(labels)}; "
                "add it to labels or correct the range"
            )
        out.append((s, e, rolled))
    return out


def replace_scene_ranges(
    con: duckdb.DuckDBPyConnection, ranges: dict[str, list[TimeRange]], annotator: str, now: dt.datetime
) -> int:
    """Within the caller's transaction: each listed video's ranges replaced by ``ranges[video]``."""
    ids = sorted(ranges)
    delete_where_in(con, "gold_scenes", "video_id", ids)
    rows = [(v, k, s, e, c, annotator, now) for v in ids for k, (s, e, c) in enumerate(ranges[v])]
    return insert_rows(
        con,
        "gold_scenes",
        ["video_id", "range_index", "start_s", "end_s", "category_id", "annotator", "created_at"],
        rows,
    )


def scene_ranges(catalog: Catalog, exclude: set[str] | None = None) -> dict[str, list[TimeRange]]:
    """video_id -> its verified ranges in import order, for every video with ranges but ``exclude`` (the
    locked test, videos that train)."""
    rows = catalog.query("SELECT video_id, start_s, end_s, category_id FROM gold_scenes ORDER BY video_id, range_index")
    out: dict[str, list[TimeRange]] = {}
    for vid, s, e, c in rows:
        if exclude and vid in exclude:
            continue
        out.setdefault(vid, []).append((float(s), float(e), c))
    return out


def scene_range_count(catalog: Catalog) -> tuple[int, int]:
    """(videos, ranges) of verified gold scenes in the catalog."""
    row = catalog.query("SELECT count(DISTINCT video_id), count(*) FROM gold_scenes")[0]
    return int(row[0]), int(row[1])
