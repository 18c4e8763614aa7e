"""NeXtVLAD against mean pooling trained alone on the same targets: held-out figures, row for row."""

from __future__ import annotations

import numpy as np
import pytest

from ml.evaluation.architectures import compare_architecture_ranking
from ml.visual.model import ranking_metrics
from ml.visual.network import VisualTrainConfig
from ml.visual.predictor import VisualPredictor
from ml.visual.synthetic import synthetic_catalog

DIM = 16
TINY = VisualTrainConfig(
    cluster_size=4,
    groups=2,
    hidden_size=16,
    gating_reduction=4,
    batch_size=16,
    eval_batch_size=32,
    max_epochs=2,
    patience=10,
    val_fraction=0.25,
    lr=3e-3,
    enable_progress_bar=False,
)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """160 videos of 3-8 frames in 4 shards; 2 'distinct' and 2 'blend' categories."""
    return synthetic_catalog(
        tmp_path_factory.mktemp("emb"), 160, dim=DIM, n_categories=4, frames=(3, 8), videos_per_shard=40, seed=11
    )


@pytest.mark.slow
def test_architecture_ranking_reports_both_on_held_out_sets(catalog, tmp_path):
    ids = sorted(catalog.labels)
    held_out = ids[:30]
    labels = np.stack([catalog.labels[v] for v in held_out])
    report = compare_architecture_ranking(
        catalog.shards,
        catalog.targets,
        None,
        catalog.categories,
        {"truth": (held_out, labels)},
        TINY,
        out_dir=tmp_path,
    )
    assert report["excluded_from_training"] == 30 and set(report["archs"]) == {"nextvlad", "meanpool"}
    for arch in report["archs"].values():
        ev = arch["eval"]["truth"]
        assert ev["n_videos"] == 30 and ev["n_missing"] == 0
        # The figures are the stored model's on the held-out videos against their true labels, row for row.
        scored = {s.video_id: s.scores for s in VisualPredictor(arch["model_dir"]).predict_shards(catalog.shards)}
        again = ranking_metrics(np.stack([scored[v] for v in held_out]), labels.astype(bool))
        assert {k: ev[k] for k in again} == pytest.approx(again, abs=1e-6)
        assert arch["inference_videos_per_s"] > 0 and arch["train_seconds"] > 0 and arch["param_count"] > 0
