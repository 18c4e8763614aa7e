"""A command that started its own daemon stops it when the command is stopped (SIGTERM, SIGHUP, Ctrl-C).

The daemon runs in its own session, so a signal to the command never reaches it; and Python's
default SIGTERM ends the process without running ``finally``. A real process is signalled here, with
a stand-in daemon (a sleeping child) so no Dagster process starts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from orchestration.backfill import _alive

SCRIPT = textwrap.dedent(
    """
    import sys, time
    import orchestration.backfill as backfill
    from ml.config import load_settings

    backfill.daemon_running = lambda *a, **k: False
    backfill.daemon_argv = lambda: [sys.executable, "-c", "import time; time.sleep(600)"]
    settings = load_settings().ensure_dirs()
    with backfill.running_daemon(settings, None, lambda m: print(m, file=sys.stderr, flush=True)) as started:
        print("ready", flush=True)
        time.sleep(600)
    """
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stopped_command_stops_the_daemon_it_started(settings, tmp_path, signum):
    if not os.path.isdir("/proc"):
        pytest.skip("reads process state from /proc")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cmd = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert cmd.stdout.readline().strip() == "ready", cmd.stderr.read()
        daemons = [int(p) for p in Path(f"/proc/{cmd.pid}/task/{cmd.pid}/children").read_text().split()]
        assert len(daemons) == 1 and _alive(daemons[0])
        cmd.send_signal(signum)
        assert cmd.wait(timeout=30) == 128 + signum
        deadline = time.monotonic() + 5
        while _alive(daemons[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(daemons[0]), "the daemon outlived the command that started it"
        said = cmd.stderr.read()
        assert f"{signal.Signals(signum).name}: stopping the dagster-daemon this command started" in said
    finally:
        if cmd.poll() is None:
            cmd.kill()
            cmd.wait()
