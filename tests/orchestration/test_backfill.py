"""`vidcat backfill`: batching, partitions and the stored asset backfill, without running it."""

from __future__ import annotations

from orchestration.backfill import get_instance, launch_backfill
from tests.conftest import registry_rows, result_rows


def test_backfill_batches_adds_partitions_and_stores_one_backfill(settings, catalog):
    registry_rows(catalog, 10)
    launch = launch_backfill(settings, catalog)
    assert launch.partitions == ["b00000001", "b00000002", "b00000003"]
    instance = get_instance(settings)
    assert instance.get_dynamic_partitions("video_batches") == launch.partitions
    backfill = instance.get_backfill(launch.backfill_id)
    assert backfill.is_asset_backfill
    assert {k.to_user_string() for k in backfill.asset_selection} == set(launch.assets)
    assert "video_probe" in launch.assets and "video_registry" not in launch.assets

    # Idempotent: nothing new to batch, no second backfill.
    again = launch_backfill(settings, catalog)
    assert again.backfill_id is None and again.new_batches == []
    assert len(instance.get_backfills()) == 1

    # New uploads get their own batch; --rescore covers every batch; --train adds the unpartitioned
    # assets and covers every batch too (new models learn from, and re-score, the whole catalog).
    registry_rows(catalog, 2, start=11)
    new = launch_backfill(settings, catalog)
    assert new.partitions == ["b00000004"] and "video_registry" not in new.assets
    everything = ["b00000001", "b00000002", "b00000003", "b00000004"]
    retrain = launch_backfill(settings, catalog, train=True)
    assert retrain.partitions == everything and "video_registry" in retrain.assets and not retrain.new_batches
    rescore = launch_backfill(settings, catalog, rescore=True)
    assert rescore.partitions == everything
    assert instance.get_backfill(rescore.backfill_id).status.value == "REQUESTED"


def test_batches_of_a_failed_launch_are_picked_up_by_the_next(settings, catalog):
    from ml.catalog.batching import create_batches

    registry_rows(catalog, 5)
    create_batches(catalog, 4, "backfill")  # committed, then the launch died before the backfill was stored
    launch = launch_backfill(settings, catalog)
    assert launch.new_batches == [] and launch.partitions == ["b00000001", "b00000002"]


def _two_batches_with_every_result(settings, catalog):
    """Eight videos in two batches, their backfill over (failed) and every video's fusion result in:
    whatever is still owed comes from step outcomes, not missing results."""
    from orchestration.dagster_private import BulkActionStatus

    registry_rows(catalog, 8)
    first = launch_backfill(settings, catalog)
    instance = get_instance(settings)
    instance.update_backfill(instance.get_backfill(first.backfill_id).with_status(BulkActionStatus.COMPLETED_FAILED))
    result_rows(catalog, [f"v{i}" for i in range(1, 9)])  # under fusion f1
    return instance, list(first.partitions)


# What the default run launcher writes on a run a code server started for the daemon.
LAUNCHED_BY_DAEMON = {".dagster/grpc_info": '{"host": "localhost", "socket": "/tmp/tmpcodeserver"}'}


def _run(instance, status: str, tags: dict[str, str]):
    from dagster import DagsterRun, DagsterRunStatus

    run = DagsterRun(job_name="__ASSET_JOB", status=DagsterRunStatus(status), tags=tags)
    instance.add_run(run)
    return run


