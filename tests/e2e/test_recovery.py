"""A backfill of new uploads run by the daemon, after a crash: the daemon and its run workers killed
mid-backfill, the command run again at once.

The re-run must notice that nothing serves the instance any more (not trust a heartbeat seconds old),
close what the dead daemon left open, and finish the work without a second run of any batch at the
same time.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ml.catalog.store import Catalog
from tests.conftest import REPO_ROOT, make_video

pytestmark = pytest.mark.slow
VIDCAT = str(Path(sys.executable).with_name("vidcat"))


def _instance(env):
    import dagster as dg

    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    return dg.DagsterInstance.get()


def test_kill_the_daemon_mid_backfill_then_rerun_at_once(pipeline, tmp_path):
    from dagster import DagsterRunStatus, RunsFilter

    from orchestration.backfill import local_daemon_pids

    env = dict(os.environ, **pipeline.env)
    media = pipeline.data_root / "media" / "recovery"
    rows = []
    for i, cat in enumerate(("547", "338")):
        path = make_video(media / f"rec-{i}.mp4", categories=(cat,), duration_s=4.0, seed=900 + i)
        rows.append({"id": f"rec-{i}", "uri": str(path), "title": "", "language": "de"})
    (media / "broken.mp4").write_bytes(b"not a video")
    rows.append({"id": "rec-broken", "uri": str(media / "broken.mp4")})
    manifest = tmp_path / "rec.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    reg = subprocess.run([VIDCAT, "register", str(manifest)], cwd=REPO_ROOT, env=env, capture_output=True, timeout=120)
    assert reg.returncode == 0, reg.stderr
    first = subprocess.Popen(
        [VIDCAT, "backfill", "--wait", "--json"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    instance = _instance(env)
    home = Path(env["DAGSTER_HOME"])
    deadline = time.monotonic() + 240
    started = []
    while time.monotonic() < deadline and not started:
        time.sleep(1)
        started = [
            r
            for r in instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED]))
            if r.tags.get("dagster/backfill")
        ]
    assert started, "the first backfill never started a run"
    daemons = local_daemon_pids(home)
    assert daemons
    for pid in daemons:  # the daemon, its code server and run workers: every process of its group
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)

    rerun = subprocess.run(
        [VIDCAT, "backfill", "--wait", "--timeout", "600", "--json"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "already running" not in rerun.stderr and "started dagster-daemon" in rerun.stderr
    assert "abandoned by a stopped daemon" in rerun.stderr
    out = json.loads(rerun.stdout)
    assert out["status"] == "COMPLETED_SUCCESS" and not out["failed_runs"]
    catalog = Catalog(pipeline.data_root / "catalog.duckdb")
    classified = {
        r[0]
        for r in catalog.query(
            "SELECT video_id FROM video_results WHERE video_id LIKE 'rec-%' AND status = 'classified'"
        )
    }
    assert classified == {"rec-0", "rec-1"}
    assert catalog.query("SELECT stage FROM failures WHERE video_id = 'rec-broken'") == [("probe",)]
    # Every video has its result under the current models, and no half-written shard is left behind.
    fusion = catalog.scalar("SELECT version FROM model_registry WHERE model_name = 'fusion' ORDER BY created_at DESC")
    results = "SELECT video_id FROM video_results WHERE video_id LIKE 'rec-%' AND model_version = ? ORDER BY 1"
    assert [r[0] for r in catalog.query(results, [fusion])] == ["rec-0", "rec-1", "rec-broken"]
    assert not list((pipeline.data_root / "embeddings").glob("*/.*.parquet.tmp"))
    # No batch was ever run by two runs at once.
    runs = [
        r
        for r in instance.get_runs()
        if r.tags.get("dagster/partition") or r.tags.get("dagster/asset_partition_range_start")
    ]
    spans: dict[str, list[tuple[float, float]]] = {}
    for r in runs:
        stats = instance.get_run_stats(r.run_id)
        if stats.start_time is None:
            continue
        key = r.tags.get("dagster/partition") or r.tags.get("dagster/asset_partition_range_start")
        spans.setdefault(key, []).append((stats.start_time, stats.end_time or time.time()))
    for key, intervals in spans.items():
        intervals.sort()
        for (_, e1), (s2, _) in itertools.pairwise(intervals):
            assert s2 >= e1 - 1.0, f"two runs of {key} overlapped"
    assert not local_daemon_pids(home)  # the re-run stopped the daemon it started
    # The same command again has nothing to do: no second batch, no second backfill.
    again = subprocess.run(
        [VIDCAT, "backfill", "--json"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert json.loads(again.stdout)["backfill_id"] is None
