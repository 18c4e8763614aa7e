"""Upload-to-prediction latency through the real stack: `dagster dev` (webserver + daemon + sensor).

A small demo catalog is trained first with `vidcat demo` (the real backfill), then a video and its
sidecar are dropped into the inbox while `vidcat up` runs; the clock stops when the video's fused
classification is in the catalog. The run's event log splits the time into sensor wait, run launch,
and each step, which is what docs/benchmarks.md reports.

Baseline, in the same run: the floor of end_to_end.py (decode, encode and the title's text embedding
in one process, model loads included, nothing around them) over the same clip; each latency prints
as a ratio to its clip's floor. The floors run one after the other in this process, so the first
also pays the imports (as each run's fresh process does) and the second does not. The sensor
interval and the partial-batch wait printed are those of the settings the run used.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestration.supervise import stop_group

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_logged(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A long-lived Dagster process, output appended to ``log``, in its own process group so that
    ``stop_group`` stops it with the children it spawns (code servers, run workers)."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


@contextlib.contextmanager
def dagster_dev(env: dict[str, str], port: int, log: Path, timeout_s: float = 120) -> Iterator[subprocess.Popen]:
    """`vidcat up` in its own process group (dagster dev ignores SIGTERM otherwise); stopped on exit."""
    proc = start_logged([str(BIN / "vidcat"), "up", "--port", str(port)], env, log)
    try:
        deadline = time.monotonic() + timeout_s
        body = json.dumps({"query": "{ version }"}).encode()
        while True:
            try:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql", data=body, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(req, timeout=3):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"dagster dev did not come up; see {log}") from None
                time.sleep(0.5)
        yield proc
    finally:
        stop_group(proc, grace_s=30.0)


def drop_upload(inbox: Path, video: Path, video_id: str, meta: dict[str, Any]) -> float:
    """Copy the video, then write its sidecar (the completeness signal); returns the drop time."""
    inbox.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(video, inbox / f"{video_id}{video.suffix}")
    started = time.time()
    tmp = inbox / f".{video_id}.json.tmp"
    tmp.write_text(json.dumps({"id": video_id, **meta}))
    tmp.rename(inbox / f"{video_id}.json")
    return started


def wait_classified(catalog_path: Path, video_id: str, timeout_s: float) -> float:
    from ml.catalog.store import Catalog

    catalog = Catalog(catalog_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if catalog.scalar(
            "SELECT count(*) FROM video_results WHERE video_id = ? AND status = 'classified'", [video_id]
        ):
            return time.time()
        time.sleep(0.5)
    raise TimeoutError(f"{video_id} not classified within {timeout_s:.0f}s")


def run_timeline(dagster_home: Path, video_id: str) -> dict[str, float]:
    """Seconds from run creation to start, per step, and to success, for the run that scored ``video_id``."""
    import dagster as dg
    from dagster import RunsFilter

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    instance = dg.DagsterInstance.get()
    runs = instance.get_runs(filters=RunsFilter(tags={"vidcat/origin": "sensor"}), limit=20)
    from ml.catalog.store import Catalog
    from ml.config import load_settings

    batch = Catalog(load_settings().catalog_path).scalar(
        "SELECT batch_id FROM batch_members WHERE video_id = ?", [video_id]
    )
    run = next(r for r in runs if r.tags.get("dagster/partition") == batch)
    stats = instance.get_run_stats(run.run_id)
    record = instance.get_run_record_by_id(run.run_id)
    out = {
        "run_queued_to_start_s": round(stats.start_time - record.create_timestamp.timestamp(), 2),
        "run_total_s": round(stats.end_time - stats.start_time, 2),
    }
    for step in instance.get_run_step_stats(run.run_id):
        if step.start_time and step.end_time:
            out[f"step_{step.step_key}_s"] = round(step.end_time - step.start_time, 2)
    return out


def train_small_demo(root: Path) -> tuple[dict[str, str], float]:
    """A 180-video demo catalog trained through the real backfill in ``root/vidcat`` (every model exists
    afterwards); the environment that points vidcat at it, and the seconds it took."""
    from ml.demo.catalog import SMALL_CATALOG_SETTINGS

    config = root / "vidcat.toml"
    config.write_text(f'data_root = "{root / "vidcat"}"\n' + SMALL_CATALOG_SETTINGS)
    env = dict(os.environ, VIDCAT_CONFIG=str(config), VIDCAT_HOME=str(root / "vidcat"))
    env.pop("VIDCAT_MEDIA_ROOTS", None)
    started = time.monotonic()
    subprocess.run(
        [str(BIN / "vidcat"), "demo", "--videos", "180", "--seed", "5"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return env, time.monotonic() - started


def run() -> dict[str, Any]:
    from ml.demo.catalog import render_clip

    with tempfile.TemporaryDirectory(prefix="vidcat-latency-") as tmp:
        root = Path(tmp)
        config = root / "vidcat.toml"
        env, train_s = train_small_demo(root)
        clips = [
            render_clip(root / f"clip{i}.mp4", categories=(c,), duration_s=6.0, seed=900 + i)
            for i, c in enumerate(("425", "533"))
        ]
        port = free_port()
        latencies = []
        with dagster_dev(env, port, root / "dagster-dev.log"):
            for i, clip in enumerate(clips):
                vid = f"upload-{i}"
                dropped = drop_upload(
                    root / "vidcat" / "inbox", clip, vid, {"title": "Mon chien au parc", "language": "fr"}
                )
                latencies.append(wait_classified(root / "vidcat" / "catalog.duckdb", vid, 600) - dropped)
        env_home = root / "vidcat" / "dagster_home"
        os.environ["VIDCAT_CONFIG"], os.environ["VIDCAT_HOME"] = str(config), str(root / "vidcat")
        try:
            from ml.config import load_settings

            settings = load_settings()
            timeline = run_timeline(env_home, "upload-1")
        finally:
            os.environ.pop("VIDCAT_CONFIG", None)
            os.environ.pop("VIDCAT_HOME", None)
        from bench.end_to_end import floor

        floors = [floor([clip], ["Mon chien au parc"], settings.models_dir)["wall_s"] for clip in clips]
    return {
        "demo_train_s": round(train_s, 1),
        "upload_to_prediction_first_over_floor": round(latencies[0] / floors[0], 2),
        "upload_to_prediction_second_over_floor": round(latencies[1] / floors[1], 2),
        "upload_to_prediction_first_s": round(latencies[0], 1),
        "upload_to_prediction_second_s": round(latencies[1], 1),
        "floor_first_s": round(floors[0], 2),
        "floor_second_s": round(floors[1], 2),
        "sensor_interval_s": settings.sensor_interval_s,
        "batch_max_wait_s": settings.batch_max_wait_s,
        **timeline,
    }
