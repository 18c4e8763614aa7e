"""`vidcat backfill`: batch the unbatched registry, add the partitions, launch one Dagster backfill.

The backfill is an asset backfill stored in the instance, exactly what the UI's "Materialize" button
creates: the daemon's backfill loop submits runs in dependency order (models after every batch they
learn from, predictions after the models) and the run queue caps how many run at once. `--wait`
starts a daemon for the duration when none is running, so the same command works on a laptop and
against a deployment whose daemon is already up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from ml.catalog.batching import BatchInfo, all_batches, create_batches
from ml.catalog.store import Catalog
from ml.config import Settings
from orchestration.partitions import BATCHES_PARTITION_NAME

REPO_ROOT = Path(__file__).resolve().parents[1]
TERMINAL_STATUSES = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


@dataclass
class BackfillLaunch:
    backfill_id: str | None
    new_batches: list[BatchInfo]
    partitions: list[str]
    assets: list[str]
    # Earlier vidcat backfills still requested: resumed by the daemon (``pending``), or cancelled
    # because this one re-does all of their work (``superseded``: --train and --rescore cover every batch).
    pending: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)


def backfill_partitions(backfill) -> set[str]:
    """The batch partitions an asset backfill targets."""
    data = backfill.asset_backfill_data
    if data is None:
        return set()
    keys: set[str] = set()
    for subset in data.target_subset.partitions_subsets_by_asset_key.values():
        keys |= set(subset.get_partition_keys())
    return keys


def recover_abandoned(instance: dg.DagsterInstance, log: Callable[[str], None] | None = None) -> set[str]:
    """With no daemon serving the instance: close what a killed daemon left open, return its batches.

    Called before a daemon is started for a local instance. Runs still marked queued, starting or
    started cannot be running (every run process of a local instance belongs to a daemon or `dagster
    dev`), so they are marked failed; requested vidcat backfills are marked cancelled, and their batches
    go into the new backfill. A new daemon would otherwise resume them beside the new backfill and
    score the same batches twice, and wait forever on runs nobody runs.
    """
    from dagster._core.execution.backfill import BulkActionStatus
    from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter

    say = log or (lambda m: None)
    abandoned = inflight_backfills(instance)
    ids = {b.backfill_id for b in abandoned}
    running = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    waiting = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED]
    stuck = list(instance.get_runs(filters=RunsFilter(statuses=running)))
    # Queued runs of the abandoned backfills would run beside the new one; a queued sensor run is left
    # to the new daemon (nothing else asks for its batch).
    stuck += [
        r for r in instance.get_runs(filters=RunsFilter(statuses=waiting)) if r.tags.get("dagster/backfill") in ids
    ]
    for run in stuck:
        instance.report_run_failed(run, "its daemon stopped (killed or crashed) before the run ended")
        say(f"marked run {run.run_id} failed: nothing is running it any more")
    batches: set[str] = set()
    for b in abandoned:
        batches |= backfill_partitions(b)
        instance.update_backfill(b.with_status(BulkActionStatus.CANCELED).with_end_timestamp(time.time()))
        say(f"closed backfill {b.backfill_id} abandoned by a stopped daemon; its batches join the new one")
    return batches


def inflight_backfills(instance: dg.DagsterInstance) -> list:
    """vidcat backfills the daemon has not finished: abandoned by a crash, or still running."""
    from dagster._core.execution.backfill import BulkActionStatus

    return [b for b in instance.get_backfills(status=BulkActionStatus.REQUESTED) if b.tags.get("vidcat/origin")]


def get_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent instance under the data root (runs stay visible in `make up`)."""
    settings.ensure_dirs()
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    return dg.DagsterInstance.get()


def backfill_selection(defs: dg.Definitions, train: bool) -> list[dg.AssetKey]:
    """Batch assets, plus (``train``) every unpartitioned asset: registry, models and thresholds."""
    graph = defs.resolve_asset_graph()
    keys = []
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if not node.is_materializable:
            continue
        if node.partitions_def is not None or train:
            keys.append(key)
    return sorted(keys, key=lambda k: k.to_user_string())


