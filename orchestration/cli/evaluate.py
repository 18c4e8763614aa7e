"""Evaluation commands: the fusion comparison, final predictions against the demo truth, architectures."""

from __future__ import annotations

import argparse
import json

from orchestration.cli import CommandError, emit, open_context


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="text-only / visual-only / union / max / stacked on held-out gold, and more")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("eval-visual", help="NeXtVLAD vs mean pooling on the same pseudo-labels (trains both)")
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
            _f(m["gap"]),
        )
        for rule, m in comparison.items()
    ]
    table = md_table(rows, ["rule", "coverage", "categories/video", "precision", "recall", "F1", "GAP@20"])
    return {
        "fusion_version": fusion.version,
        "chosen_rule": fusion.params.get("rule"),
        "gold_videos": fusion.training_data.get("gold_videos"),
        "comparison": comparison,
    }, table


def _f(x) -> str:
    return "n/a" if x is None or x != x else f"{x:.3f}"


def report_text(settings, catalog) -> tuple[dict, str]:
    from ml.catalog.model_registry import latest_model
    from ml.catalog.summary import md_table
    from ml.demo.evaluate import final_predictions_vs_truth

    data, table = fusion_table(catalog)
    lines = [
        f"Fusion {data['fusion_version']}: rules compared out of fold on {data['gold_videos']} gold videos "
        f"(* = chosen, the best F1 among rules holding the precision target)",
        table,
    ]
    visual = latest_model(catalog, "visual_model", required=False)
    if visual is not None and visual.metrics.get("gold"):
        gold = visual.metrics["gold"]
        data["visual_gold"] = gold
        lines += [
            "",
            "Visual student on the gold set (its categories):",
            md_table(
                [(a, g.get("videos"), _f(g.get("gap_at_20")), _f(g.get("map"))) for a, g in gold.items()],
                ["architecture", "videos", "GAP@20", "mAP"],
            ),
        ]
    if (settings.demo_dir / "ground_truth.jsonl").exists():
        truth = final_predictions_vs_truth(catalog, settings.demo_dir)
        data["demo_truth"] = truth
        rows = [("all", truth["videos"], *_cells(truth["all"]))]
        rows += [(k, v["videos"], *_cells(v)) for k, v in truth["by_text_kind"].items()]
        lines += [
            "",
            "Final categories on unlabelled demo videos vs the synthetic ground truth, by kind of text:",
            md_table(rows, ["text", "videos", "coverage", "categories/video", "precision", "recall", "F1"]),
            "precision by source: " + json.dumps(truth["precision_by_source"]),
        ]
    return data, "\n".join(lines)


def _cells(m: dict) -> tuple:
    return (
        f"{m['coverage']:.3f}",
        f"{m['categories_per_video']:.2f}",
        _f(m["precision"]),
        _f(m["recall"]),
        _f(m["f1"]),
    )


def cmd_report(args) -> int:

    settings, catalog, _ = open_context(args)
    data, text = report_text(settings, catalog)
    emit(data, True) if args.json else print(text)
    return 0


def cmd_eval_visual(args) -> int:
    from ml.demo.evaluate import compare_visual_architectures

    settings, catalog, _ = open_context(args)
    result = compare_visual_architectures(catalog, settings, settings.demo_dir)
    emit(result, args.json)
    return 0
