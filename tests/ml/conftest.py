"""Fixtures that more than one ML test package trains on."""

from __future__ import annotations

import pytest

from ml.visual.synthetic import SyntheticCatalog, synthetic_catalog

SYNTHETIC_DIM = 16


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
