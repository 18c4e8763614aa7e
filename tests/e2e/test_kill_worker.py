"""A run worker killed (SIGKILL) while it writes a batch's shard, the daemon alive; a plain `vidcat backfill
--wait` started 3 s later; a long `vidcat sql` query beside the re-run.

Before: both commands exited 2, the batch's videos never got a result, a third plain run said "nothing
to backfill" and the shard's temporary file stayed. Now the daemon re-runs the killed run (run
retries), both commands wait for it and exit 0, every video ends with exactly one result, no
temporary is left, and the re-run's writes waited under a second for the catalog while the query ran.
"""

from __future__ import annotations

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
ENDLESS = "SELECT sum(i) FROM range(1000000000000) t(i)"
N_VIDEOS = 6


def _holder_of(path: Path) -> int | None:
    """The process that has ``path`` open: the run worker writing that shard."""
    target = str(path)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    return int(entry.name)
            except OSError:
                continue
    return None


def _backfill(env, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [VIDCAT, "backfill", "--wait", "--json", "--timeout", "900", *extra],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_worker_killed_mid_shard_then_a_plain_rerun(pipeline, tmp_path):
    import dagster as dg
    from dagster import RunsFilter

    from assets.core.metering import WRITE_WAIT_MAX_KEY

    env = dict(os.environ, **pipeline.env)
    media = pipeline.data_root / "media" / "killed"
    rows = []
    for i in range(N_VIDEOS):
        # Long enough (20 frames each) that the shard is being written for several seconds.
        path = make_video(media / f"kill-{i}.mp4", categories=("547",), duration_s=20.0, seed=700 + i)
        rows.append({"id": f"kill-{i}", "uri": str(path), "title": "", "language": "de"})
    manifest = tmp_path / "kill.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    reg = subprocess.run([VIDCAT, "register", str(manifest)], cwd=REPO_ROOT, env=env, capture_output=True, timeout=120)
    assert reg.returncode == 0, reg.stderr

    shards = pipeline.data_root / "embeddings" / "efficientnet-lite0"
    before = set(shards.glob("*.parquet"))
    first = _backfill(env)
    deadline = time.monotonic() + 400
    victim = None
    while time.monotonic() < deadline and victim is None and first.poll() is None:
        for tmp in shards.glob(".b*.parquet.tmp"):
            victim = _holder_of(tmp)
            if victim:
                break
        time.sleep(0.05)
    assert victim, f"no shard was being written: {first.poll()} {first.stderr.read() if first.poll() else ''}"
    os.kill(victim, signal.SIGKILL)
    time.sleep(3)
    query = subprocess.Popen(
        [VIDCAT, "sql", "--timeout", "45", ENDLESS], cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    second = _backfill(env)
    out2, err2 = second.communicate(timeout=1000)
    out1, err1 = first.communicate(timeout=600)
    assert first.returncode == 0, err1[-3000:]
    assert second.returncode == 0, err2[-3000:]
    result = json.loads(out1)
    assert json.loads(out2)["failed_runs"] == []
    assert result["status"] == "COMPLETED_SUCCESS" and result["failed_runs"] == [] and result["retried_runs"]
    _, query_err = query.communicate(timeout=120)
    assert query.returncode == 2 and "stopped after 45 s" in query_err

    catalog = Catalog(pipeline.data_root / "catalog.duckdb")
    fusion = catalog.scalar(
        "SELECT version FROM model_registry WHERE model_name = 'fusion' ORDER BY created_at DESC LIMIT 1"
    )
    results = catalog.query(
        "SELECT m.video_id, count(r.video_id) FROM batch_members m LEFT JOIN video_results r "
        "ON r.video_id = m.video_id AND r.model_version = ? WHERE m.video_id LIKE 'kill-%' GROUP BY 1",
        [fusion],
    )
    assert sorted(results) == [(f"kill-{i}", 1) for i in range(N_VIDEOS)]  # each exactly once
    assert not list(shards.glob(".*.parquet.tmp"))
    assert len(set(shards.glob("*.parquet")) - before) == 1

    # The re-run's writes while the query ran: no longer than a second each behind the catalog lock.
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    instance = dg.DagsterInstance.get()
    retry = instance.get_run_by_id(result["retried_runs"][0])
    group = instance.get_run_group(retry.run_id)[1]
    rerun = next(r for r in group if r.status.value == "SUCCESS")
    waits = [
        e.asset_materialization.metadata[WRITE_WAIT_MAX_KEY].value
        for e in instance.all_logs(rerun.run_id)
        if e.is_dagster_event
        and e.dagster_event.is_step_materialization
        and WRITE_WAIT_MAX_KEY in e.asset_materialization.metadata
    ]
    assert waits and max(waits) < 1.0, waits
    assert instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": result["backfill_id"]}))

    status = subprocess.run(
        [VIDCAT, "status", "--json"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert json.loads(status.stdout)["unfinished_batches"] == []
    again = subprocess.run(
        [VIDCAT, "backfill", "--json"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert json.loads(again.stdout)["backfill_id"] is None
