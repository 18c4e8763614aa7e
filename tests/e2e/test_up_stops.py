"""`vidcat up` stops, with every process it started, within 10 s of SIGTERM to its process group or SIGINT.

Started the way a script starts a background job (SIGINT ignored, inherited): `dagster dev` run
directly then ignored SIGTERM too (it maps SIGTERM to SIGINT's handling), and only SIGKILL ended it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.realtime_latency import free_port
from orchestration.backfill import local_daemon_pids

pytestmark = pytest.mark.slow
VIDCAT = str(Path(sys.executable).with_name("vidcat"))


def _processes_of(dagster_home: Path) -> list[int]:
    """Live processes whose environment names this DAGSTER_HOME: dagster dev and everything under it."""
    wanted = f"DAGSTER_HOME={dagster_home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what `cmd &` in a non-interactive shell does


@pytest.mark.parametrize("how", ["SIGTERM to the group", "SIGINT"])
def test_up_stops_on_sigterm_and_sigint(how, settings, tmp_path):
    env = dict(os.environ)
    env.pop("DAGSTER_HOME", None)  # vidcat up sets it from the data root
    home = settings.dagster_home.resolve()
    up = subprocess.Popen(
        [VIDCAT, "up", "--port", str(free_port())],
        cwd=settings.data_root.parent,  # no repository vidcat.toml: the test's data root alone
        env=env,
        stdout=open(tmp_path / "up.log", "w"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_ignore_sigint,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not local_daemon_pids(home):
            assert up.poll() is None, (tmp_path / "up.log").read_text()
            time.sleep(0.5)
        assert local_daemon_pids(home), "the daemon never started"
        time.sleep(3)  # the code server is up too
        started = _processes_of(home)
        assert len(started) >= 3, started
        stopped_at = time.monotonic()
        if how == "SIGINT":
            os.kill(up.pid, signal.SIGINT)
        else:
            os.killpg(up.pid, signal.SIGTERM)
        up.wait(timeout=10)
        while _processes_of(home) and time.monotonic() - stopped_at < 10:
            time.sleep(0.1)
        took = time.monotonic() - stopped_at
        assert not _processes_of(home), f"still running after {took:.1f}s: {_processes_of(home)}"
        assert took < 10 and up.returncode == 0
    finally:
        for pid in _processes_of(home):
            os.kill(pid, signal.SIGKILL)
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
