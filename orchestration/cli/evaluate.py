"""Evaluation commands: the fusion comparison, final predictions against the demo truth, architectures."""

from __future__ import annotations

import argparse
import sys

from orchestration.cli import CommandError, emit, open_context, shares


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="text-only / visual-only / union / max / stacked on held-out gold, and more")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "eval-visual",
        help="the student on the locked test: NeXtVLAD vs mean pooling, each ingredient, label budgets",
    )
    p.add_argument(
        "--label-budget",
        default=None,
        type=shares,
        help="comma-separated shares of the editor labels, e.g. 1.0,0.3,0.1: student with and without pseudo-labels",
    )
    p.add_argument("--ablation", action="store_true", help="switch each ingredient of the recipe off alone")
    p.add_argument("--seeds", type=int, default=1, help="train each label-budget student this many times (mean, sd)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval_visual)


def fusion_table(catalog) -> tuple[dict, str]:
    from ml.catalog.model_registry import latest_model
    from ml.catalog.summary import md_table

    fusion = latest_model(catalog, "fusion", required=False)
    if fusion is None:
        raise CommandError("no fusion model yet: materialize category_thresholds (`vidcat backfill --train --wait`)")
    comparison = fusion.metrics["comparison"]
    rows = [
        (
            ("* " if rule == fusion.params.get("rule") else "") + rule,
            f"{m['coverage']:.3f}",
            f"{m['categories_per_video']:.2f}",
            _f(m["precision"]),
            _f(m["recall"]),
            _f(m["f1"]),
            _f(m.get("macro_precision")),
            _f(m.get("worst_category_precision")),
            len(m.get("failing_categories", [])),
        )
        for rule, m in comparison.items()
    ]
    table = md_table(
        rows,
        ["rule", "coverage", "categories/video", "precision", "recall", "F1", "macro P", "worst category P", "failing"],
    )
    choice = fusion.metrics.get("choice", {})
    return {
        "fusion_version": fusion.version,
        "chosen_rule": fusion.params.get("rule"),
        "gold_videos": fusion.training_data.get("gold_videos"),
        "comparison": comparison,
        "choice": choice,
    }, table


def _f(x) -> str:
    return "n/a" if x is None or x != x else f"{x:.3f}"


def locked_test_report(settings, catalog, ws=None) -> tuple[dict | None, str]:
    """The locked-test table (demo ground truth, or the locked share of gold), or a line saying why not."""
    from ml.catalog.holdout import locked_test_ids
    from ml.evaluation.demo import demo_locked_test, has_demo_test
    from ml.evaluation.locked import evaluate_locked_test, format_report, gold_locked_test
    from ml.frames.embedding_store import list_shards
    from ml.fusion.stage import load_current_fusion

    if not locked_test_ids(catalog):
        return None, (
            "No locked test: import gold with `vidcat import-gold FILE --test-share 0.3` (or run the demo) to "
            "keep a share that nothing trains or tunes on."
        )
    test = demo_locked_test(catalog, settings.demo_dir) if has_demo_test(catalog, settings.demo_dir) else None
    if test is None or not test.video_ids:
        test = gold_locked_test(catalog)
    fusion = load_current_fusion(catalog)
    shards = list_shards(settings.embeddings_dir, settings.image_encoder)
    report = evaluate_locked_test(
        catalog, fusion, test, shards, promise=settings.target_precision, confidence=settings.threshold_confidence
    )
    names = {c.id: c.full_name for c in ws.categories} if ws is not None else None
    return report, format_report(report, names)


def report_text(settings, catalog, ws=None) -> tuple[dict, str]:
    from ml.catalog.model_registry import latest_model

    data, table = fusion_table(catalog)
    choice = data.get("choice") or {}
    lines = [
        f"Fusion {data['fusion_version']}: rules compared out of fold on {data['gold_videos']} gold videos "
        f"(certification share; * = chosen: {choice.get('reason', 'best held-out F1')})",
        table,
    ]
    if choice and not choice.get("holds", True):
        failing = ", ".join(f"{f['category_id']} ({f['precision']:.2f})" for f in choice.get("failing", []))
        lines.append(f"WARNING: the chosen rule misses the promise on held-out gold in: {failing}")
    visual = latest_model(catalog, "visual_model", required=False)
    if visual is not None:
        data["visual_training"] = {
            "sources": visual.training_data.get("sources"),
            "self_training": visual.training_data.get("self_training"),
            "gold": visual.metrics.get("gold"),
        }
        gold = visual.metrics.get("gold") or {}
        gold_line = ", ".join(f"{a} GAP@20 {_f(g.get('gap_at_20'))}" for a, g in gold.items())
        lines += [
            "",
            f"Visual student {visual.version}: targets by source {visual.training_data.get('sources')}; "
            f"self-training accepted {(visual.training_data.get('self_training') or {}).get('accepted_videos', 0)} "
            f"video(s); on gold (never trained on): {gold_line}",
        ]
    test, text = locked_test_report(settings, catalog, ws)
    data["locked_test"] = test
    lines += ["", text]
    return data, "\n".join(lines)


def cmd_report(args) -> int:
    settings, catalog, ws = open_context(args)
    data, text = report_text(settings, catalog, ws)
    emit(data, True) if args.json else print(text)
    return 0


def cmd_eval_visual(args) -> int:
    from ml.catalog.labels import pseudo_label_rows
    from ml.catalog.model_registry import latest_model
    from ml.catalog.summary import md_table
    from ml.evaluation.demo import demo_locked_test, has_demo_test
    from ml.evaluation.locked import gold_locked_test
    from ml.evaluation.student import ablation, compare_architectures, eval_context, format_rows, label_budget
    from ml.visual.targets import TargetPolicy, pseudo_targets

    settings, catalog, ws = open_context(args)
    budgets = args.label_budget
    test = demo_locked_test(catalog, settings.demo_dir) if has_demo_test(catalog, settings.demo_dir) else None
    if test is None or not test.video_ids:
        test = gold_locked_test(catalog)
    if not test.video_ids:
        raise CommandError("no locked test: `vidcat import-gold FILE --test-share 0.3`, or run `vidcat demo`")
    ctx = eval_context(catalog, settings, test, ws.ids)
    teacher = latest_model(catalog, "text_model", required=False)
    pseudo: tuple[dict, dict] = ({}, {})
    if teacher is not None:
        pseudo = pseudo_targets(
            pseudo_label_rows(catalog, teacher.version), ctx.categories, TargetPolicy.from_settings(settings)
        )
    result: dict = {"locked_test": {"videos": len(test.video_ids), "labels": test.source}}
    sections = [f"Locked test: {len(test.video_ids)} videos, labels from {test.source}; thresholds on gold."]
    if budgets is None:
        result["architectures"] = compare_architectures(ctx, pseudo)
        rows, head = format_rows(result["architectures"], "student")
        sections += ["", "NeXtVLAD against mean pooling (same targets, seed, epochs) and the baseline:"]
        sections.append(md_table(rows, head))
        if args.ablation:
            result["ablation"] = ablation(ctx, pseudo)
            rows, head = format_rows(result["ablation"])
            sections += ["", "Each ingredient switched off alone:", md_table(rows, head)]
    else:
        if args.seeds < 1:
            raise CommandError("--seeds must be at least 1")
        pool_truth = None
        if has_demo_test(catalog, settings.demo_dir):  # the demo's pool: its truth measures the teacher
            from ml.demo.truth import load_truth

            pool_truth = {v: r["labels"] for v, r in load_truth(settings.demo_dir).items() if r["split"] == "pool"}
        result["label_budget"] = label_budget(
            catalog,
            ctx,
            budgets,
            progress=lambda m: print(m, file=sys.stderr),
            seeds=args.seeds,
            pool_truth=pool_truth,
        )
        for b, entry in result["label_budget"]["budgets"].items():
            systems = ("editor only", "editor + pseudo-labels", "baseline", "baseline, pool's true labels")
            rows, head = format_rows({k: entry[k] for k in systems if k in entry}, f"budget {b}")
            sections += [
                "",
                f"Editor labels {b} ({entry['editor_videos']} videos); teacher pseudo-labels "
                f"{entry.get('pseudo_labelled_videos', 0)} videos {entry.get('teacher_error', '')}".rstrip(),
                md_table(rows, head),
            ]
            for name in ("teacher on pool", "teacher without prior on pool"):
                t = entry.get(name) or {}
                if "videos" in t:
                    f = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
                    sections.append(
                        f"{name}: {t['videos']} videos with text, {t['calls']} calls at its pseudo-label cut, "
                        f"precision {f(t['precision'])}, recall {f(t['recall'])}, GAP@20 {t['gap']:.3f}"
                    )
    if args.json:
        emit(result, True)
    else:
        print("\n".join(sections))
    return 0
