"""How many drift HTML reports to keep.

One Evidently HTML is about 5 MB whatever the batch size: nearly all of it is the JavaScript bundle
the page embeds. At thousands of batches that is tens of GB of near-identical pages nobody opens, so
HTML is pruned while the per-batch JSON summary (a few KB: share, drifted columns, per-column scores)
is kept forever and is what trends and alerts read.

Policy: keep the newest ``keep_last`` HTML reports (the ones people look at after a backfill or an
alert), plus the newest report of each UTC day for the last ``keep_daily_days`` days and of each ISO
week for the last ``keep_weekly_weeks`` weeks (a history to compare against); delete the other HTML
files. A deleted page can be re-rendered from the batch and the reference if someone needs it.
Age is the file's modification time, so names are free; only ``*.html`` directly in the folder is
touched, so point it at the drift reports' own folder.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

DEFAULT_KEEP_LAST = 50
DEFAULT_KEEP_DAILY_DAYS = 30
DEFAULT_KEEP_WEEKLY_WEEKS = 26


def report_paths(reports_dir: str | Path, batch_id: str) -> tuple[Path, Path]:
    """(HTML, JSON) paths of one batch's drift report: one naming rule for writer and pruner."""
    base = Path(reports_dir)
    return base / f"drift_{batch_id}.html", base / f"drift_{batch_id}.json"


def prune_reports(
    reports_dir: str | Path,
    keep_last: int = DEFAULT_KEEP_LAST,
    keep_daily_days: int = DEFAULT_KEEP_DAILY_DAYS,
    keep_weekly_weeks: int = DEFAULT_KEEP_WEEKLY_WEEKS,
    *,
    now: dt.datetime | None = None,
    dry_run: bool = False,
) -> list[Path]:
    """Delete the HTML reports the policy does not keep; returns the deleted (or, dry run, doomed) paths."""
    folder = Path(reports_dir)
    if not folder.is_dir():
        return []
    now = now or dt.datetime.now(dt.UTC)
    reports = []
    for path in folder.glob("*.html"):
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:  # pruned by a concurrent run
            continue
        reports.append((mtime, path.name, path))
    reports.sort(reverse=True)  # newest first; the name breaks ties so the choice is stable
    keep: set[Path] = {p for _, _, p in reports[: max(keep_last, 0)]}
    day_cutoff = (now - dt.timedelta(days=keep_daily_days)).date()
    week_cutoff = (now - dt.timedelta(weeks=keep_weekly_weeks)).date()
    seen_days: set[dt.date] = set()
    seen_weeks: set[tuple[int, int]] = set()
    for mtime, _, path in reports:
        day = dt.datetime.fromtimestamp(mtime, dt.UTC).date()
        if keep_daily_days > 0 and day > day_cutoff and day not in seen_days:
            seen_days.add(day)
            keep.add(path)
        week = tuple(day.isocalendar())[:2]
        if keep_weekly_weeks > 0 and day > week_cutoff and week not in seen_weeks:
            seen_weeks.add(week)
            keep.add(path)
    doomed = [p for _, _, p in reports if p not in keep]
    if not dry_run:
        for path in doomed:
            path.unlink(missing_ok=True)
    return doomed
