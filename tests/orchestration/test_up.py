"""`vidcat up` decides, recovers and starts its daemon under one hold of the launch lock.

A `vidcat backfill --wait` that starts a daemon between `up`'s check and its recovery would have its
runs failed and its code server killed as a dead daemon's; one that takes the lock after `up` released
it but before `up`'s daemon shows would start a second daemon. No Dagster process starts here.
"""

from __future__ import annotations

import argparse
import fcntl
import time

import pytest

import orchestration.backfill as backfill
import orchestration.supervise as supervise
from orchestration.cli import CommandError
from orchestration.cli.demo import cmd_up


def _locked(settings) -> bool:
    """Whether some open file holds the launch lock (flock conflicts between open files of one process too)."""
    with open(settings.dagster_home / "vidcat-launch.lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


ARGS = argparse.Namespace(config=None, port=3999)


def test_up_checks_for_a_daemon_under_the_lock_and_then_recovers_nothing(settings, monkeypatch):
    seen: list[bool] = []

    def running(*_a, **_k) -> bool:
        seen.append(_locked(settings))
        return True  # a `vidcat backfill --wait` started one just before `up` took the lock

    def must_not_run(*_a, **_k):
        raise AssertionError("recovered a live daemon's runs as a dead one's")

    monkeypatch.setattr(backfill, "daemon_running", running)
    monkeypatch.setattr(backfill, "resume_after_crash", must_not_run)
    monkeypatch.setattr(supervise, "supervise", must_not_run)
    with pytest.raises(CommandError, match="already serves"):
        cmd_up(ARGS)
    assert seen == [True]
    assert not _locked(settings)


def test_up_holds_the_lock_until_its_daemon_can_be_seen(settings, monkeypatch):
    visible = [False]
    during: dict[str, object] = {}

    def resume(*_a, **_k) -> None:
        during["recovery"] = _locked(settings)

    def fake_supervise(argv, env, cwd, grace_s=7.0, until_started=None) -> int:
        during["start"] = _locked(settings)
        assert until_started is not None and until_started() is False
        during["before_visible"] = _locked(settings)
        visible[0] = True
        assert until_started() is True
        during["after_visible"] = _locked(settings)
        return 0

    monkeypatch.setattr(backfill, "daemon_running", lambda *a, **k: False)
    monkeypatch.setattr(backfill, "daemon_visible", lambda *a, **k: visible[0])
    monkeypatch.setattr(backfill, "resume_after_crash", resume)
    monkeypatch.setattr(supervise, "supervise", fake_supervise)
    assert cmd_up(ARGS) == 0
    assert during == {"recovery": True, "start": True, "before_visible": True, "after_visible": False}
    assert not _locked(settings)


def test_without_a_process_table_the_heartbeat_decides(settings, monkeypatch):
    """Where /proc is absent, finding no daemon process says nothing: a fresh heartbeat means a daemon."""
    instance = backfill.get_instance(settings)
    monkeypatch.setattr(backfill, "_processes", lambda: {})
    monkeypatch.setattr(backfill, "processes_visible", lambda: False)
    monkeypatch.setattr(backfill, "newest_heartbeat", lambda _i: time.time() - 5)
    assert backfill.daemon_running(instance, settings.dagster_home, observe_s=0)
    assert backfill.daemon_visible(instance, settings.dagster_home, since=time.time() - 10)
    assert not backfill.daemon_visible(instance, settings.dagster_home, since=time.time())
    monkeypatch.setattr(backfill, "newest_heartbeat", lambda _i: 0.0)
    assert not backfill.daemon_running(instance, settings.dagster_home, observe_s=0)
    # With /proc, no daemon process of this local instance means none, whatever an old heartbeat says.
    monkeypatch.setattr(backfill, "processes_visible", lambda: True)
    monkeypatch.setattr(backfill, "newest_heartbeat", lambda _i: time.time() - 5)
    assert not backfill.daemon_running(instance, settings.dagster_home, observe_s=0)
