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
from dataclasses import dataclass
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
) -> BackfillLaunch:
    """Create batches for unbatched videos and one asset backfill over them (or all with ``rescore``)."""
    from dagster._core.definitions.partitions.context import partition_loading_context
    from dagster._core.definitions.selector import PartitionRangeSelector, PartitionsByAssetSelector, PartitionsSelector
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.utils import make_new_backfill_id
    from dagster._time import get_current_timestamp

    from orchestration.definitions import defs

    new = create_batches(catalog, settings.batch_size, origin="backfill", close_partial=True)
    instance = get_instance(settings)
    existing = set(instance.get_dynamic_partitions(BATCHES_PARTITION_NAME))
    missing = [p for p in all_batches(catalog) if p not in existing]
    # Retraining learns from every batch and re-scores them all with the new models. Otherwise only new
    # batches, plus backfill batches whose partition was never added: a launch that died after
    # committing them (the sensor requests its own batches itself).
    if rescore or train:
        partitions = all_batches(catalog)
    else:
        stranded = set(missing) & set(backfill_batches(catalog))
        partitions = sorted({b.batch_id for b in new} | stranded)
    if missing:
        instance.add_dynamic_partitions(BATCHES_PARTITION_NAME, missing)
    selection = backfill_selection(defs, train)
    if not partitions:
        return BackfillLaunch(None, new, [], [k.to_user_string() for k in selection])
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
    return BackfillLaunch(backfill_id, new, partitions, [k.to_user_string() for k in selection])


def backfill_batches(catalog: Catalog) -> list[str]:
    return [r[0] for r in catalog.query("SELECT batch_id FROM batches WHERE origin = 'backfill' ORDER BY batch_id")]


def daemon_running(instance: dg.DagsterInstance, within_s: float = 60.0) -> bool:
    beats = instance.get_daemon_heartbeats()
    now = time.time()
    return any(t == "BACKFILL" and now - hb.timestamp < within_s for t, hb in beats.items())


@contextlib.contextmanager
def running_daemon(settings: Settings, instance: dg.DagsterInstance, log: Callable[[str], None]) -> Iterator[None]:
    """A `dagster-daemon` for the duration, unless one is already heartbeating for this instance."""
    if daemon_running(instance):
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
