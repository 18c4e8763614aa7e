"""`vidcat backfill`: batch the unbatched registry, add the partitions, launch one Dagster backfill.

The backfill is an asset backfill stored in the instance, exactly what the UI's "Materialize" button
creates: the daemon's backfill loop submits runs in dependency order (models after every batch they
learn from, predictions after the models) and the run queue caps how many run at once. `--wait`
starts a daemon for the duration when none is running, so the same command works on a laptop and
against a deployment whose daemon is already up.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from assets.core.partitions import BATCHES_PARTITION_NAME
from ml.catalog.batching import BatchInfo, UnfinishedBatch, all_batches, create_batches, unfinished_batches
from ml.catalog.store import Catalog
from ml.config import Settings

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
    # Batches with videos still without a result that no run or backfill was working on: re-run here.
    unfinished: list[str] = field(default_factory=list)
    # Batches with videos still without a result that a run or backfill is working on, and what holds each.
    busy: dict[str, str] = field(default_factory=dict)
    removed_temporaries: list[str] = field(default_factory=list)


# A sensor batch is committed in the sensor's tick and its run is created just after the tick: until
# then no run names it. Younger unfinished sensor batches are left to the sensor while a daemon runs.
SENSOR_BATCH_GRACE_S = 300.0
# A failed run marked for an automatic retry is the daemon's for this long; after that its batch is owed.
RETRY_GRACE_S = 600.0
IN_FLIGHT_STATUSES = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")


@contextlib.contextmanager
def launch_lock(settings: Settings) -> Iterator[None]:
    """Serializes what `vidcat backfill` and `vidcat up` decide from the instance's state (recover a crash,
    pick unfinished batches, start a daemon) across the processes of this machine."""
    import fcntl

    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    with open(settings.dagster_home / "vidcat-launch.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def backfill_partitions(backfill) -> set[str]:
    """The batch partitions an asset backfill targets."""
    data = backfill.asset_backfill_data
    if data is None:
        return set()
    keys: set[str] = set()
    for subset in data.target_subset.partitions_subsets_by_asset_key.values():
        keys |= set(subset.get_partition_keys())
    return keys


@dataclass
class Recovery:
    """What a stopped daemon left unfinished: the batches of its backfills and runs, and whether one of
    those backfills also trained models (resuming it must then train too)."""

    batches: set[str] = field(default_factory=set)
    train: bool = False


def recover_abandoned(instance: dg.DagsterInstance, log: Callable[[str], None] | None = None) -> Recovery:
    """With no daemon serving the instance: close what a killed daemon left open, return its batches.

    Called before a daemon is started for a local instance. Code servers of this instance that outlived
    their daemon are stopped with their run workers (nothing would watch those runs, and the new
    backfill re-runs their batches: two runs of one batch must never overlap); a code server whose host
    process still runs (a standalone `dagster-webserver`) is not theirs and is left alone. Runs a daemon
    launched (`launched_by_daemon`) and still marked starting or started cannot be running any more, so
    they are marked failed, and neither they nor failed runs still waiting for an automatic retry are
    retried by the next daemon: their batches belong to the new backfill. A run executed in its own
    process (`dagster asset materialize`) needs no daemon and may well be running: it is left alone.
    Requested vidcat backfills are marked cancelled, and their batches go into the new backfill. A new
    daemon would otherwise resume them beside the new backfill and score the same batches twice, and
    wait forever on runs nobody runs.
    """
    from orchestration.dagster_private import WILL_RETRY_TAG, BulkActionStatus

    say = log or (lambda m: None)
    for pid in stop_orphaned_workers(Path(instance.root_directory)):
        say(f"stopped process {pid}: a code server or run worker whose daemon is gone")
    abandoned = inflight_backfills(instance)
    ids = {b.backfill_id for b in abandoned}
    running = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
    waiting = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED]
    stuck = [r for r in instance.get_runs(filters=dg.RunsFilter(statuses=running)) if launched_by_daemon(r)]
    # Queued runs of the abandoned backfills would run beside the new one; a queued sensor run is left
    # to the new daemon (nothing else asks for its batch).
    stuck += [
        r for r in instance.get_runs(filters=dg.RunsFilter(statuses=waiting)) if r.tags.get("dagster/backfill") in ids
    ]
    found = Recovery()
    for run in stuck:
        instance.report_run_failed(run, "its daemon stopped (killed or crashed) before the run ended")
        instance.add_run_tags(run.run_id, {WILL_RETRY_TAG: "false"})
        found.batches |= set(run_batches(run, all_partitions(instance)))
        say(f"marked run {run.run_id} failed: nothing is running it any more")
    failed = dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], tags={WILL_RETRY_TAG: "true"})
    for run in instance.get_runs(filters=failed):
        if run.is_complete_and_waiting_to_retry:
            instance.add_run_tags(run.run_id, {WILL_RETRY_TAG: "false"})
            found.batches |= set(run_batches(run, all_partitions(instance)))
            say(f"run {run.run_id} will not be retried by the daemon: its batches are re-run by this backfill")
    for b in abandoned:
        found.batches |= backfill_partitions(b)
        found.train |= b.tags.get("vidcat/train") == "true"
        instance.update_backfill(b.with_status(BulkActionStatus.CANCELED).with_end_timestamp(time.time()))
        say(f"closed backfill {b.backfill_id} abandoned by a stopped daemon; its batches join the new one")
    return found


def launched_by_daemon(run) -> bool:
    """Whether a run was started through a run launcher, as the daemon starts runs, and so dies with it.

    With the run queue (DAGSTER_HOME/dagster.yaml) only the daemon launches runs: it marks one STARTING
    and has a code server start it, and the default launcher then tags it with that server's address
    (``GRPC_INFO_TAG``). A run executed in process (`dagster asset materialize`, `materialize()` in a
    script) goes from NOT_STARTED to STARTED in the process that runs it, with no such tag, and lives
    or dies with that process, not with any daemon.
    """
    from orchestration.dagster_private import GRPC_INFO_TAG

    return run.status == dg.DagsterRunStatus.STARTING or GRPC_INFO_TAG in run.tags


def all_partitions(instance: dg.DagsterInstance) -> list[str]:
    return sorted(instance.get_dynamic_partitions(BATCHES_PARTITION_NAME))


def stop_orphaned_workers(dagster_home: Path, grace_s: float = 5.0) -> list[int]:
    """SIGKILL the code servers serving ``dagster_home`` whose daemon is gone, and their descendants
    (run workers, decode workers). Called only when no daemon of this instance runs (Linux /proc)."""
    procs = _processes()
    doomed = orphaned_code_servers(procs, dagster_home)
    for pid in doomed:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(p) for p in doomed):
        time.sleep(0.1)
    return doomed


def orphaned_code_servers(procs: dict[int, tuple[int, list[str], dict[str, str]]], dagster_home: Path) -> list[int]:
    """Code servers of ``dagster_home`` that lost the process that started them, with their descendants.

    A daemon (or `dagster dev`, or a `dagster-webserver`) starts its code servers with ``--heartbeat``
    and is their parent; when it is killed they are re-parented (to pid 1 or a subreaper) and go on
    running the runs they started. One whose parent is still a live Dagster process belongs to that
    process (a standalone webserver's, say) and is kept, as is a code server started by hand (no
    ``--heartbeat``): nothing of a dead daemon runs there.
    """
    home = str(Path(dagster_home).resolve())
    me = os.getpid()

    def orphaned(pid: int, ppid: int, argv: list[str], env: dict[str, str]) -> bool:
        if pid == me or not _is_code_server(argv) or "--heartbeat" not in argv:
            return False
        if not env.get("DAGSTER_HOME") or str(Path(env["DAGSTER_HOME"]).resolve()) != home:
            return False
        parent = procs.get(ppid)
        return ppid <= 1 or parent is None or not _is_dagster_host(parent[1])

    servers = [pid for pid, (ppid, argv, env) in procs.items() if orphaned(pid, ppid, argv, env)]
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    doomed: list[int] = []
    todo = list(servers)
    while todo:
        pid = todo.pop()
        if pid in doomed or pid == me:
            continue
        doomed.append(pid)
        todo += children.get(pid, [])
    return doomed


def _is_dagster_host(argv: list[str]) -> bool:
    """A process that may start and watch code servers: the daemon, `dagster dev`, the webserver, a
    `dagster code-server start` proxy. A subreaper or init that adopted an orphan is none of these."""
    return any(Path(w).name.startswith("dagster") for w in argv)


def _is_code_server(argv: list[str]) -> bool:
    words = " ".join(argv)
    return "dagster" in words and ("api grpc" in words or "code-server start" in words)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _processes() -> dict[int, tuple[int, list[str], dict[str, str]]]:
    """pid -> (parent pid, argv, environment) of every process we may read (Linux /proc; empty elsewhere)."""
    out: dict[int, tuple[int, list[str], dict[str, str]]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return out
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if stat[0] == "Z":
                continue
            argv = [a.decode("utf-8", "replace") for a in (entry / "cmdline").read_bytes().split(b"\0") if a]
            raw = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue  # gone meanwhile, or not ours to read
        env = dict(e.decode("utf-8", "replace").split("=", 1) for e in raw if b"=" in e)
        out[int(entry.name)] = (int(stat[1]), argv, env)
    return out


def busy_batches(
    instance: dg.DagsterInstance, batch_ids: Sequence[str], daemon_alive: bool, ignore: Collection[str] = ()
) -> dict[str, str]:
    """Which of ``batch_ids`` a backfill or a run is working on, or is about to, and what holds each.

    Held: the targets of every requested (or cancelling) backfill, vidcat's or the UI's; the batches of
    every run not finished; and, while a daemon runs, those of failed runs whose automatic retry has not
    been launched yet (for ``RETRY_GRACE_S``). A backfill packs a range of batches into a run
    (``dagster/asset_partition_range_start`` .. ``_end``): batch ids sort in creation order, so the
    range is read lexically, which errs on the side of "held". Backfills in ``ignore`` (cancelled by the
    caller: they launch nothing more) hold nothing by themselves, only through their runs.
    """
    from orchestration.dagster_private import WILL_RETRY_TAG, BulkActionStatus

    wanted = sorted(set(batch_ids))
    if not wanted:
        return {}
    held: dict[str, str] = {}
    for status in (BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING):
        for b in instance.get_backfills(status=status):
            if b.backfill_id in ignore:
                continue
            for p in backfill_partitions(b) & set(wanted):
                held.setdefault(p, f"backfill {b.backfill_id}")
    runs = [
        (r, "run")
        for r in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus(s) for s in IN_FLIGHT_STATUSES]))
    ]
    if daemon_alive:
        since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=RETRY_GRACE_S)
        failed = dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.FAILURE], tags={WILL_RETRY_TAG: "true"}, updated_after=since
        )
        runs += [(r, "retry of run") for r in instance.get_runs(filters=failed) if r.is_complete_and_waiting_to_retry]
    for run, what in runs:
        for p in run_batches(run, wanted):
            held.setdefault(p, f"{what} {run.run_id}")
    return held


def run_batches(run, ordered: Sequence[str]) -> list[str]:
    """The batches of ``ordered`` a run covers: its partition, or its range of partitions."""
    from orchestration.dagster_private import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
        PARTITION_NAME_TAG,
    )

    tags = run.tags
    if tags.get(PARTITION_NAME_TAG):
        return [tags[PARTITION_NAME_TAG]] if tags[PARTITION_NAME_TAG] in ordered else []
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if start and end:
        return [b for b in ordered if start <= b <= end]
    return []


def failed_steps(instance: dg.DagsterInstance) -> dict[str, list[str]]:
    """Batch -> the partitioned assets whose last attempt on it failed, from Dagster's partition status,
    and the checked assets that the failure must be re-run from.

    A step is failed when a run that planned it ended failed before materializing it: an error in the
    asset, a step skipped because one before it failed or a blocking check stopped it, a run killed (and
    marked failed by its daemon or by `recover_abandoned`). The steps after fusion leave no other trace of
    not having run: `video_results` is complete once fusion ran.

    A blocking check that fails leaves its asset *materialized* and only the steps after it failed.
    Re-running those alone would skip the check and serve what it rejected (the export of predictions
    `prediction_expectations` refused), so a parent of a failed step whose blocking check on the batch
    did not pass (failed with ERROR, never evaluated, or evaluated on an older materialization) counts as
    failed too: the re-run starts at it, with its check.
    """
    from orchestration.definitions import defs

    ordered = all_partitions(instance)
    if not ordered or not _any_run_failed(instance):
        return {}
    graph = defs.resolve_asset_graph()
    out: dict[str, list[str]] = {}
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
            node = graph.get(key)
            if node.partitions_def is None or not node.is_materializable:
                continue
            statuses = instance.get_status_by_partition(key, ordered, node.partitions_def) or {}
            for batch, status in statuses.items():
                if status == dg.AssetPartitionStatus.FAILED:
                    out.setdefault(batch, []).append(key.to_user_string())
    unchecked = _unpassed_blocking_checks(instance, graph, sorted(out))
    for batch, steps in out.items():
        parents = {p for s in steps for p in graph.get(dg.AssetKey.from_user_string(s)).parent_keys}
        redo = {k.to_user_string() for k in parents if (k, batch) in unchecked}
        steps[:] = sorted(set(steps) | redo)
    return out


def _any_run_failed(instance: dg.DagsterInstance) -> bool:
    """A step fails only in a run that failed (or was cancelled): on an instance where none ever did, no
    asset's partition status need be read, nor the definitions loaded. Once one has (even one a later run
    made good), every call reads them: which failures still count is what the full read decides."""
    ended_badly = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
    return bool(instance.get_runs(filters=dg.RunsFilter(statuses=ended_badly), limit=1))


def _unpassed_blocking_checks(instance: dg.DagsterInstance, graph, batches: Sequence[str]) -> set[tuple]:
    """(asset key, batch) where a blocking check of that partitioned asset did not pass on the batch's
    current materialization: its last execution failed with ERROR, or was planned and never evaluated
    (the check raised, the run died), or targets an older materialization. A check never run on the
    batch says nothing, and a WARN failure blocked nothing: neither asks for a re-run.

    A run over several batches (every partitioned asset has a multi-run backfill policy) records one
    evaluation with no partition, and leaves each batch's row planned: the evaluation of the planned run
    decides for every batch of it."""
    if not batches:
        return set()
    keys = [
        check
        for key in graph.get_all_asset_keys()
        if graph.get(key).partitions_def is not None
        for check in graph.get(key).check_keys
        if graph.get_check_spec(check).blocking
    ]
    if not keys:
        return set()
    infos = instance.event_log_storage.get_asset_check_partition_info(keys, partition_keys=list(batches))
    evaluations: dict[str, dict[tuple, bool]] = {}
    unpassed = set()
    for info in infos:
        status = info.latest_execution_status.value
        if status == "SUCCEEDED" and info.is_current:
            continue
        if status in ("PLANNED", "FAILED"):
            run_id = info.latest_planned_run_id
            if run_id not in evaluations:
                evaluations[run_id] = _check_evaluations(instance, run_id)
            passed = evaluations[run_id].get((info.check_key, info.partition_key))
            if passed is not None and passed and info.is_current:
                continue  # failed with WARN on this batch alone
            passed = evaluations[run_id].get((info.check_key, None))
            if passed and _last_materialized_by(instance, info.check_key.asset_key, info.partition_key) == run_id:
                continue  # passed over the run's range, and no later run materialized the batch
        unpassed.add((info.check_key.asset_key, info.partition_key))
    return unpassed


def _check_evaluations(instance: dg.DagsterInstance, run_id: str) -> dict[tuple, bool]:
    """(check key, partition or None) -> passed (or failed with WARN) of a run's last check evaluations:
    what the per-batch rows of a run over several batches do not say."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    out = {}
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        ok = evaluation.passed or evaluation.severity == dg.AssetCheckSeverity.WARN
        out[(evaluation.asset_check_key, evaluation.partition)] = ok
    return out