def test_batches_whose_videos_lack_a_result_are_rerun_unless_something_holds_them(settings, catalog):
    """A run that died or failed leaves videos without a result: a plain re-run re-runs their batch,
    but never one that a backfill or a live run still works on (two runs of a batch must not overlap)."""
    from orchestration.dagster_private import BulkActionStatus

    registry_rows(catalog, 12)
    first = launch_backfill(settings, catalog)
    b1, b2, b3 = first.partitions
    result_rows(catalog, ["v1", "v2", "v3", "v4", "v5", "v6"])  # b1 done, half of b2
    instance = get_instance(settings)

    # The first backfill is still requested: everything is held by it, nothing is launched twice.
    held = launch_backfill(settings, catalog)
    assert held.backfill_id is None and held.pending == [first.backfill_id]
    assert set(held.busy) == {b2, b3} and held.busy[b2] == f"backfill {first.backfill_id}"

    # Its daemon failed the runs and ended it: the unfinished batches are owed, and re-run.
    backfill = instance.get_backfill(first.backfill_id)
    instance.update_backfill(backfill.with_status(BulkActionStatus.COMPLETED_FAILED))
    shards = settings.embeddings_dir / settings.image_encoder
    shards.mkdir(parents=True, exist_ok=True)
    stale, live = shards / f".{b2}.abc123.parquet.tmp", shards / f".{b3}.def456.parquet.tmp"
    stale.write_bytes(b"half a shard")
    live.write_bytes(b"being written")
    run = _run(instance, "STARTED", {"dagster/partition": b3})  # a live run writes b3's shard
    rerun = launch_backfill(settings, catalog)
    assert rerun.partitions == [b2] and rerun.unfinished == [b2]
    assert rerun.busy == {b3: f"run {run.run_id}"}
    assert not stale.exists() and live.exists()  # only a writer that died leaves a temporary behind

    # A run over a range of batches (a backfill packs several into one) holds all of them.
    instance.update_backfill(instance.get_backfill(rerun.backfill_id).with_status(BulkActionStatus.CANCELED))
    instance.report_run_failed(run)
    _run(instance, "STARTING", {"dagster/asset_partition_range_start": b1, "dagster/asset_partition_range_end": b3})
    assert launch_backfill(settings, catalog).partitions == []


def test_a_fresh_sensor_batch_is_left_to_the_sensor_while_a_daemon_runs(settings, catalog):
    from ml.catalog.batching import create_batches

    registry_rows(catalog, 3)
    create_batches(catalog, 4, "sensor")  # its run is being created by the daemon that ran the tick
    assert launch_backfill(settings, catalog, daemon_alive=True).partitions == []
    # With no daemon, nothing else will ever run it.
    assert launch_backfill(settings, catalog, daemon_alive=False).partitions == ["b00000001"]


def test_a_fresh_sensor_batch_scored_by_replaced_models_is_owed_at_once(settings, catalog):
    """The grace is for the run the sensor is creating: a young batch whose videos all have results,
    under a fusion since replaced, has had its run, and only a backfill re-scores it."""
    from ml.catalog.batching import create_batches
    from ml.catalog.model_registry import register_model
    from orchestration.backfill import owed_batches

    registry_rows(catalog, 3)
    create_batches(catalog, 4, "sensor")
    result_rows(catalog, ["v1", "v2", "v3"])  # under fusion f1
    register_model(catalog, "fusion", "f2", settings.models_dir, [])
    owed, busy = owed_batches(catalog, get_instance(settings), daemon_alive=True)
    assert [(u.batch_id, u.stale) for u in owed] == [("b00000001", 3)] and busy == {}


def test_a_restart_resumes_what_the_stopped_daemon_left(settings, catalog):
    """`vidcat up` after a crash: the stuck run is failed and not retried, its backfill closed, and exactly
    their batches go into one new backfill (not batches that failed on their own earlier)."""
    from orchestration.backfill import resume_after_crash
    from orchestration.dagster_private import WILL_RETRY_TAG, BulkActionStatus

    registry_rows(catalog, 8)
    first = launch_backfill(settings, catalog)
    instance = get_instance(settings)
    stuck = _run(
        instance,
        "STARTED",
        {"dagster/partition": "b00000001", "dagster/backfill": first.backfill_id, **LAUNCHED_BY_DAEMON},
    )
    said: list[str] = []
    resumed = resume_after_crash(settings, catalog, instance, said.append)
    assert resumed is not None and resumed.partitions == first.partitions
    assert instance.get_backfill(first.backfill_id).status.value == "CANCELED"
    after = instance.get_run_by_id(stuck.run_id)
    assert after.status.value == "FAILURE" and after.tags[WILL_RETRY_TAG] == "false"
    assert any("abandoned by a stopped daemon" in m for m in said)
    # Once that backfill has ended, a restart has nothing to resume.
    done = instance.get_backfill(resumed.backfill_id)
    instance.update_backfill(done.with_status(BulkActionStatus.COMPLETED_SUCCESS))
    assert resume_after_crash(settings, catalog, instance, said.append) is None


