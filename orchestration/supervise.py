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
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

# What stops a command: `kill`, Ctrl-C, a closed terminal. Every command that owns a process group
# (`vidcat up`, a daemon started for `vidcat backfill --wait` or `vidcat demo`) handles all three alike.
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
    with on_stop_signals(on_signal):
        proc = subprocess.Popen(list(argv), env=env, cwd=cwd, start_new_session=True)
        while proc.poll() is None and not received:
            if until_started is not None and until_started():
                until_started = None
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.2)
        if received:
            print(f"{signal_name(received[0])}: stopping dagster dev (UI, daemon, runs)", file=sys.stderr, flush=True)
        stop_group(proc, grace_s)
    return 0 if received else int(proc.returncode or 0)


@contextlib.contextmanager
def on_stop_signals(handler: Callable[[int, object], None] | signal.Handlers) -> Iterator[None]:
    """``handler`` for every stop signal inside the block, the previous handlers restored after it.

    Python's default SIGTERM and SIGHUP end the process without running ``finally``, and its SIGINT can
    interrupt a ``finally`` that is stopping a process group: a command that must stop what it started
    installs its own. Only the main thread may set handlers; elsewhere (a test calling in from a worker
    thread, which no signal reaches) the block runs as it is.
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


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
