"""Run the benchmarks: ``python -m bench [NAME ...] [--json PATH]``.

Every module of this package with a ``run() -> dict`` is a benchmark, found by name, so adding one is
adding a file. Results print as one JSON document (for machines and the docs) followed by a markdown
table of the scalar figures (for people).
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def discover() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        m.name
        for m in pkgutil.iter_modules([str(here)])
        if not m.name.startswith("_") and hasattr(importlib.import_module(f"bench.{m.name}"), "run")
    )


def run_one(name: str) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = importlib.import_module(f"bench.{name}").run()
    except Exception as exc:  # one broken benchmark must not hide the others' figures
        traceback.print_exc(file=sys.stderr)
        result = {"error": f"{type(exc).__name__}: {exc}"}
    result = dict(result)
    result.setdefault("bench_s", round(time.perf_counter() - started, 2))
    return result


def markdown(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| benchmark | figure | value |", "| --- | --- | --- |"]
    for name, res in results.items():
        for key, value in res.items():
            if isinstance(value, dict | list):
                continue
            if isinstance(value, float):
                value = f"{value:.4g}"
            lines.append(f"| {name} | {key} | {value} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    available = discover()
    unknown = sorted(set(args.names) - set(available))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {available}")
    results = {}
    for name in args.names or available:
        print(f"running bench.{name} ...", file=sys.stderr, flush=True)
        results[name] = run_one(name)
    text = json.dumps(results, indent=2, default=str)
    print(text)
    print()
    print(markdown(results))
    if args.json:
        args.json.write_text(text + "\n")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
