"""Evaluation commands: the fusion comparison and the locked test (`report`), the student (`eval-visual`),
the scene stage on the segment benchmark (`eval-segments`).

What they measure and print is computed in ml/evaluation/report.py; here are the options and the output.
"""

from __future__ import annotations

import argparse
import sys

from orchestration.cli import CommandError, emit, open_context, positive_int, shares


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

    p = sub.add_parser(
        "eval-segments",
        help="scenes on the segment benchmark: boundary F1, per-second categories against the video's, segment MAP",
    )
    p.add_argument("--seed", type=int, default=None, help="the benchmark's seed (default: the documented one)")
    p.add_argument("--gold-videos", type=positive_int, default=None, help="a smaller benchmark of its own: gold videos")
    p.add_argument("--locked-videos", type=positive_int, default=None, help="... and locked videos")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval_segments)


def cmd_report(args) -> int:
    from ml.evaluation.report import pipeline_report

    settings, catalog, ws = open_context(args)
    data, text = pipeline_report(settings, catalog, ws)
    emit(data, True) if args.json else print(text)
    return 0


def cmd_eval_visual(args) -> int:
    from ml.evaluation.report import student_report

    settings, catalog, ws = open_context(args)
    if args.label_budget is not None and args.seeds < 1:
        raise CommandError("--seeds must be at least 1")
    result, text = student_report(
        settings,
        catalog,
        ws,
        args.label_budget,
        ablation=args.ablation,
        seeds=args.seeds,
        progress=lambda m: print(m, file=sys.stderr),
    )
    if args.json:
        emit(result, True)
    else:
        print(text)
    return 0


def cmd_eval_segments(args) -> int:
    from tqdm import tqdm

    from ml.demo.segments import DEFAULT_SEED, GOLD_VIDEOS, LOCKED_VIDEOS
    from ml.evaluation.segments import evaluate_segments, format_segments

    settings, catalog, _ = open_context(args)
    bars: dict[str, tqdm] = {}
    labels = {"render": "rendering the benchmark", "embed": "sampling and embedding", "scenes": "scenes"}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(
                total=total, desc=labels.get(stage, stage), unit="video", file=sys.stderr, disable=None
            )
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    try:
        result = evaluate_segments(
            settings,
            catalog,
            seed=DEFAULT_SEED if args.seed is None else args.seed,
            progress=progress,
            sizes=(args.gold_videos or GOLD_VIDEOS, args.locked_videos or LOCKED_VIDEOS),
        )
    finally:
        for bar in bars.values():
            bar.close()
    if args.json:
        emit(result.as_dict(), True)
    else:
        print(format_segments(result))
    return 0
