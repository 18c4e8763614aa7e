"""NeXtVLAD against mean pooling trained alone on the same targets: held-out figures, row for row."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ml.evaluation.architectures import compare_architecture_ranking
from ml.visual.model import ranking_metrics
from ml.visual.predictor import VisualPredictor
from tests.ml.conftest import SYNTHETIC_DIM, TINY_STUDENT

DIM = SYNTHETIC_DIM  # the shared synthetic catalog's feature size
TINY = dataclasses.replace(TINY_STUDENT, max_epochs=2)


@pytest.mark.slow
def test_architecture_ranking_reports_both_on_held_out_sets(synth, tmp_path):
    ids = sorted(synth.labels)
    held_out = ids[:30]
    labels = np.stack([synth.labels[v] for v in held_out])
    report = compare_architecture_ranking(
        synth.shards,
        synth.targets,
        None,
        synth.categories,
        {"truth": (held_out, labels)},
        TINY,
        out_dir=tmp_path,
    )
    assert report["excluded_from_training"] == 30 and set(report["archs"]) == {"nextvlad", "meanpool"}
    for arch in report["archs"].values():
        ev = arch["eval"]["truth"]
        assert ev["n_videos"] == 30 and ev["n_missing"] == 0
        # The figures are the stored model's on the held-out videos against their true labels, row for row.
        scored = {s.video_id: s.scores for s in VisualPredictor(arch["model_dir"]).predict_shards(synth.shards)}
        again = ranking_metrics(np.stack([scored[v] for v in held_out]), labels.astype(bool))
        assert {k: ev[k] for k in again} == pytest.approx(again, abs=1e-6)
        assert arch["inference_videos_per_s"] > 0 and arch["train_seconds"] > 0 and arch["param_count"] > 0