def _last_materialized_by(instance: dg.DagsterInstance, key: dg.AssetKey, batch: str | None) -> str | None:
    """The run of the batch's latest materialization of ``key``. Run ids, not storage ids: a SQLite
    instance numbers a run's events apart from the index that asset records come from."""
    if batch is None:
        return None
    found = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, asset_partitions=[batch]), limit=1)
    return found.records[0].run_id if found.records else None


def incomplete_batches(catalog: Catalog, instance: dg.DagsterInstance) -> list[UnfinishedBatch]:
    """Batches with videos still without a result, or without one under the current fusion, or with a
    step whose last attempt failed."""
    from ml.catalog.model_registry import latest_model

    fusion = latest_model(catalog, "fusion", required=False)
    return unfinished_batches(catalog, failed_steps(instance), fusion.version if fusion else None)


# Where a batch scored by replaced models is re-run from: the steps that read the models (the probe and
# the frames do not), and everything after them.
RESCORE_STEPS = ("text_predictions", "visual_predictions")


def owed_batches(
    catalog: Catalog,
    instance: dg.DagsterInstance,
    daemon_alive: bool,
    ignore: Collection[str] = (),
    unfinished: Sequence[UnfinishedBatch] | None = None,
) -> tuple[list[UnfinishedBatch], dict[str, str]]:
    """Incomplete batches (`incomplete_batches`, unless the caller read them already), split into those
    nobody works on (owed: a plain `vidcat backfill` re-runs them) and those a run or backfill holds
    (with what holds them)."""
    if unfinished is None:
        unfinished = incomplete_batches(catalog, instance)
    busy = busy_batches(instance, [u.batch_id for u in unfinished], daemon_alive, ignore)
    owed = [u for u in unfinished if u.batch_id not in busy and not _sensor_starting(u, daemon_alive)]
    return owed, busy


