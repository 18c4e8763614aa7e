"""`vidcat demo-catalog`, `vidcat demo` (the whole pipeline on the synthetic catalog) and `vidcat up`."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from ml.config import load_settings
from orchestration.cli import CommandError, emit, open_context

REPO_ROOT = Path(__file__).resolve().parents[2]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo-catalog", help="generate the synthetic demo catalog (real encoded videos)")
    p.add_argument("--videos", type=int, default=1200)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_demo_catalog)

    p = sub.add_parser("demo", help="build, register and backfill the demo catalog through Dagster")
    p.add_argument("--videos", type=int, default=1200)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--timeout", type=float, default=3600.0)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("up", help="start the Dagster UI and daemon (dagster dev) on 127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=cmd_up)


def _progress_bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="video", file=sys.stderr, disable=None)


def build_catalog(settings, videos: int, seed: int) -> dict:
    from ml.demo.catalog import build_demo_catalog

    if videos < 1:
        raise CommandError("--videos must be at least 1")
    bar = _progress_bar(videos, "rendering demo videos")

    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    try:
        return build_demo_catalog(videos, seed, settings.media_dir / "demo", settings.demo_dir, progress=progress)
    finally:
        bar.close()


def cmd_demo_catalog(args) -> int:
    settings = load_settings(args.config).ensure_dirs()
    summary = build_catalog(settings, args.videos, args.seed)
    emit(summary, args.json)
    return 0


def cmd_demo(args) -> int:
    from ml.catalog.labels import import_labels, read_label_file
    from ml.catalog.registration import register_manifest
    from ml.catalog.segments import segment_summary
    from ml.demo.truth import lock_demo_test
    from ml.evaluation.report import pipeline_report
    from orchestration.backfill import get_instance, launch_under_lock, left_out_note, run_failures, wait_for_backfill
    from orchestration.cli.catalog import summary_text

    started = time.monotonic()
    settings, catalog, ws = open_context(args)
    print(f"vidcat demo: data root {settings.data_root}")
    summary = build_catalog(settings, args.videos, args.seed)
    print(summary["notice"])
    print(
        f"demo catalog: {summary['videos']} videos in {summary['categories']} categories, "
        f"{summary['bad_files']} bad uploads, languages {summary['languages']}"
    )

    report = register_manifest(catalog, summary["manifest"], settings.allowed_roots, ws, origin="demo")
    print(
        f"registered {len(report.registered)} video(s), {len(report.already_registered)} already registered, "
        f"{len(report.rejected)} rejected"
    )
    for r in report.rejected:
        print(f"  rejected {r.video_id}: {r.reason}")
    gold = import_labels(catalog, read_label_file(summary["gold_file"]), ws, "gold", annotator="demo")
    print(f"gold set: {gold.videos} human-verified videos (they certify thresholds; no model trains on them)")
    print(f"  with verified scene ranges: {gold.scene_videos} videos, {gold.scene_ranges} ranges (scene thresholds)")
    locked = lock_demo_test(catalog, settings.demo_dir)
    print(f"locked test: {locked} videos nobody labelled, scored at the end against the synthetic ground truth")

    instance = get_instance(settings)
    with contextlib.ExitStack() as stack:
        # As `vidcat backfill --wait`: under the launch lock, and with no daemon, what an interrupted demo's
        # daemon left (runs still "started") is closed and its batches join this backfill.
        launched = launch_under_lock(
            stack, settings, catalog, instance, print, wait=True, train=True, title="vidcat demo"
        )
        launch = launched.launch
        if launch.busy:
            print(left_out_note(launch.busy))
        if launch.backfill_id is None and not launch.busy:
            print("every video is already batched and scored; `vidcat backfill --rescore --train --wait` re-runs it")
        elif launch.backfill_id is not None:
            print(
                f"backfill {launch.backfill_id}: {len(launch.partitions)} batch(es) of up to {settings.batch_size} "
                f"videos through {len(launch.assets)} assets"
            )
            status = wait_for_backfill(
                instance, launch.backfill_id, args.timeout, progress=print, runs_suffice=not launched.started_daemon
            )
    if launch.backfill_id is not None:
        failed = run_failures(instance, launch.backfill_id)
        print(f"backfill {status}; failed runs: {len(failed)}")
        if failed:
            raise CommandError(f"{len(failed)} run(s) failed: {', '.join(failed)}; see `make up` for their logs")
    if launch.busy:
        raise CommandError(
            f"{len(launch.busy)} batch(es) were left out because something else runs them (listed above): "
            "`vidcat backfill --wait` once that ends scores them"
        )
    print()
    print(summary_text(settings, catalog))
    print()
    print(pipeline_report(settings, catalog, ws)[1])
    scenes = segment_summary(catalog)
    print(
        f"\nscenes: {scenes['scenes']} in {scenes['videos']} videos, {scenes['with_category']} given a category "
        "under certified scene thresholds (docs/segments.md); e.g.\n"
        '  .venv/bin/vidcat sql "SELECT video_id, scene_index, start_s, end_s, categories, break_before '
        'FROM current_segments ORDER BY video_id, scene_index LIMIT 10"'
    )
    if not scenes["with_category"]:
        print(
            "  no scene category without verified gold scenes (the demo's gold has none); scene categories "
            "certified and measured on the segment benchmark: .venv/bin/vidcat eval-segments (5 min the first time)"
        )
    print("\nAd serving reads the view current_predictions, e.g.:")
    print(
        '  .venv/bin/vidcat sql "SELECT video_id, category_id, source, round(score, 3) AS score '
        'FROM current_predictions ORDER BY video_id LIMIT 10"'
    )
    print(f"\ndemo finished in {time.monotonic() - started:.0f}s; `make up` shows the runs at http://127.0.0.1:3000")
    return 0


def cmd_up(args) -> int:
    """`dagster dev` under a supervisor that stops all of it on SIGTERM or SIGINT (orchestration/supervise.py).

    Deciding that no daemon runs, recovering what a dead one left and starting `dagster dev` happen under
    one hold of the launch lock, released only once other commands can see the new daemon: a `vidcat
    backfill --wait` that started a daemon in between would otherwise have its runs failed and its code
    server killed as a dead daemon's, or two daemons would run every sensor tick and backfill twice.
    """
    from ml.catalog.store import open_catalog
    from orchestration.backfill import (
        daemon_running,
        get_instance,
        launch_lock,
        local_daemon_pids,
        resume_after_crash,
        visibility_poll,
    )
    from orchestration.supervise import supervise

    settings = load_settings(args.config).ensure_dirs()
    instance = get_instance(settings)
    env = settings.child_env()
    env.update(DAGSTER_DISABLE_TELEMETRY="1", DO_NOT_TRACK="1", GX_ANALYTICS_ENABLED="false")
    exe = str(Path(sys.executable).with_name("dagster"))
    argv = [exe, "dev", "-h", "127.0.0.1", "-p", str(args.port), "-w", str(REPO_ROOT / "workspace.yaml")]
    with contextlib.ExitStack() as held:
        held.enter_context(launch_lock(settings))
        if daemon_running(instance, settings.dagster_home):
            pids = local_daemon_pids(settings.dagster_home)
            which = f" (pid {', '.join(map(str, pids))})" if pids else " (its heartbeat is fresh)"
            raise CommandError(
                f"a Dagster daemon already serves {settings.dagster_home}{which}: a second one would run every "
                "sensor tick and backfill twice; stop it first (or open the UI it serves)"
            )
        resume_after_crash(settings, open_catalog(settings.catalog_path), instance, print)
        visible = visibility_poll(instance, settings.dagster_home, time.time())

        def started() -> bool:
            if visible():
                held.close()  # other commands now find this daemon running
                return True
            return False

        print(
            f"Dagster UI on http://127.0.0.1:{args.port} (DAGSTER_HOME={settings.dagster_home}); "
            "Ctrl-C or SIGTERM stops it",
            flush=True,
        )
        return supervise(argv, env, REPO_ROOT, until_started=started)
