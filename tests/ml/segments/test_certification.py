"""Scene certification's gold: the videos it may certify on, and those it must leave out and count."""

from __future__ import annotations

import datetime as dt

import numpy as np

from ml.catalog.store import insert_rows
from tests.conftest import registry_rows
from tests.ml.catalog.test_holdout import register_student


class _Predictor:
    """Scores every scene 0.5: the test is about which videos are scored, not what they score."""

    categories = ("a", "b")
    max_frames = 64
    default_meta = np.zeros(0, np.float32)

    def score_arrays(self, frames, mask, meta):
        return np.full((len(frames), len(self.categories)), 0.5, np.float32)


def test_gold_the_student_learnt_from_certifies_no_scene_threshold(catalog, settings, tmp_path):
    """A spot-checked pool video imported as gold after the student trained on it has scores that are not
    held out: it is left out of the scenes certified on, and counted, as fusion certification does."""
    from ml.frames.embedding_store import shard_path, write_shard
    from ml.segments.certification import gold_scenes

    registry_rows(catalog, 3)
    now = dt.datetime(2026, 1, 2)
    with catalog.transaction() as con:
        insert_rows(
            con, "batch_members", ["video_id", "batch_id", "seq"], [(f"v{i}", "b00000001", i) for i in (1, 2, 3)]
        )
        insert_rows(
            con,
            "gold_scenes",
            ["video_id", "range_index", "start_s", "end_s", "category_id", "annotator", "created_at"],
            [(f"v{i}", 0, 0.0, 4.0, "a", "editor", now) for i in (1, 2, 3)],
        )
    rng = np.random.default_rng(0)
    write_shard(
        shard_path(settings.embeddings_dir, settings.image_encoder, "b00000001"),
        [(f"v{i}", np.arange(6.0), rng.normal(size=(6, 8)).astype(np.float32)) for i in (1, 2, 3)],
        encoder=settings.image_encoder,
    )
    register_student(catalog, tmp_path, "visual-1", {"v2": ("pseudo", [1, 0]), "v9": ("editor", [0, 1])}, ["a", "b"])

    gold = gold_scenes(catalog, settings, _Predictor(), visual_version="visual-1")
    assert gold.videos == ["v1", "v3"] and gold.student_trained_on == 1 and gold.without_frames == 0
    assert len(gold.scores) == len(gold.truth) >= 2
    everything = gold_scenes(catalog, settings, _Predictor())  # no student named: nothing to leave out
    assert everything.videos == ["v1", "v2", "v3"] and everything.student_trained_on == 0