def _sensor_starting(batch: UnfinishedBatch, daemon_alive: bool) -> bool:
    """A young sensor batch with videos still without a result: the daemon that ran the tick is creating
    its run. Results under an older fusion, or a failed step, mean a run has been, and nothing else
    will re-run the batch, however young."""
    return daemon_alive and batch.origin == "sensor" and batch.age_s < SENSOR_BATCH_GRACE_S and batch.without_result > 0


def unfinished_report(settings: Settings, catalog: Catalog) -> list[dict[str, object]]:
    """Incomplete batches (videos without a result, or none under the current fusion, or a failed step),
    each with its state: held by a run or backfill, or owed (and then what to run). For `vidcat status`."""
    if not all_batches(catalog):
        return []
    instance = get_instance(settings)
    unfinished = incomplete_batches(catalog, instance)
    if not unfinished:
        return []
    alive = daemon_running(instance, settings.dagster_home, observe_s=0.0)
    owed, busy = owed_batches(catalog, instance, alive, unfinished=unfinished)
    owed_ids = {u.batch_id for u in owed}
    rows = []
    for u in unfinished:
        if u.batch_id in busy:
            state = f"in progress: {busy[u.batch_id]}"
        elif u.batch_id in owed_ids and (u.without_result or u.failed_steps):
            state = "owed (its run died or failed): run `vidcat backfill --wait`"
        elif u.batch_id in owed_ids:
            state = "owed (scored by models since replaced): run `vidcat backfill --wait`"
        else:
            state = "new upload batch: the sensor is starting its run"
        rows.append(
            {
                "batch": u.batch_id,
                "origin": u.origin,
                "videos": u.n_videos,
                "without_result": u.without_result,
                "not_current": u.stale,
                "failed_steps": ", ".join(u.failed_steps) or "-",
                "state": state,
            }
        )
    return rows


