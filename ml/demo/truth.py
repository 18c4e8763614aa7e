"""The demo catalog's locked test: the videos nobody labelled, against the synthetic ground truth.

The ground truth file is read only here, at evaluation time; its labels never enter the catalog. The
demo records the unlabelled videos as the locked test *before* anything trains
(``lock_demo_test``), so the teacher, the student, its self-training and every threshold are fitted
without them (ml/catalog/holdout.py), exactly as a held-out share of gold is in production.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ml.catalog.holdout import lock_test, locked_test_ids
from ml.catalog.store import Catalog
from ml.catalog.videos import registered_ids
from ml.evaluation.locked import LockedTest

DEMO_SOURCE = "demo-ground-truth"


def load_truth(demo_dir: Path) -> dict[str, dict[str, Any]]:
    path = Path(demo_dir) / "ground_truth.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the demo ground truth exists only for `vidcat demo-catalog` data")
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return {r["video_id"]: r for r in rows if r.get("split") != "bad"}


def lock_demo_test(catalog: Catalog, demo_dir: Path) -> int:
    """Record the demo's `locked` split (videos nobody labelled) that is registered as the locked test (idempotent)."""
    truth = load_truth(demo_dir)
    registered = registered_ids(catalog)
    ids = [v for v, r in truth.items() if r["split"] == "locked" and v in registered]
    return lock_test(catalog, ids, DEMO_SOURCE)


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
