"""`vidcat up` keeps `dagster dev` in its own process group and stops all of it on SIGTERM, SIGINT or SIGHUP.

`dagster dev` maps SIGTERM to whatever SIGINT does, and a process started in the background of a
script inherits SIGINT *ignored*: such a `dagster dev` ignores both, and so do the webserver and
daemon it starts. Replacing this process with it (``exec``) therefore left an operator only
SIGKILL, which orphans the code servers and run workers. Here `dagster dev` runs as a child, in a
new session (its own process group, which holds its webserver, daemon, code servers and run
workers): our handlers make its SIGINT and SIGTERM the default again across ``exec``, a stop signal
is passed to the whole group, and what is still alive after a grace period is killed, so the command
ends within ``STOP_GRACE_S`` plus a second.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# dagster dev's own shutdown (webserver, daemon, code server) takes 2-4 s on 2 cores; a run worker gets
# the signal too and marks its run failed. Whatever is left after this is killed.
STOP_GRACE_S = 7.0


def supervise(
    argv: Sequence[str],
    env: dict[str, str],
    cwd: Path,
    grace_s: float = STOP_GRACE_S,
    until_started: Callable[[], bool] | None = None,
) -> int:
    """Run ``argv`` in a new process group until it exits or a stop signal arrives; then stop the group.

    ``until_started`` is polled while the child runs until it returns True (`vidcat up` holds its launch
    lock until other commands can see the daemon); a stop signal meanwhile still stops at once.
    Returns 0 after a requested stop, the child's exit status otherwise.
    """
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)

    # Installed before the child starts: handled signals are reset to the default across exec, where an
    # inherited "ignore" would have been kept.
    previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
    try:
        proc = subprocess.Popen(list(argv), env=env, cwd=cwd, start_new_session=True)
        while proc.poll() is None and not received:
            if until_started is not None and until_started():
                until_started = None
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.2)
        stop_group(proc, grace_s)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0 if received else int(proc.returncode or 0)


def stop_group(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM every process of ``proc``'s group, SIGKILL those alive after ``grace_s``, reap ``proc``."""
    pgid = proc.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and (proc.poll() is None or group_members(pgid)):
        time.sleep(0.1)
    if proc.poll() is None or group_members(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and group_members(pgid):
        time.sleep(0.05)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc; [] where /proc is absent."""
    members = []
    proc = Path("/proc")
    if not proc.is_dir():
        return members
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members
