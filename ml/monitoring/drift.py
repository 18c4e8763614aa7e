"""Drift of a batch against the training reference, on features that matter to this product.

The reference is the data the current visual model learnt from (its pseudo-labelled videos, a seeded
random sample of at most REFERENCE_MAX_VIDEOS of them): a fixed PCA of their mean-pooled frame
embeddings (fitted once, stored), their language mix and text presence, their container facts, and
their final categories. It is built once per visual-model
version and kept under the reports folder, so every batch of that model is compared to the same
frame. Reports follow the retention policy of data_checks/report_retention.py.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml.catalog.drift_inputs import category_pairs, container_facts, text_facts
from ml.catalog.labels import pseudo_labelled_ids
from ml.catalog.model_registry import ModelRecord
from ml.catalog.store import Catalog
from ml.frames.embedding_store import iter_videos, list_shards, shard_path

REFERENCE_MAX_VIDEOS = 5000
# Fixed so that two runs building the same visual version's reference (or a rebuild after a cleanup)
# draw the same videos.
REFERENCE_SEED = 0
TOP_CATEGORIES = 10


@dataclass
class Reference:
    features: Any  # pandas.DataFrame, indexed by video_id
    pca: dict[str, Any]
    languages: list[str]
    categories: list[str]
    version: str


def _features(
    catalog: Catalog,
    video_ids: list[str],
    shards: list[Path],
    pca: dict[str, Any],
    languages: list[str],
    categories: list[str],
    text_version: str | None,
    fusion_version: str | None,
):  # -> DataFrame
    from data_checks.drift_features import (
        combine_features,
        embedding_drift_features,
        prediction_rate_features,
        probe_features,
        text_features,
    )

    emb = embedding_drift_features(iter_videos(shards, video_ids=video_ids), pca)
    text = text_features(text_facts(catalog, video_ids, text_version), languages)
    probe = probe_features(container_facts(catalog, video_ids))
    preds = category_pairs(catalog, video_ids, fusion_version)
    rates = prediction_rate_features(preds, video_ids, categories) if fusion_version else None
    return combine_features(emb, text, probe, rates)


def training_videos(catalog: Catalog, visual: ModelRecord) -> list[str]:
    """The videos the visual model learnt from: its out-of-distribution reference (a seeded sample of its
    training split), or, for a model stored without one, the videos its teacher pseudo-labelled."""
    from ml.visual.ood import load_detector

    detector = load_detector(Path(visual.artifact_path))
    if detector is not None:
        return sorted(detector.reference_ids)
    return pseudo_labelled_ids(catalog, visual.training_data.get("teacher_version"))


def reference_sample(ids: list[str], k: int = REFERENCE_MAX_VIDEOS, seed: int = REFERENCE_SEED) -> list[str]:
    """At most ``k`` of ``ids`` drawn at random, sorted.

    Training ids arrive sorted, and ids sort roughly by upload: the first ``k`` would be the oldest
    uploads, a reference from another era than the model's training data as a whole.
    """
    ordered = sorted(ids)
    if len(ordered) <= k:
        return ordered
    return sorted(random.Random(seed).sample(ordered, k))


def build_reference(
    catalog: Catalog, settings, visual: ModelRecord, text_version: str | None, fusion_version: str | None
) -> Reference:
    from data_checks.drift_features import fit_pca, mean_pool, top_categories

    folder = settings.reports_dir / "drift" / f"reference-{visual.version}"
    meta_path = folder / "reference.json"
    if meta_path.exists():
        import pandas as pd

        meta = json.loads(meta_path.read_text())
        features = pd.read_parquet(folder / "features.parquet")
        return Reference(features, meta["pca"], meta["languages"], meta["categories"], visual.version)
    ids = reference_sample(training_videos(catalog, visual), REFERENCE_MAX_VIDEOS)
    if not ids:
        raise ValueError(f"the visual model {visual.version} names no training videos to build a drift reference")
    shards = list_shards(settings.embeddings_dir, settings.image_encoder)
    _, matrix, _ = mean_pool(iter_videos(shards, video_ids=ids))
    pca = fit_pca(matrix)
    langs = text_facts(catalog, ids, text_version)["language"].fillna("none").value_counts()
    languages = [str(x) for x in langs.index[:6]]
    preds = category_pairs(catalog, ids, fusion_version)
    categories = top_categories(preds, TOP_CATEGORIES) if len(preds) else []
    features = _features(catalog, ids, shards, pca, languages, categories, text_version, fusion_version)
    # Two runs may build it at once: each writes to temporary names and renames; the JSON, which says
    # "the reference exists", goes last.
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".features.{os.getpid()}.parquet"
    features.to_parquet(tmp)
    os.replace(tmp, folder / "features.parquet")
    tmp_meta = folder / f".reference.{os.getpid()}.json"
    tmp_meta.write_text(
        json.dumps(
            {
                "pca": pca,
                "languages": languages,
                "categories": categories,
                "videos": len(ids),
                "fusion_version": fusion_version,
            }
        )
    )
    os.replace(tmp_meta, meta_path)
    return Reference(features, pca, languages, categories, visual.version)


def batch_drift(
    catalog: Catalog,
    settings,
    reference: Reference,
    batch_id: str,
    video_ids: list[str],
    text_version: str | None,
    fusion_version: str | None,
    warn_share: float,
):
    from data_checks.drift import drift_report
    from data_checks.report_retention import report_paths

    shard = shard_path(settings.embeddings_dir, settings.image_encoder, batch_id)
    shards = [shard] if shard.exists() else []
    current = _features(
        catalog,
        video_ids,
        shards,
        reference.pca,
        reference.languages,
        reference.categories,
        text_version,
        fusion_version,
    )
    html, js = report_paths(settings.reports_dir / "drift", batch_id)
    html.parent.mkdir(parents=True, exist_ok=True)
    summary = drift_report(reference.features, current, html, warn_share=warn_share)
    summary.write_json(js)
    return summary, html, js