def test_a_backfill_is_done_once_its_runs_succeeded_over_everything_it_targets(settings, catalog):
    """What lets `vidcat backfill --wait` return before the daemon's next loop records the end: every run
    of the backfill succeeded, and between them they materialized each asset of it in each batch."""
    import pytest
    from dagster import AssetKey, DagsterRun, DagsterRunStatus

    from orchestration.backfill import runs_did_the_work, wait_for_backfill

    registry_rows(catalog, 12)
    launch = launch_backfill(settings, catalog)
    b1, b2, b3 = launch.partitions
    instance = get_instance(settings)
    keys = frozenset(AssetKey.from_user_string(a) for a in launch.assets)

    def add(status: str, tags: dict[str, str], selection=keys) -> None:
        run = DagsterRun(
            job_name="__ASSET_JOB",
            status=DagsterRunStatus(status),
            tags={"dagster/backfill": launch.backfill_id, **tags},
            asset_selection=selection,
        )
        instance.add_run(run)

    def done() -> bool:
        backfill = instance.get_backfill(launch.backfill_id)
        return runs_did_the_work(instance, backfill, instance.get_runs(filters=_for(launch.backfill_id)))

    assert not done()  # no run yet
    add("SUCCESS", {"dagster/asset_partition_range_start": b1, "dagster/asset_partition_range_end": b2})
    assert not done()  # b3 not covered
    add("SUCCESS", {"dagster/partition": b3}, selection=frozenset(list(keys)[:1]))
    assert not done()  # b3 covered for one asset only
    add("STARTED", {"dagster/partition": b3})
    assert not done()  # a run still going
    with pytest.raises(TimeoutError):
        wait_for_backfill(instance, launch.backfill_id, 0.2, poll_s=0.05, runs_suffice=True)
    going = next(r for r in instance.get_runs(filters=_for(launch.backfill_id)) if r.status.value == "STARTED")
    instance.report_run_failed(going)
    assert not done()  # a failed run: the daemon may retry it, and its record is the end
    instance.delete_run(going.run_id)  # as if it had never been: the last run below succeeds
    add("SUCCESS", {"dagster/partition": b3})
    assert done()
    assert wait_for_backfill(instance, launch.backfill_id, 5.0, poll_s=0.05, runs_suffice=True) == "COMPLETED_SUCCESS"
    with pytest.raises(TimeoutError):  # a daemon this command stops must record the end itself first
        wait_for_backfill(instance, launch.backfill_id, 0.2, poll_s=0.05, runs_suffice=False)

    # A training backfill targets the unpartitioned assets (models, thresholds) too.
    retrain = launch_backfill(settings, catalog, train=True)
    everything = frozenset(AssetKey.from_user_string(a) for a in retrain.assets)
    batch_keys = frozenset(k for k in everything if k in keys)
    run = DagsterRun(
        job_name="__ASSET_JOB",
        status=DagsterRunStatus.SUCCESS,
        tags={
            "dagster/backfill": retrain.backfill_id,
            "dagster/asset_partition_range_start": b1,
            "dagster/asset_partition_range_end": b3,
        },
        asset_selection=batch_keys,
    )
    instance.add_run(run)
    backfill = instance.get_backfill(retrain.backfill_id)
    assert not runs_did_the_work(instance, backfill, instance.get_runs(filters=_for(retrain.backfill_id)))


def _for(backfill_id: str):
    from dagster import RunsFilter

    return RunsFilter.for_backfill(backfill_id)


def _fail_step(instance, name: str, batch: str) -> None:
    """A run that planned ``name`` for ``batch`` and failed in it, as an error in the asset leaves it."""
    import dagster as dg

    from assets.core.partitions import video_batches

    @dg.asset(name=name, partitions_def=video_batches)
    def broken() -> None:
        raise RuntimeError("the serving store refused the batch")

    result = dg.materialize([broken], partition_key=batch, instance=instance, raise_on_error=False)
    assert not result.success


def test_a_batch_whose_step_after_fusion_failed_is_owed_and_only_that_step_is_rerun(settings, catalog):
    """Every video has its result, but the export failed: the batch is not finished. `vidcat status`
    says so and a plain `vidcat backfill` re-runs the export (and what follows it), not the whole batch."""
    from orchestration.backfill import unfinished_report

    instance, (_, b2) = _two_batches_with_every_result(settings, catalog)
    assert launch_backfill(settings, catalog).backfill_id is None  # all results in, no step failed

    _fail_step(instance, "serving_export", b2)
    report = unfinished_report(settings, catalog)
    assert [(r["batch"], r["without_result"], r["failed_steps"]) for r in report] == [(b2, 0, "serving_export")]
    assert str(report[0]["state"]).startswith("owed")

    rerun = launch_backfill(settings, catalog)
    assert rerun.partitions == [b2] and rerun.unfinished == [b2]
    backfill = instance.get_backfill(rerun.backfill_id)
    targeted = {k.to_user_string() for k in backfill.asset_backfill_data.target_subset.asset_keys}
    assert targeted == {"serving_export"}
    # Held by that backfill now: a second command launches nothing.
    assert launch_backfill(settings, catalog).backfill_id is None


