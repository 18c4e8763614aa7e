"""The demo catalog's locked test: the videos nobody labelled, scored against the synthetic ground truth.

The ground truth is read from ``ml/demo/truth.py`` here, at evaluation time only; its labels never
enter the catalog, and no stage imports this package.
"""

from __future__ import annotations

from pathlib import Path

from ml.catalog.holdout import locked_test_ids
from ml.catalog.store import Catalog
from ml.demo.truth import DEMO_SOURCE, load_truth
from ml.evaluation.locked import LockedTest


def demo_locked_test(catalog: Catalog, demo_dir: Path) -> LockedTest:
    """The locked test's videos with their true categories and kind of text."""
    truth = load_truth(demo_dir)
    locked = locked_test_ids(catalog, source=DEMO_SOURCE) & set(truth)
    ids = sorted(locked)
    return LockedTest(
        ids,
        {v: list(truth[v]["labels"]) for v in ids},
        {v: truth[v].get("text_kind", "?") for v in ids},
        "the demo's synthetic ground truth (videos nobody labelled)",
    )


def has_demo_test(catalog: Catalog, demo_dir: Path) -> bool:
    return (Path(demo_dir) / "ground_truth.jsonl").is_file() and bool(locked_test_ids(catalog))
