"""Retention keeps the newest reports plus one a day (and a week), never the JSON summaries."""

from __future__ import annotations

import datetime as dt
import os

from data_checks.report_retention import prune_reports, report_paths

NOW = dt.datetime(2024, 6, 30, 12, 0, tzinfo=dt.UTC)


def make(folder, name: str, when: dt.datetime, suffix: str = ".html"):
    path = folder / f"{name}{suffix}"
    path.write_text("x")
    os.utime(path, (when.timestamp(), when.timestamp()))
    return path


def test_keep_last_plus_daily(tmp_path):
    reports = []
    for day in range(10):  # three reports a day for ten days
        for hour in (1, 9, 17):
            when = NOW - dt.timedelta(days=day) - dt.timedelta(hours=12 - hour)
            reports.append(make(tmp_path, f"drift_d{day}_h{hour:02d}", when))
            make(tmp_path, f"drift_d{day}_h{hour:02d}", when, ".json")
    deleted = prune_reports(tmp_path, keep_last=4, keep_daily_days=5, keep_weekly_weeks=0, now=NOW)
    kept = sorted(p.name for p in tmp_path.glob("*.html"))
    newest_four = {"drift_d0_h17.html", "drift_d0_h09.html", "drift_d0_h01.html", "drift_d1_h17.html"}
    daily = {f"drift_d{d}_h17.html" for d in range(5)}
    assert set(kept) == newest_four | daily
    assert len(deleted) == 30 - len(kept) and not any(p.exists() for p in deleted)
    assert len(list(tmp_path.glob("*.json"))) == 30  # summaries always stay


def test_weekly_dry_run_and_missing_folder(tmp_path):
    for week in range(8):
        make(tmp_path, f"w{week}", NOW - dt.timedelta(weeks=week))
    doomed = prune_reports(tmp_path, keep_last=1, keep_daily_days=0, keep_weekly_weeks=4, now=NOW, dry_run=True)
    assert len(list(tmp_path.glob("*.html"))) == 8  # dry run deletes nothing
    assert sorted(p.name for p in doomed) == ["w4.html", "w5.html", "w6.html", "w7.html"]
    assert prune_reports(tmp_path / "absent", keep_last=1, keep_daily_days=1) == []


def test_report_paths():
    html, js = report_paths("/r/drift", "b00000007")
    assert (html.name, js.name) == ("drift_b00000007.html", "drift_b00000007.json")