def _fail_check(instance, asset: str, check: str, after: list[str], batch: str) -> None:
    """A run in which the blocking ``check`` of ``asset`` failed: Dagster records ``asset`` materialized and
    only the steps ``after`` it failed (skipped), as the real check leaves it."""
    import dagster as dg

    from assets.core.partitions import video_batches

    @dg.asset(name=asset, partitions_def=video_batches)
    def checked() -> None:
        """Stands in for the checked asset: it materializes."""

    @dg.asset_check(asset=asset, name=check, partitions_def=video_batches, blocking=True)
    def rejects():  # no annotation: Dagster resolves it, and `dg` is local here
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR)

    def downstream(name: str):
        @dg.asset(name=name, partitions_def=video_batches, deps=[asset])
        def step() -> None:
            """Stands in for a step after the checked asset: never runs, the check blocks it."""

        return step

    result = dg.materialize(
        [checked, rejects, *[downstream(n) for n in after]],
        partition_key=batch,
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    assert result.asset_materializations_for_node(asset)  # materialized: only the steps after it failed


def _targets(instance, backfill_id: str) -> set[str]:
    backfill = instance.get_backfill(backfill_id)
    return {k.to_user_string() for k in backfill.asset_backfill_data.target_subset.asset_keys}


def test_a_failed_blocking_check_is_rerun_with_its_asset_not_skipped(settings, catalog):
    """`prediction_expectations` rejected a batch's fused predictions: re-running only the export and the
    drift report would skip the check and push the rejected rows to serving. Every re-run (a plain
    `vidcat backfill`, and the re-launch of `vidcat backfill --wait`) starts at the checked asset."""
    from orchestration.backfill import failed_steps, unfinished_report
    from orchestration.dagster_private import BulkActionStatus

    instance, (_, b2) = _two_batches_with_every_result(settings, catalog)

    _fail_check(instance, "fused_predictions", "prediction_expectations", ["serving_export", "drift_report"], b2)
    assert failed_steps(instance) == {b2: ["drift_report", "fused_predictions", "serving_export"]}
    (row,) = unfinished_report(settings, catalog)
    assert row["batch"] == b2 and str(row["state"]).startswith("owed")

    redo = {"fused_predictions", "serving_export", "drift_report"}
    relaunch = launch_backfill(settings, catalog, batch_new=False, rerun_only={b2})  # `--wait`'s re-launch
    assert relaunch.partitions == [b2] and _targets(instance, relaunch.backfill_id) == redo
    instance.update_backfill(instance.get_backfill(relaunch.backfill_id).with_status(BulkActionStatus.CANCELED))
    plain = launch_backfill(settings, catalog)
    assert plain.partitions == [b2] and _targets(instance, plain.backfill_id) == redo


def test_a_batch_scored_by_replaced_models_is_owed_and_rescored_from_its_predictions(settings, catalog):
    """A batch a --train left out (a run held it) keeps results under the old fusion: `vidcat status`
    counts it owed and a plain `vidcat backfill` re-scores it, without probing or decoding it again."""
    from ml.catalog.model_registry import register_model
    from orchestration.backfill import unfinished_report

    instance, (_, b2) = _two_batches_with_every_result(settings, catalog)
    register_model(catalog, "fusion", "f1", settings.models_dir, [])
    assert unfinished_report(settings, catalog) == []
    register_model(catalog, "fusion", "f2", settings.models_dir, [])
    with catalog.transaction() as con:  # b1 was re-scored by the retraining backfill, b2 was left out
        con.execute("UPDATE video_results SET model_version = 'f2' WHERE video_id IN ('v1', 'v2', 'v3', 'v4')")

    (row,) = unfinished_report(settings, catalog)
    assert (row["batch"], row["without_result"], row["not_current"]) == (b2, 0, 4)
    assert "models since replaced" in str(row["state"])
    rerun = launch_backfill(settings, catalog)
    assert rerun.partitions == [b2]
    assert "video_probe" not in _targets(instance, rerun.backfill_id)
    assert "frame_embeddings" not in _targets(instance, rerun.backfill_id)
    assert {"text_predictions", "visual_predictions", "fused_predictions", "serving_export"} <= _targets(
        instance, rerun.backfill_id
    )


def test_rescore_leaves_out_batches_a_live_run_holds_and_waits_for_what_it_supersedes(settings, catalog, monkeypatch):
    """--rescore and --train cover every batch but those a run is working on now (reported, never run
    twice at once); the backfills they supersede are cancelled before the new one is stored."""
    import orchestration.backfill as backfill_mod
    from orchestration.dagster_private import BulkActionStatus

    registry_rows(catalog, 12)
    first = launch_backfill(settings, catalog)
    b1, b2, b3 = first.partitions
    instance = get_instance(settings)
    live = _run(instance, "STARTED", {"dagster/partition": b3, "dagster/backfill": first.backfill_id})
    monkeypatch.setattr(backfill_mod, "SUPERSEDE_WAIT_S", 0.3)
    said: list[str] = []
    rescore = launch_backfill(settings, catalog, rescore=True, log=said.append)
    assert rescore.superseded == [first.backfill_id]
    assert len(said) == 1 and first.backfill_id in said[0] and "waiting up to 0 s" in said[0]  # the wait is said
    assert rescore.partitions == [b1, b2] and rescore.busy == {b3: f"run {live.run_id}"}
    # A daemon serves the instance, so the cancelled backfill with a run in flight is left CANCELING to it.
    assert instance.get_backfill(first.backfill_id).status == BulkActionStatus.CANCELING

    # Once that run has ended (and the daemon recorded the cancellation), --train covers everything; a
    # superseded backfill with no run in flight is CANCELED at once.
    instance.report_run_canceled(live)
    instance.update_backfill(instance.get_backfill(first.backfill_id).with_status(BulkActionStatus.CANCELED))
    retrain = launch_backfill(settings, catalog, train=True, log=said.append)
    assert retrain.partitions == [b1, b2, b3] and retrain.busy == {}
    assert len(said) == 1  # nothing in flight to wait for: nothing said
    assert instance.get_backfill(rescore.backfill_id).status == BulkActionStatus.CANCELED


def test_recovery_leaves_runs_that_need_no_daemon_alone(settings, catalog):
    """With no daemon, only what a daemon launched died with it: a `dagster asset materialize` run (in
    process, no launcher tag) may be running right now and must not be marked failed."""
    from orchestration.backfill import recover_abandoned

    registry_rows(catalog, 8)
    launch_backfill(settings, catalog)
    instance = get_instance(settings)
    daemons = _run(instance, "STARTED", {"dagster/partition": "b00000001", **LAUNCHED_BY_DAEMON})
    starting = _run(instance, "STARTING", {"dagster/partition": "b00000002"})  # launched, not yet tagged
    in_process = _run(instance, "STARTED", {"dagster/partition": "b00000002"})
    found = recover_abandoned(instance)
    assert instance.get_run_by_id(daemons.run_id).status.value == "FAILURE"
    assert instance.get_run_by_id(starting.run_id).status.value == "FAILURE"
    assert instance.get_run_by_id(in_process.run_id).status.value == "STARTED"
    assert {"b00000001", "b00000002"} <= found.batches


def test_only_code_servers_whose_daemon_died_are_stopped(tmp_path):
    """A killed daemon's code server is re-parented and goes on running its runs: it goes, with its run
    workers. A standalone webserver's code server, one started by hand, or another instance's stays."""
    from orchestration.backfill import orphaned_code_servers

    home, other = tmp_path / "home", tmp_path / "other"
    env = {"DAGSTER_HOME": str(home)}
    server = ["/venv/bin/python", "-m", "dagster", "api", "grpc", "--socket", "/tmp/s", "--heartbeat"]
    procs = {
        1: (0, ["/sbin/init"], {}),
        50: (1, ["bash"], {}),
        100: (1, server, env),  # its daemon was killed: adopted by init
        101: (100, ["/venv/bin/python", "-m", "dagster", "api", "execute_run", "{}"], env),  # its run worker
        102: (101, ["/venv/bin/python", "-c", "decode"], env),
        200: (50, ["/venv/bin/dagster-webserver", "-w", "workspace.yaml"], env),
        201: (200, server, env),  # the webserver's own: alive and well
        300: (50, ["/venv/bin/dagster", "api", "grpc", "-m", "orchestration.definitions"], env),  # by hand
        400: (1, server, {"DAGSTER_HOME": str(other)}),  # another instance's
        500: (77, server, env),  # parent gone between reads
    }
    assert sorted(orphaned_code_servers(procs, home)) == [100, 101, 102, 500]


def test_a_demo_after_an_interrupted_one_recovers_its_runs_instead_of_waiting_for_its_daemon(
    settings, catalog, monkeypatch
):
    """Stopping `vidcat demo` kills its daemon and leaves its runs "started". The next demo (a --train
    over every batch) decides under the launch lock, as `vidcat backfill --wait` does: with no daemon it
    fails those runs and covers their batches, instead of waiting two minutes for a daemon that does not
    exist to cancel them and then leaving their batches out."""
    import contextlib
    import fcntl
    import time

    import orchestration.backfill as backfill_mod

    registry_rows(catalog, 8)
    first = launch_backfill(settings, catalog, train=True, title="vidcat demo")
    instance = get_instance(settings)
    stuck = _run(
        instance,
        "STARTED",
        {"dagster/partition": first.partitions[0], "dagster/backfill": first.backfill_id, **LAUNCHED_BY_DAEMON},
    )
    held: list[bool] = []

    @contextlib.contextmanager
    def fake_daemon(*_a, **_k):
        with open(settings.dagster_home / "vidcat-launch.lock", "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(f, fcntl.LOCK_UN)
                held.append(False)
            except BlockingIOError:
                held.append(True)
        yield True

    monkeypatch.setattr(backfill_mod, "daemon_running", lambda *a, **k: False)
    monkeypatch.setattr(backfill_mod, "running_daemon", fake_daemon)
    said: list[str] = []
    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        launched = backfill_mod.launch_under_lock(
            stack, settings, catalog, instance, said.append, wait=True, train=True, title="vidcat demo"
        )
    assert time.monotonic() - began < backfill_mod.SUPERSEDE_WAIT_S / 4
    assert launched.launch.partitions == first.partitions and launched.launch.busy == {}
    assert not launched.daemon_alive and launched.started_daemon and held == [True]
    assert instance.get_run_by_id(stuck.run_id).status.value == "FAILURE"
    assert any("abandoned by a stopped daemon" in m for m in said)


def _one_run_over(instance, batches: list[str], severity: str | None, failing: str = "drift_report") -> None:
    """A backfill run covering ``batches`` (a range, as `BackfillPolicy.multi_run` packs them) in which the
    blocking check of `frame_embeddings` passed (``severity`` None) or failed with ``severity``, and then
    ``failing`` raised. Dagster records such a run's check evaluation with no partition."""
    import dagster as dg

    from assets.core.partitions import video_batches

    policy = dg.BackfillPolicy.multi_run(4)

    @dg.asset(name="frame_embeddings", partitions_def=video_batches, backfill_policy=policy)
    def checked() -> None:
        """Stands in for the checked asset: it materializes every batch of the range."""

    @dg.asset_check(
        asset="frame_embeddings", name="embedding_expectations", partitions_def=video_batches, blocking=True
    )
    def check():  # no annotation: Dagster resolves it, and `dg` is local here
        if severity is None:
            return dg.AssetCheckResult(passed=True)
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity[severity])

    @dg.asset(name=failing, partitions_def=video_batches, deps=["frame_embeddings"], backfill_policy=policy)
    def broken() -> None:
        raise RuntimeError("the drift reference is unreadable")

    tags = {"dagster/asset_partition_range_start": batches[0], "dagster/asset_partition_range_end": batches[-1]}
    result = dg.materialize([checked, check, broken], instance=instance, tags=tags, raise_on_error=False)
    assert not result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.partition is None  # one evaluation for the whole range, per batch only a planned row


def test_a_check_that_passed_in_a_run_over_several_batches_is_not_rerun(settings, catalog):
    """Every partitioned asset packs up to four batches in a run. The blocking check passed there and the
    drift report raised: only the drift report is failed, not the frames (their check passed for every
    batch of the run), so no succeeded step is listed failed. A WARN failure blocks nothing
    either; an ERROR failure over the range holds back every batch of the run."""
    from orchestration.backfill import failed_steps

    instance, batches = _two_batches_with_every_result(settings, catalog)

    _one_run_over(instance, batches, severity=None)
    assert failed_steps(instance) == {b: ["drift_report"] for b in batches}
    _one_run_over(instance, batches, severity="WARN")
    assert failed_steps(instance) == {b: ["drift_report"] for b in batches}
    _one_run_over(instance, batches, severity="ERROR")
    assert failed_steps(instance) == {b: ["drift_report", "frame_embeddings"] for b in batches}
