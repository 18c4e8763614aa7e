"""End to end through real Dagster processes: an upload caught by the sensor of `dagster dev`.

On the session's trained catalog (tests/pipeline.py), with the instance under its data root. A backfill
run by the daemon is tested in test_recovery.py (after a crash, which is the harder case).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from bench.realtime_latency import dagster_dev, drop_upload, free_port, wait_classified
from ml.catalog.store import Catalog
from tests.conftest import make_video

pytestmark = pytest.mark.slow
VIDCAT = str(Path(sys.executable).with_name("vidcat"))


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
