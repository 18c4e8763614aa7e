"""Text-model commands: the real-data evaluation and the spot-check review sheet."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestration.cli import CommandError, emit, open_context, shares


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval-text", help="cross-lingual evaluation on YouTube-trending-format files")
    p.add_argument("--data", required=True, help="folder of {CC}_youtube_trending_data.csv and {CC}_category_id.json")
    p.add_argument("--train", required=True, help="countries to train on, e.g. GB,US,CA,FR")
    p.add_argument("--test", required=True, help="countries to test on, e.g. DE,MX,BR,IN")
    p.add_argument("--max-chars", type=int, default=300, help="text budget per video (production: 1500)")
    p.add_argument("--cache-dir", help="embedding cache (default: <data root>/cache/text_eval)")
    p.add_argument(
        "--budget",
        type=shares,
        help="few-label regime: shares of a 300-title training sample, e.g. 1.0,0.5,0.25; trains the teacher "
        "with and without the taxonomy prior at each",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval_text)

    p = sub.add_parser("spot-check", help="review sheet (CSV + HTML) of random pseudo-labelled videos")
    p.add_argument("--category", required=True)
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="folder (default: <data root>/reports/spot-check)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_spot_check)


def cmd_eval_text(args) -> int:
    from tqdm import tqdm

    from ml.config import load_settings
    from ml.evaluation.text import evaluate_text_model

    settings = load_settings(args.config).ensure_dirs()
    data = Path(args.data)
    if not data.is_dir():
        raise CommandError(f"{data} is not a folder; point --data at the YouTube trending files")
    train = [c.strip().upper() for c in args.train.split(",") if c.strip()]
    test = [c.strip().upper() for c in args.test.split(",") if c.strip()]
    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, file=sys.stderr, disable=None, leave=False)
        bar.update(done - bar.n)

    cache = Path(args.cache_dir) if args.cache_dir else settings.data_root / "cache" / "text_eval"
    result = evaluate_text_model(
        data, train, test, max_chars=args.max_chars, cache_dir=cache, progress=progress, budgets=args.budget
    )
    for bar in bars.values():
        bar.close()
    emit(result, args.json)
    return 0


def cmd_spot_check(args) -> int:
    from ml.text.spot_check import spot_check

    settings, catalog, ws = open_context(args)
    out = Path(args.out) if args.out else settings.reports_dir / "spot-check"
    try:
        result = spot_check(catalog, settings, ws, args.category, args.n, out, seed=args.seed)
    except (KeyError, LookupError) as exc:
        raise CommandError(str(exc).strip("'\"")) from exc
    emit(result, args.json)
    return 0
