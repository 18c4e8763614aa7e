"""The Ray engine on a two-node cluster started on this machine: work lands on both nodes, encoders on the
labelled one, the shard equals the local engine's, and losing a node mid-batch loses no video."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ml.engines.local import LocalEngine
from ml.frames.embedding_store import iter_videos
from tests.conftest import REPO_ROOT, make_video

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(one_ray_at_a_time, tmp_path_factory):
    """A head node labelled for the encoder and a second node for decoding, each its own raylet."""
    pytest.importorskip("ray")
    env = dict(
        os.environ,
        RAY_USAGE_STATS_ENABLED="0",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(32),
        PYTHONPATH=str(REPO_ROOT),
    )
    port, worker_port = _port(), _port()
    common = ["--disable-usage-stats", "--object-store-memory", str(150 * 1024 * 1024)]
    head = [RAY, "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1", "--num-cpus", "2"]
    head += ["--resources", json.dumps({"vidcat_encoder": 1}), "--include-dashboard", "false", *common]
    worker = [RAY, "start", "--address", f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.1", "--num-cpus", "2"]
    worker += ["--resources", json.dumps({"vidcat_decoder": 2}), "--node-manager-port", str(worker_port), *common]
    try:
        subprocess.run(head, env=env, check=True, capture_output=True, timeout=120)
        subprocess.run(worker, env=env, check=True, capture_output=True, timeout=120)
        yield f"127.0.0.1:{port}", worker_port, env
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    from ml.config import load_settings

    root = tmp_path_factory.mktemp("ray2") / "vidcat"
    settings = load_settings(data_root=root, decode_timeout_s=30).ensure_dirs()
    videos = []
    for i in range(10):
        cat = ("533", "216", "472")[i % 3]
        path = make_video(settings.media_dir / f"r{i}.mp4", categories=(cat,), duration_s=3.0, seed=40 + i)
        videos.append((f"r{i}", str(path)))
    (settings.media_dir / "broken.mp4").write_bytes(b"not a video")
    videos.append(("r-broken", str(settings.media_dir / "broken.mp4")))
    return settings, videos


def _drive(cluster, settings, videos, batch_id, tmp_path, slow=False):
    address, _, env = cluster
    job = tmp_path / f"{batch_id}.json"
    job.write_text(
        json.dumps({"data_root": str(settings.data_root), "batch_id": batch_id, "videos": videos, "slow": slow})
    )
    return subprocess.Popen(
        [sys.executable, "-m", "tests.ray_driver", address, str(job)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _content(shard: Path) -> dict[str, tuple[list, bytes]]:
    return {v.video_id: (list(v.timestamps), v.embeddings.tobytes()) for v in iter_videos(shard, dequantized=False)}


def test_decodes_on_both_nodes_encoders_on_the_labelled_one_and_the_local_shard(cluster, batch, tmp_path):
    settings, videos = batch
    proc = _drive(cluster, settings, videos, "b00000001", tmp_path)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    got = json.loads(out.strip().splitlines()[-1])
    assert got["embedded"] == 10 and [f[:2] for f in got["failures"]] == [["r-broken", "DecodeError"]]
    assert len(got["nodes"]) == 2, f"decodes should land on both nodes, got {got['nodes']}"
    local_settings = settings.with_overrides(data_root=tmp_path / "local")
    (tmp_path / "local").mkdir()
    shutil.copytree(settings.models_dir, tmp_path / "local" / "models")  # the same exported encoder
    with LocalEngine() as local:
        expected = local.embed_batch("b00000001", videos, local_settings)
    ours, theirs = _content(Path(got["shard"])), _content(expected.shard)
    assert sorted(ours) == sorted(theirs)
    for vid in theirs:
        assert ours[vid][0] == pytest.approx(theirs[vid][0]) and ours[vid][1] == theirs[vid][1], vid
    # The encoder actors live on the labelled node: the head's raylet is the only one with the resource.
    address, _, env = cluster
    code = (
        f"import ray, json; ray.init(address='{address}', log_to_driver=False); "
        "print(json.dumps([n['Resources'].get('vidcat_encoder', 0) for n in ray.nodes() if n['Alive']]))"
    )
    labels = json.loads(
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120).stdout
    )
    assert sorted(labels) == [0, 1]


def test_losing_the_second_node_mid_batch_loses_no_video(cluster, batch, tmp_path):
    settings, videos = batch
    _, worker_port, _ = cluster
    proc = _drive(cluster, settings, videos, "b00000002", tmp_path, slow=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(4.0)  # a few decodes done, others running on the second node
    raylets = [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit()
        and b"raylet" in _cmdline(p)
        and f"--node_manager_port={worker_port}".encode() in _cmdline(p)
    ]
    assert len(raylets) == 1
    os.kill(raylets[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    got = json.loads(out.strip().splitlines()[-1])
    content = _content(Path(got["shard"]))
    failed = {f[0]: f for f in got["failures"]}
    # Every video is embedded (retried on the surviving node) or a failure with a reason; none twice.
    assert set(content) | set(failed) == {v for v, _ in videos} and not set(content) & set(failed)
    assert len(content) == got["embedded"] and len(content) >= 8
    assert all(f[2] for f in failed.values())
    assert np.unique(list(content)).size == len(content)


def _cmdline(p: Path) -> bytes:
    try:
        return (p / "cmdline").read_bytes()
    except OSError:
        return b""
