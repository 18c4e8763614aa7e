"""The `vidcat` command line. Each module in this package adds its commands through `register()`."""

from __future__ import annotations

import argparse
import importlib
import json
import math
import pkgutil
import sys
from typing import Any

from ml.errors import UserFacingError


class CommandError(RuntimeError):
    """A command could not do what was asked; the message says what to fix. Exit status 2."""


def emit(data: Any, as_json: bool) -> None:
    """Print a result as JSON (machine) or as readable lines (person)."""
    if as_json:
        print(json.dumps(data, indent=2, default=str, ensure_ascii=False))
    elif isinstance(data, dict):
        for k, v in data.items():
            print(f"{k}: {v}")
    else:
        print(data)


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1 (argparse then exits 2 naming the option)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def shares(text: str) -> list[float]:
    """An argparse type: comma-separated shares in (0, 1], e.g. 1.0,0.5,0.25 (a label budget)."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be shares such as 1.0,0.5,0.25, got {text!r}") from None
    if not values or any(not (math.isfinite(v) and 0 < v <= 1) for v in values):
        raise argparse.ArgumentTypeError(f"shares must lie in (0, 1], got {text!r}")
    return values


def open_context(args):
    """Settings (from --config), the catalog with its schema in place, and the working set."""
    from ml.catalog.store import open_catalog
    from ml.config import load_settings
    from ml.taxonomy import working_set_for

    settings = load_settings(args.config).ensure_dirs()
    return settings, open_catalog(settings.catalog_path), working_set_for(settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidcat",
        description="IAB content categories for every video: catalog, models and Dagster pipeline.",
    )
    parser.add_argument("--config", help="TOML settings file (default: ./vidcat.toml or $VIDCAT_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except (UserFacingError, CommandError, FileNotFoundError) as exc:
        # Only errors whose message says what to do: anything else is a bug and keeps its traceback.
        print(f"vidcat {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        sys.stderr.close()  # output piped into `head`: not an error
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