def shard_temporaries(settings: Settings) -> dict[str, list[Path]]:
    """Temporary shard files on disk (``.<batch>.<random>.parquet.tmp``, ml/frames/embedding_store.py), by batch."""
    found: dict[str, list[Path]] = {}
    for tmp in sorted(settings.embeddings_dir.glob("*/.*.parquet.tmp")):
        batch = tmp.name[1:].split(".", 1)[0]
        found.setdefault(batch, []).append(tmp)
    return found


def remove_stale_temporaries(settings: Settings, busy: Iterable[str]) -> list[str]:
    """Delete shard temporaries of batches no run is writing: what writers killed mid-shard left behind."""
    held = set(busy)
    removed = []
    for batch, paths in shard_temporaries(settings).items():
        if batch in held:
            continue
        for tmp in paths:
            tmp.unlink(missing_ok=True)
            removed.append(str(tmp))
    return removed


def resume_after_crash(
    settings: Settings, catalog: Catalog, instance: dg.DagsterInstance, log: Callable[[str], None]
) -> BackfillLaunch | None:
    """Before `vidcat up` starts its daemon: close what a stopped one left and put exactly the work it
    interrupted (its backfills' batches, its runs' batches) into one new backfill, so a restart finishes it.

    Batches that failed earlier for their own reasons are not re-run here (each restart would re-run a
    batch that fails every time); `vidcat backfill --wait` re-runs every unfinished batch.
    """
    recovery = recover_abandoned(instance, log)
    if not recovery.batches:
        return None
    launch = launch_backfill(
        settings,
        catalog,
        train=recovery.train,
        include=recovery.batches,
        daemon_alive=False,
        batch_new=False,
        rerun_unfinished=False,
        title=f"vidcat: resumed after a crash ({len(recovery.batches)} batch(es))",
    )
    if launch.backfill_id:
        log(
            f"resumed {len(launch.partitions)} batch(es) the stopped daemon left unfinished: "
            f"backfill {launch.backfill_id}"
        )
    return launch


