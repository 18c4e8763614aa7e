"""Evaluation against the demo catalog's full ground truth (synthetic data only).

The gold set is what production has; the demo also knows every video's true categories, so it can
say how the final predictions do on videos no human labelled, per kind of text (none, misleading,
...), which is where the visual student is supposed to earn its keep.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ml.catalog.model_registry import latest_model
from ml.catalog.store import Catalog
from ml.fusion.rules import rule_metrics

HELD_OUT_SHARE = 0.3


def load_truth(demo_dir: Path) -> dict[str, dict[str, Any]]:
    path = Path(demo_dir) / "ground_truth.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the demo ground truth exists only for `vidcat demo-catalog` data")
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return {r["video_id"]: r for r in rows if r.get("split") != "bad"}


def final_predictions_vs_truth(catalog: Catalog, demo_dir: Path) -> dict[str, Any]:
    """Final categories of the current fusion model on videos with no human label, against the truth."""
    fusion = latest_model(catalog, "fusion")
    truth = load_truth(demo_dir)
    categories = list(fusion.categories)
    col = {c: j for j, c in enumerate(categories)}
    ids = [v for v, r in truth.items() if r["split"] == "unlabelled"]
    classified = {
        r[0]
        for r in catalog.query(
            "SELECT video_id FROM video_results WHERE model_version = ? AND status = 'classified'", [fusion.version]
        )
    }
    ids = [v for v in ids if v in classified]
    row = {v: i for i, v in enumerate(ids)}
    y = np.zeros((len(ids), len(categories)), bool)
    for v in ids:
        for c in truth[v]["labels"]:
            if c in col:
                y[row[v], col[c]] = True
    emitted = np.zeros_like(y)
    score = np.full(y.shape, np.nan)
    by_source: dict[str, np.ndarray] = {}
    for v, c, s, src in catalog.query(
        "SELECT video_id, category_id, score, source FROM predictions WHERE model_version = ?", [fusion.version]
    ):
        if v in row and c in col:
            emitted[row[v], col[c]] = True
            score[row[v], col[c]] = s
            by_source.setdefault(src, np.zeros_like(y))[row[v], col[c]] = True
    out: dict[str, Any] = {
        "fusion_version": fusion.version,
        "rule": fusion.params.get("rule"),
        "videos": len(ids),
        "all": rule_metrics(emitted, score, y),
    }
    out["precision_by_source"] = {
        src: round(float((m & y).sum() / max(m.sum(), 1)), 3) for src, m in sorted(by_source.items())
    }
    kinds: dict[str, list[int]] = {}
    for v in ids:
        kinds.setdefault(truth[v].get("text_kind", "?"), []).append(row[v])
    out["by_text_kind"] = {
        k: {"videos": len(ix), **rule_metrics(emitted[ix], score[ix], y[ix])} for k, ix in sorted(kinds.items())
    }
    return out


def held_out(video_id: str) -> bool:
    """A fixed 30% of videos, by hash, kept out of the architecture comparison's training."""
    return zlib.crc32(video_id.encode()) % 100 < HELD_OUT_SHARE * 100


def compare_visual_architectures(catalog: Catalog, settings, demo_dir: Path | None) -> dict[str, Any]:
    """NeXtVLAD vs mean pooling, same pseudo-labels, seed and budget; held-out truth and gold."""
    from ml.catalog.labels import label_matrix
    from ml.frames.embedding_store import list_shards
    from ml.visual.data import targets_from_rows
    from ml.visual.model import VisualTrainConfig, compare_architectures
    from ml.visual.stage import load_meta

    student = latest_model(catalog, "visual_model")
    teacher_version = student.training_data.get("teacher_version")
    categories = list(student.categories)
    rows = catalog.query(
        "SELECT video_id, category_id, target FROM pseudo_labels WHERE model_version = ?", [teacher_version]
    )
    targets = targets_from_rows(rows, categories, unknown=np.nan)
    eval_sets: dict[str, tuple[list[str], np.ndarray]] = {}
    if demo_dir is not None and (Path(demo_dir) / "ground_truth.jsonl").exists():
        truth = load_truth(demo_dir)
        ids = sorted(v for v in truth if held_out(v))
        col = {c: j for j, c in enumerate(categories)}
        y = np.zeros((len(ids), len(categories)), np.float32)
        for i, v in enumerate(ids):
            for c in truth[v]["labels"]:
                if c in col:
                    y[i, col[c]] = 1
        eval_sets["demo ground truth (held out)"] = (ids, y)
    gold_ids, gold_y = label_matrix(catalog, "gold", categories)
    if gold_ids:
        eval_sets["gold"] = (gold_ids, gold_y)
    config = VisualTrainConfig(max_epochs=settings.visual_max_epochs, enable_progress_bar=False)
    shards = list_shards(settings.embeddings_dir, settings.image_encoder)
    return compare_architectures(
        shards, targets, load_meta(catalog), categories, eval_sets, config, out_dir=settings.models_dir / "comparisons"
    )
