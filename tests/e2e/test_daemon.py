"""End to end through real Dagster processes: a backfill run by the daemon, an upload caught by the sensor.

Both run on the session's trained catalog (tests/pipeline.py), with the instance under its data root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.realtime_latency import dagster_dev, drop_upload, free_port, wait_classified
from ml.catalog.store import Catalog
from tests.conftest import REPO_ROOT, make_video

pytestmark = pytest.mark.slow
VIDCAT = str(Path(sys.executable).with_name("vidcat"))


def test_backfill_of_new_uploads_through_the_daemon(pipeline, tmp_path):
    env = dict(os.environ, **pipeline.env)
    media = pipeline.data_root / "media" / "new"
    rows = []
    for i, cat in enumerate(("425", "533", "216")):
        path = make_video(media / f"new-{i}.mp4", categories=(cat,), duration_s=4.0, seed=700 + i)
        rows.append({"id": f"new-{i}", "uri": str(path), "title": "", "language": "en"})
    (media / "broken.mp4").write_bytes(b"not a video")
    rows.append({"id": "new-broken", "uri": str(media / "broken.mp4")})
    manifest = tmp_path / "new.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    reg = subprocess.run(
        [VIDCAT, "register", str(manifest), "--json"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert reg.returncode == 0 and json.loads(reg.stdout)["registered"] == 4, reg.stderr
    proc = subprocess.run(
        [VIDCAT, "backfill", "--wait", "--timeout", "600", "--json"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["status"] == "COMPLETED_SUCCESS" and out["new_batches"] == 1 and not out["failed_runs"]
    catalog = Catalog(pipeline.data_root / "catalog.duckdb")
    classified = {
        r[0]
        for r in catalog.query(
            "SELECT video_id FROM video_results WHERE video_id LIKE 'new-%' AND status = 'classified'"
        )
    }
    assert classified == {"new-0", "new-1", "new-2"}
    assert catalog.query("SELECT stage FROM failures WHERE video_id = 'new-broken'") == [("probe",)]
    # The same command again has nothing to do: no second batch, no second backfill.
    again = subprocess.run(
        [VIDCAT, "backfill", "--json"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert json.loads(again.stdout)["backfill_id"] is None


def test_upload_to_prediction_with_dagster_dev(pipeline, tmp_path):
    env = dict(os.environ, **pipeline.env)
    clip = make_video(tmp_path / "clip.mp4", categories=("424",), duration_s=5.0, seed=808)
    with dagster_dev(env, free_port(), tmp_path / "dagster-dev.log"):
        dropped = drop_upload(pipeline.data_root / "inbox", clip, "upload-e2e", {"title": "Mon chat", "language": "fr"})
        done = wait_classified(pipeline.data_root / "catalog.duckdb", "upload-e2e", timeout_s=300)
    latency = done - dropped
    print(f"upload-to-prediction latency: {latency:.1f}s")
    assert latency < 300
    catalog = Catalog(pipeline.data_root / "catalog.duckdb")
    assert catalog.scalar("SELECT origin FROM videos WHERE video_id = 'upload-e2e'") == "inbox"
    assert (
        catalog.scalar(
            "SELECT b.origin FROM batches b JOIN batch_members m USING (batch_id) WHERE m.video_id = 'upload-e2e'"
        )
        == "sensor"
    )
    assert (pipeline.data_root / "inbox" / "upload-e2e.json.done").exists()