def launch_backfill(
    settings: Settings,
    catalog: Catalog,
    *,
    train: bool = False,
    rescore: bool = False,
    title: str | None = None,
    include: set[str] | None = None,
) -> BackfillLaunch:
    """Create batches for unbatched videos and one asset backfill over them (or all with ``rescore``)."""
    from dagster._core.definitions.partitions.context import partition_loading_context
    from dagster._core.definitions.selector import PartitionRangeSelector, PartitionsByAssetSelector, PartitionsSelector
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.utils import make_new_backfill_id
    from dagster._time import get_current_timestamp

    from orchestration.definitions import defs

    new = create_batches(catalog, settings.batch_size, origin="backfill", close_partial=True)
    instance = get_instance(settings)
    earlier = inflight_backfills(instance)
    superseded: list[str] = []
    if rescore or train:
        # This backfill covers every batch: an earlier one still requested (say, abandoned when its
        # daemon was killed) would otherwise be resumed beside it and score the same batches twice.
        for b in earlier:
            instance.update_backfill(b.with_status(BulkActionStatus.CANCELING))
            superseded.append(b.backfill_id)
    pending = [b.backfill_id for b in earlier if b.backfill_id not in superseded]
    existing = set(instance.get_dynamic_partitions(BATCHES_PARTITION_NAME))
    missing = [p for p in all_batches(catalog) if p not in existing]
    # Retraining learns from every batch and re-scores them all with the new models. Otherwise only new
    # batches, plus backfill batches whose partition was never added: a launch that died after
    # committing them (the sensor requests its own batches itself).
    if rescore or train:
        partitions = all_batches(catalog)
    else:
        stranded = set(missing) & set(backfill_batches(catalog))
        partitions = sorted({b.batch_id for b in new} | stranded | set(include or ()))
    if missing:
        instance.add_dynamic_partitions(BATCHES_PARTITION_NAME, missing)
    selection = backfill_selection(defs, train)
    if not partitions:
        return BackfillLaunch(None, new, [], [k.to_user_string() for k in selection], pending, superseded)
    graph = defs.resolve_asset_graph()
    selectors = []
    for key in selection:
        if graph.get(key).partitions_def is None:
            selectors.append(PartitionsByAssetSelector(asset_key=key, partitions=None))
        else:
            ranges = [PartitionRangeSelector(start=p, end=p) for p in partitions]
            selectors.append(PartitionsByAssetSelector(asset_key=key, partitions=PartitionsSelector(ranges=ranges)))
    backfill_id = make_new_backfill_id()
    with partition_loading_context(dynamic_partitions_store=instance):
        backfill = PartitionBackfill.from_partitions_by_assets(
            backfill_id=backfill_id,
            asset_graph=graph,
            backfill_timestamp=get_current_timestamp(),
            tags={"vidcat/origin": "backfill"},
            dynamic_partitions_store=instance,
            partitions_by_assets=selectors,
            title=title or f"vidcat backfill of {len(partitions)} batch(es)",
            description="Created by `vidcat backfill`.",
            run_config=None,
        )
    instance.add_backfill(backfill)
    return BackfillLaunch(backfill_id, new, partitions, [k.to_user_string() for k in selection], pending, superseded)


def backfill_batches(catalog: Catalog) -> list[str]:
    return [r[0] for r in catalog.query("SELECT batch_id FROM batches WHERE origin = 'backfill' ORDER BY batch_id")]


