"""Fixtures that more than one ML test package trains on."""

from __future__ import annotations

import pytest

from ml.visual.network import VisualTrainConfig
from ml.visual.synthetic import SyntheticCatalog, synthetic_catalog

SYNTHETIC_DIM = 16
# A student small enough to train on the synthetic catalogs in seconds; tests set their own epochs.
TINY_STUDENT = VisualTrainConfig(
    cluster_size=4,
    groups=2,
    hidden_size=16,
    gating_reduction=4,
    batch_size=16,
    eval_batch_size=32,
    max_epochs=4,
    patience=10,
    val_fraction=0.25,
    lr=3e-3,
    enable_progress_bar=False,
)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> SyntheticCatalog:
    """160 videos of 3-8 frames in 4 shards; 2 'distinct' and 2 'blend' categories: a tiny student trains in seconds."""
    return synthetic_catalog(
        tmp_path_factory.mktemp("emb"),
        160,
        dim=SYNTHETIC_DIM,
        n_categories=4,
        frames=(3, 8),
        videos_per_shard=40,
        seed=11,
    )