def inflight_backfills(instance: dg.DagsterInstance) -> list:
    """vidcat backfills the daemon has not finished: abandoned by a crash, or still running."""
    from orchestration.dagster_private import BulkActionStatus

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
    daemon_alive: bool = True,
    batch_new: bool = True,
    rerun_unfinished: bool = True,
    rerun_only: Collection[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> BackfillLaunch:
    """Create batches for unbatched videos and one asset backfill over them and over every batch whose
    videos still lack a result while nothing works on it (or over all batches with ``rescore``).

    ``daemon_alive``: whether a daemon serves the instance (then a failed run about to be retried, or a
    sensor batch whose run is being requested, is left to it). ``batch_new`` false: leave unbatched videos
    to the sensor; ``rerun_unfinished`` false: only ``include`` and stranded batches (`vidcat up` resuming
    what a crash interrupted); ``rerun_only``: re-run only these of the unfinished batches (`vidcat backfill
    --wait` re-running what its own backfill left), by the same rule as every other re-run: the whole batch
    when videos lack a result, else its failed steps (from a blocking check that did not pass) onwards.
    ``log`` hears what takes time here (stopping the backfills a --train or --rescore supersedes).
    """
    from orchestration.dagster_private import (
        PartitionBackfill,
        PartitionRangeSelector,
        PartitionsByAssetSelector,
        PartitionsSelector,
        make_new_backfill_id,
    )
    from orchestration.definitions import defs

    new = create_batches(catalog, settings.batch_size, origin="backfill", close_partial=True) if batch_new else []
    instance = get_instance(settings)
    earlier = inflight_backfills(instance)
    superseded: list[str] = []
    if rescore or train:
        # This backfill covers every batch: an earlier one still requested (say, abandoned when its
        # daemon was killed) would otherwise be resumed beside it and score the same batches twice.
        superseded = supersede(instance, earlier, daemon_alive, log=log)
    pending = [b.backfill_id for b in earlier if b.backfill_id not in superseded]
    existing = set(instance.get_dynamic_partitions(BATCHES_PARTITION_NAME))
    batches = all_batches(catalog)
    missing = [p for p in batches if p not in existing]
    # Retraining learns from every batch and re-scores them all with the new models. Otherwise only new
    # batches, plus backfill batches whose partition was never added: a launch that died after
    # committing them (the sensor requests its own batches itself).
    # Incomplete batches (videos without a result, or a step whose last attempt failed: a run killed or
    # failed) that nothing works on are re-run, so a plain re-run of this command completes them.
    owed, busy = owed_batches(catalog, instance, daemon_alive, superseded)
    if not rerun_unfinished:
        owed = []
    elif rerun_only is not None:
        owed = [u for u in owed if u.batch_id in set(rerun_only)]
    temporaries = shard_temporaries(settings)
    busy |= busy_batches(instance, [b for b in temporaries if b not in busy], daemon_alive, superseded)
    steps: dict[str, set[str]] = {}
    if rescore or train:
        # Every batch but those a live run (or another backfill) still works on: two runs of one batch
        # must never overlap (the frame step's temporaries, the serving store's order).
        rest = [b for b in batches if b not in busy]
        busy |= busy_batches(instance, rest, daemon_alive, superseded)
        partitions = [b for b in rest if b not in busy]
    else:
        stranded = set(missing) & set(all_batches(catalog, origin="backfill"))
        whole = {b.batch_id for b in new} | stranded | set(include or ())
        partitions = sorted(whole | {u.batch_id for u in owed})
        # A batch whose videos all have results but a later step failed re-runs that step and what
        # depends on it, not its probe, frames and models; one scored by replaced models re-runs from
        # its predictions.
        steps = {
            u.batch_id: set(u.failed_steps) | (set(RESCORE_STEPS) if u.stale else set())
            for u in owed
            if (u.failed_steps or u.stale) and not u.without_result
        }
        steps = {b: s for b, s in steps.items() if b not in whole}
    removed = remove_stale_temporaries(settings, busy)
    if missing:
        instance.add_dynamic_partitions(BATCHES_PARTITION_NAME, missing)
    selection = backfill_selection(defs, train)
    unfinished = sorted({u.batch_id for u in owed} - {b.batch_id for b in new})
    busy = {b: why for b, why in busy.items() if b not in partitions}
    if not partitions:
        return BackfillLaunch(
            None, new, [], [k.to_user_string() for k in selection], pending, superseded, [], busy, removed
        )
    graph = defs.resolve_asset_graph()
    redo = {b: _with_downstream(graph, s) for b, s in steps.items()}
    selectors = []
    for key in selection:
        if graph.get(key).partitions_def is None:
            selectors.append(PartitionsByAssetSelector(asset_key=key, partitions=None))
            continue
        name = key.to_user_string()
        mine = [p for p in partitions if p not in redo or name in redo[p]]
        if mine:
            ranges = [PartitionRangeSelector(start=p, end=p) for p in mine]
            selectors.append(PartitionsByAssetSelector(asset_key=key, partitions=PartitionsSelector(ranges=ranges)))
    backfill_id = make_new_backfill_id()
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        backfill = PartitionBackfill.from_partitions_by_assets(
            backfill_id=backfill_id,
            asset_graph=graph,
            backfill_timestamp=time.time(),
            tags={"vidcat/origin": "backfill", "vidcat/train": str(train).lower()},
            dynamic_partitions_store=instance,
            partitions_by_assets=selectors,
            title=title or f"vidcat backfill of {len(partitions)} batch(es)",
            description="Created by `vidcat backfill`.",
            run_config=None,
        )
    instance.add_backfill(backfill)
    return BackfillLaunch(
        backfill_id,
        new,
        partitions,
        [k.to_user_string() for k in selection],
        pending,
        superseded,
        unfinished,
        busy,
        removed,
    )


@dataclass
class Launched:
    launch: BackfillLaunch
    daemon_alive: bool  # a daemon served the instance when the command decided
    started_daemon: bool  # this command started one, stopped when the caller's stack closes


def launch_under_lock(
    stack: contextlib.ExitStack,
    settings: Settings,
    catalog: Catalog,
    instance: dg.DagsterInstance,
    log: Callable[[str], None],
    *,
    wait: bool,
    train: bool = False,
    rescore: bool = False,
    title: str | None = None,
) -> Launched:
    """What `vidcat backfill` and `vidcat demo` decide before they launch, under one hold of the launch lock.

    Whether a daemon runs; with ``wait`` and none, close what a dead one left (its runs would otherwise
    stay "started" and hold their batches forever, and a --train would wait for a daemon that does not
    exist) and put its batches into this backfill; the launch; and, with ``wait``, a daemon for the
    caller's duration (entered on ``stack``), started before the lock is released so that no other
    command takes it for missing.
    """
    with launch_lock(settings):
        alive = daemon_running(instance, settings.dagster_home)
        include = recover_abandoned(instance, log).batches if wait and not alive else set()
        launch = launch_backfill(
            settings, catalog, train=train, rescore=rescore, title=title, include=include, daemon_alive=alive, log=log
        )
        started = False
        if wait and (launch.backfill_id or launch.pending):
            started = stack.enter_context(running_daemon(settings, instance, log, known_running=alive))
    return Launched(launch, alive, started)


def left_out_note(busy: dict[str, str]) -> str:
    """What --train or --rescore says of the batches it left out because something runs them now."""
    held = sorted(busy)
    return (
        f"left out {len(held)} batch(es) that a run or backfill is working on now (never two runs of a batch at "
        f"once): {', '.join(held[:10])}{' ...' if len(held) > 10 else ''}; once they finish, `vidcat backfill "
        "--wait` re-scores those whose results are not under the current models"
    )


def _with_downstream(graph, names: set[str]) -> set[str]:
    """The named assets and every asset downstream of them, as user strings."""
    todo = [dg.AssetKey.from_user_string(n) for n in names]
    seen: set[dg.AssetKey] = set()
    while todo:
        key = todo.pop()
        if key in seen or not graph.has(key):
            continue
        seen.add(key)
        todo += list(graph.get(key).child_keys)
    return {k.to_user_string() for k in seen}


# How long a --rescore or --train waits for the backfills it supersedes to stop their runs.
SUPERSEDE_WAIT_S = 120.0


def supersede(
    instance: dg.DagsterInstance,
    backfills: Sequence,
    daemon_alive: bool,
    poll_s: float = 1.0,
    log: Callable[[str], None] | None = None,
) -> list[str]:
    """Cancel ``backfills`` and wait (up to ``SUPERSEDE_WAIT_S``) until each is CANCELED: the daemon
    marks it so once it has stopped launching and its runs have ended, so the new backfill's runs do not
    overlap them. One with no run in flight, or with no daemon to move it on, is marked CANCELED here.
    Batches of runs still going after the wait are left out of the new backfill by the caller."""
    from orchestration.dagster_private import BulkActionStatus

    statuses = [dg.DagsterRunStatus(s) for s in IN_FLIGHT_STATUSES]
    waiting = []
    for b in backfills:
        live = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": b.backfill_id}, statuses=statuses))
        if live and daemon_alive:
            instance.update_backfill(b.with_status(BulkActionStatus.CANCELING))
            waiting.append(b.backfill_id)
        else:
            instance.update_backfill(b.with_status(BulkActionStatus.CANCELED).with_end_timestamp(time.time()))
    if waiting and log is not None:
        log(
            f"cancelling {len(waiting)} earlier backfill(s) this one re-does ({', '.join(waiting)}): waiting up to "
            f"{SUPERSEDE_WAIT_S:.0f} s for their runs to stop, so that no batch runs twice at once"
        )
    deadline = time.monotonic() + SUPERSEDE_WAIT_S
    while waiting and time.monotonic() < deadline:
        time.sleep(poll_s)
        waiting = [i for i in waiting if (b := instance.get_backfill(i)) and b.status == BulkActionStatus.CANCELING]
    return [b.backfill_id for b in backfills]


def local_daemon_pids(dagster_home: Path) -> list[int]:
    """Live `dagster-daemon` (or `dagster dev`) processes on this machine serving ``dagster_home``.

    Read from /proc (Linux): a process is a daemon of this instance when its command line runs the
    daemon (`dagster-daemon run`, or `python -m dagster._daemon run` under `dagster dev`) or `dagster dev`,
    and its environment's DAGSTER_HOME is this one. Empty where /proc is absent.
    """
    home = str(Path(dagster_home).resolve())
    found = []
    for pid, (_, words, env) in _processes().items():
        if pid == os.getpid():
            continue
        is_daemon = (
            any(w.endswith("dagster-daemon") for w in words)
            or (any(w.endswith("dagster") for w in words) and "dev" in words)
            or ("dagster._daemon" in words and "run" in words)
        )
        if not is_daemon:
            continue
        if env.get("DAGSTER_HOME") and str(Path(env["DAGSTER_HOME"]).resolve()) == home:
            found.append(pid)
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
    if dagster_home is not None and processes_visible() and _local_storage(instance, dagster_home):
        return False
    # Without /proc the process table says nothing (no daemon found is not no daemon): the heartbeat decides.
    first = newest_heartbeat(instance)
    if observe_s <= 0:  # no time to watch: a heartbeat from the last minute will do
        return time.time() - first < 60.0
    if time.time() - first > 3 * observe_s:
        return False
    deadline = time.monotonic() + observe_s
    while time.monotonic() < deadline:
        time.sleep(2.0)
        if newest_heartbeat(instance) > first:
            return True
    return False


def processes_visible() -> bool:
    """Whether this machine's process table can be read (Linux /proc): only then does finding no daemon
    process mean that none runs."""
    return Path("/proc").is_dir()


def newest_heartbeat(instance: dg.DagsterInstance) -> float:
    """When the daemon's backfill loop last wrote its heartbeat (0 for never)."""
    beats = instance.get_daemon_heartbeats()
    return max((hb.timestamp for t, hb in beats.items() if t == "BACKFILL"), default=0.0)


def daemon_visible(instance: dg.DagsterInstance, dagster_home: Path, since: float) -> bool:
    """Whether a daemon started at ``since`` (``time.time()``) is now seen by `daemon_running` in
    another command: as a process where /proc is readable (at once), by a fresh heartbeat elsewhere.

    A command that starts a daemon under `launch_lock` holds the lock until then, so the next command
    to take it finds the daemon instead of recovering its runs as a dead one's or starting a second.
    """
    if processes_visible():
        return bool(local_daemon_pids(dagster_home))
    return newest_heartbeat(instance) > since


# How long a command that started a daemon holds the launch lock waiting for it to show (`daemon_visible`).
DAEMON_VISIBLE_WAIT_S = 120.0


def _local_storage(instance: dg.DagsterInstance, dagster_home: Path) -> bool:
    """The instance keeps its runs in SQLite under DAGSTER_HOME: only processes of this machine use it."""
    from orchestration.dagster_private import SqliteRunStorage

    return isinstance(instance.run_storage, SqliteRunStorage) or "sqlite" in type(instance.run_storage).__name__.lower()


def visibility_poll(
    instance: dg.DagsterInstance, dagster_home: Path, since: float, wait_s: float = DAEMON_VISIBLE_WAIT_S
) -> Callable[[], bool]:
    """A poll that turns true once a daemon started at ``since`` is visible to other commands
    (`daemon_visible`), or after ``wait_s``: until then its starter holds the launch lock."""
    deadline = time.monotonic() + wait_s
    return lambda: daemon_visible(instance, dagster_home, since) or time.monotonic() > deadline


@contextlib.contextmanager
def running_daemon(
    settings: Settings,
    instance: dg.DagsterInstance,
    log: Callable[[str], None],
    known_running: bool | None = None,
) -> Iterator[bool]:
    """A `dagster-daemon` for the duration, unless one is already serving this instance.

    ``known_running``: whether one is, as the caller found out under the launch lock it still holds (no
    other command can have started one since); None asks ``daemon_running``, which without /proc can
    watch heartbeats for up to 40 s.

    Yields whether it started one (then stopped on exit: what it must record, it records before).
    The daemon runs in its own session, so a signal to this command does not reach it: SIGTERM, SIGINT
    and SIGHUP are turned into ``SystemExit`` meanwhile (the default SIGTERM and SIGHUP skip
    ``finally``), the daemon is stopped with its runs on the way out, and the command says so. While
    it stops, further stop signals are ignored: a second Ctrl-C must not leave its runs behind.
    """
    from orchestration.supervise import on_stop_signals, signal_name, stop_group

    alive = daemon_running(instance, settings.dagster_home) if known_running is None else known_running
    if alive:
        log("using the dagster-daemon already running for this instance")
        yield False
        return
    log_path = settings.dagster_home / "daemon.log"
    since = time.time()
    received: list[int] = []

    def stop_command(signum: int, _frame: object) -> None:
        received.append(signum)
        raise SystemExit(128 + signum)

    with on_stop_signals(stop_command), open(log_path, "ab") as out:
        proc = subprocess.Popen(
            daemon_argv(),
            cwd=REPO_ROOT,
            env=settings.child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops its runs' launchers too
        )
        log(f"started dagster-daemon (pid {proc.pid}, log {log_path})")
        try:
            if not processes_visible():
                # Other commands can tell it runs only by its heartbeat: the caller's launch lock is held
                # until they can, so none of them takes this daemon's runs for a dead one's. (With /proc
                # its process is visible at once.)
                visible = visibility_poll(instance, settings.dagster_home, since)
                while proc.poll() is None and not visible():
                    time.sleep(1.0)
            yield True
        finally:
            with on_stop_signals(signal.SIG_IGN):
                if received:
                    log(
                        f"{signal_name(received[0])}: stopping the dagster-daemon this command started (pid "
                        f"{proc.pid}) with its runs; `vidcat backfill --wait` resumes the work"
                    )
                stop_group(proc, grace_s=30.0)


def daemon_argv() -> list[str]:
    return [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(REPO_ROOT / "workspace.yaml")]


def runs_did_the_work(instance: dg.DagsterInstance, backfill, runs: Sequence) -> bool:
    """Whether the backfill's runs all succeeded and, between them, materialized everything it targets.

    The daemon marks such a backfill completed at its next loop, up to 30 s later (the loop's period is
    fixed in Dagster); nothing is left for it to launch or retry, so a caller whose daemon outlives it
    need not wait for that mark. A run without an asset selection, or a target no run covered, says no.
    """
    from orchestration.dagster_private import BulkActionStatus

    data = getattr(backfill, "asset_backfill_data", None)
    if backfill is None or data is None or backfill.status != BulkActionStatus.REQUESTED or not runs:
        return False
    if any(r.status != dg.DagsterRunStatus.SUCCESS or r.asset_selection is None for r in runs):
        return False
    ordered = all_partitions(instance)
    covered: dict[dg.AssetKey, set[str]] = {}
    for run in runs:
        batches = set(run_batches(run, ordered))
        for key in run.asset_selection:
            covered.setdefault(key, set()).update(batches)
    target = data.target_subset
    if any(key not in covered for key in target.non_partitioned_asset_keys):
        return False
    return all(
        set(subset.get_partition_keys()) <= covered.get(key, set())
        for key, subset in target.partitions_subsets_by_asset_key.items()
    )


def wait_for_backfill(
    instance: dg.DagsterInstance,
    backfill_id: str,
    timeout_s: float,
    progress: Callable[[str], None] | None = None,
    poll_s: float = 2.0,
    runs_suffice: bool = False,
) -> str:
    """Block until the backfill ends; returns its final status name.

    ``runs_suffice``: return COMPLETED_SUCCESS as soon as its runs have done all of its work
    (`runs_did_the_work`), before the daemon's next loop records it; only for a daemon that stays up
    after the caller returns (one this caller started and is about to stop must record it first).
    """
    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        backfill = instance.get_backfill(backfill_id)
        status = backfill.status.value if backfill else "MISSING"
        runs = instance.get_runs(filters=dg.RunsFilter.for_backfill(backfill_id))
        if runs_suffice and runs_did_the_work(instance, backfill, runs):
            if progress:
                progress(
                    f"backfill {backfill_id}: its {len(runs)} run(s) succeeded and materialized all it targets; "
                    "the daemon records it completed at its next loop"
                )
            return "COMPLETED_SUCCESS"
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
    """Failed runs of the backfill that no retry made good (a retry of the same run group succeeded)."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}, statuses=[dg.DagsterRunStatus.FAILURE])
    )
    return [r.run_id for r in runs if not _made_good(instance, r.run_id)]


def retried_runs(instance: dg.DagsterInstance, backfill_id: str) -> Sequence[str]:
    """Failed runs of the backfill that a retry made good."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}, statuses=[dg.DagsterRunStatus.FAILURE])
    )
    return [r.run_id for r in runs if _made_good(instance, r.run_id)]


def _made_good(instance: dg.DagsterInstance, run_id: str) -> bool:
    group = instance.get_run_group(run_id)
    return group is not None and any(r.status == dg.DagsterRunStatus.SUCCESS for r in group[1])