def local_daemon_pids(dagster_home: Path) -> list[int]:
    """Live `dagster-daemon` (or `dagster dev`) processes on this machine serving ``dagster_home``.

    Read from /proc (Linux): a process is a daemon of this instance when its command line runs the
    daemon or `dagster dev` and its environment's DAGSTER_HOME is this one. Empty where /proc is absent.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    home = str(Path(dagster_home).resolve())
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if (entry / "stat").read_text().split()[2] == "Z":
                continue
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        words = [a.decode("utf-8", "replace") for a in argv if a]
        is_daemon = any(w.endswith("dagster-daemon") for w in words) or (
            any(w.endswith("dagster") for w in words) and "dev" in words
        )
        if not is_daemon:
            continue
        values = dict(e.decode("utf-8", "replace").split("=", 1) for e in env if b"=" in e)
        if values.get("DAGSTER_HOME") and str(Path(values["DAGSTER_HOME"]).resolve()) == home:
            found.append(int(entry.name))
    return found


def daemon_running(instance: dg.DagsterInstance, dagster_home: Path | None = None, observe_s: float = 40.0) -> bool:
    """Whether a daemon serves this instance now, not whether one did a minute ago.

    A heartbeat is written every 30 s, so "a heartbeat less than 60 s old" also matches a daemon that
    was killed seconds ago: the old check then waited forever for a backfill nobody would run. Here a
    daemon process on this machine for this DAGSTER_HOME settles it; with the instance's default local
    storage nothing else can serve it, so none means none. With shared storage (a deployment), a
    heartbeat must be seen to *advance* within ``observe_s``.
    """
    if dagster_home is not None and local_daemon_pids(dagster_home):
        return True
    if dagster_home is not None and _local_storage(instance, dagster_home):
        return False

    def newest() -> float:
        beats = instance.get_daemon_heartbeats()
        return max((hb.timestamp for t, hb in beats.items() if t == "BACKFILL"), default=0.0)

    first = newest()
    if time.time() - first > 3 * observe_s:
        return False
    deadline = time.monotonic() + observe_s
    while time.monotonic() < deadline:
        time.sleep(2.0)
        if newest() > first:
            return True
    return False


def _local_storage(instance: dg.DagsterInstance, dagster_home: Path) -> bool:
    """The instance keeps its runs in SQLite under DAGSTER_HOME: only processes of this machine use it."""
    from dagster._core.storage.runs import SqliteRunStorage

    return isinstance(instance.run_storage, SqliteRunStorage) or "sqlite" in type(instance.run_storage).__name__.lower()


@contextlib.contextmanager
def running_daemon(settings: Settings, instance: dg.DagsterInstance, log: Callable[[str], None]) -> Iterator[None]:
    """A `dagster-daemon` for the duration, unless one is already serving this instance."""
    if daemon_running(instance, settings.dagster_home):
        log("using the dagster-daemon already running for this instance")
        yield
        return
    log_path = settings.dagster_home / "daemon.log"
    env = settings.child_env()
    daemon_bin = Path(sys.executable).with_name("dagster-daemon")
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [str(daemon_bin), "run", "-w", str(REPO_ROOT / "workspace.yaml")],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops its runs' launchers too
        )
    log(f"started dagster-daemon (pid {proc.pid}, log {log_path})")
    try:
        yield
    finally:
        stop_process_group(proc)


def stop_process_group(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM the process group started with ``start_new_session``, SIGKILL it after ``grace_s``.

    Dagster's daemon and `dagster dev` spawn children (code servers, run workers); stopping only the
    parent would leave them running.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_for_backfill(
    instance: dg.DagsterInstance,
    backfill_id: str,
    timeout_s: float,
    progress: Callable[[str], None] | None = None,
    poll_s: float = 2.0,
) -> str:
    """Block until the backfill ends; returns its final status name."""
    from dagster._core.storage.dagster_run import RunsFilter

    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        backfill = instance.get_backfill(backfill_id)
        status = backfill.status.value if backfill else "MISSING"
        runs = instance.get_runs(filters=RunsFilter.for_backfill(backfill_id))
        counts: dict[str, int] = {}
        for r in runs:
            counts[r.status.value] = counts.get(r.status.value, 0) + 1
        line = f"backfill {backfill_id}: {status}; runs " + ", ".join(
            f"{k.lower()} {v}" for k, v in sorted(counts.items())
        )
        if progress and line != last:
            progress(line)
            last = line
        in_flight = any(r.status.value in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING") for r in runs)
        if status in TERMINAL_STATUSES and not in_flight:
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"backfill {backfill_id} still {status} after {timeout_s:.0f}s; follow it in the UI (`make up`)"
            )
        time.sleep(poll_s)


def run_failures(instance: dg.DagsterInstance, backfill_id: str) -> Sequence[str]:
    from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter

    runs = instance.get_runs(
        filters=RunsFilter(tags={"dagster/backfill": backfill_id}, statuses=[DagsterRunStatus.FAILURE])
    )
    return [r.run_id for r in runs]
