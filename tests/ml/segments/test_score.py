"""Scene scores are the student's own aggregation over each scene's frames, through its ONNX graph."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ml.frames.embedding_store import VideoEmbeddings, iter_videos
from ml.segments.scenes import tile
from ml.segments.score import score_scenes
from ml.visual.synthetic import synthetic_catalog
from tests.ml.conftest import TINY_STUDENT

TINY = dataclasses.replace(TINY_STUDENT, max_epochs=1)


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    from ml.visual.predictor import VisualPredictor
    from ml.visual.training import train_visual_model

    syn = synthetic_catalog(tmp_path_factory.mktemp("emb"), 64, dim=16, n_categories=3, frames=(6, 20), seed=5)
    result = train_visual_model(syn.shards, syn.targets, None, syn.categories, TINY, tmp_path_factory.mktemp("m"))
    return VisualPredictor(result.model_dir), syn


def test_each_scene_scores_as_a_video_of_its_own_frames(student):
    predictor, syn = student
    videos = [v for v in iter_videos(syn.shards) if v.n_frames >= 12][:3]
    for v in videos:
        n = v.n_frames
        scenes = tile([3.5, n - 4.5], v.timestamps, float(n))
        got = score_scenes(predictor, v.embeddings, scenes)
        assert got.shape == (len(scenes), len(predictor.categories))
        for s, row in zip(scenes, got, strict=True):
            alone = VideoEmbeddings(
                "x", v.timestamps[s.first_frame : s.end_frame], v.embeddings[s.first_frame : s.end_frame]
            )
            np.testing.assert_allclose(row, next(iter(predictor.predict([alone]))).scores, rtol=1e-5, atol=1e-6)
        whole = score_scenes(predictor, v.embeddings, tile([], v.timestamps, float(n)))
        np.testing.assert_allclose(whole[0], next(iter(predictor.predict([v]))).scores, rtol=1e-5, atol=1e-6)


def test_a_scene_without_frames_is_not_scored(student):
    predictor, syn = student
    v = next(iter_videos(syn.shards))
    scenes = tile([float(v.n_frames) + 1.0], v.timestamps, float(v.n_frames) + 30.0)  # past the last frame
    got = score_scenes(predictor, v.embeddings, scenes)
    assert np.isfinite(got[0]).all() and np.isnan(got[1]).all()
