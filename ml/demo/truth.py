"""The demo catalog's ground truth, and its locked test: the videos nobody labelled.

The ground truth file is read only here; its labels never enter the catalog, and only the evaluation
(``ml/evaluation/demo.py``) scores against them. The demo records the unlabelled videos as the locked
test *before* anything trains (``lock_demo_test``), so the teacher, the student, its self-training and
every threshold are fitted without them (ml/catalog/holdout.py), exactly as a held-out share of gold
is in production.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ml.catalog.holdout import lock_test
from ml.catalog.store import Catalog
from ml.catalog.videos import registered_ids

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
