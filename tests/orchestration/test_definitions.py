"""The code location loads, validates with Dagster's own CLI, and the real webserver serves it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

BIN = Path(sys.executable).parent


def test_definitions_load_with_every_asset_and_the_batch_job():
    """An upload's run is every per-batch asset and nothing else: it scores with the current models and
    never retrains them; the sensor that starts it is on by default and launches that job."""
    import dagster as dg

    from assets.core.partitions import video_batches
    from orchestration.definitions import BATCH_ASSET_KEYS, defs
    from tests.pipeline import SCORING_ASSETS

    graph = defs.resolve_asset_graph()
    by_batch = {k.to_user_string(): graph.get(k).partitions_def == video_batches for k in graph.get_all_asset_keys()}
    assert {k for k, partitioned in by_batch.items() if not partitioned} == {
        "video_registry",
        "text_model",
        "visual_model",
        "category_thresholds",
        "scene_thresholds",
    }
    per_batch = {k for k, partitioned in by_batch.items() if partitioned}
    assert per_batch == {*SCORING_ASSETS, "drift_report", "serving_export"}
    assert {k.to_user_string() for k in BATCH_ASSET_KEYS} == per_batch
    job = defs.resolve_job_def("score_batch")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == per_batch
    assert job.partitions_def == video_batches and job.executor_def.name == "in_process"
    sensor = defs.resolve_sensor_def("upload_sensor")
    assert [t.job_name for t in sensor.targets] == ["score_batch"]
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_dagster_definitions_validate(settings):
    env = dict(os.environ, DAGSTER_HOME=str(settings.dagster_home))
    proc = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-w", str(REPO_ROOT / "workspace.yaml")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation successful" in proc.stdout + proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_webserver_answers_graphql_with_the_asset_graph(settings):
    port = _free_port()
    env = dict(os.environ, DAGSTER_HOME=str(settings.dagster_home))
    proc = subprocess.Popen(
        [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", str(REPO_ROOT / "workspace.yaml")],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        query = json.dumps({"query": "{ assetNodes { assetKey { path } groupName } }"}).encode()
        deadline = time.monotonic() + 90
        while True:
            try:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql", data=query, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(req, timeout=5) as resp:
                    data = json.load(resp)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.5)
        paths = {"/".join(n["assetKey"]["path"]) for n in data["data"]["assetNodes"]}
        assert {"video_registry", "video_probe"} <= paths
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
