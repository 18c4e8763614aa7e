"""The drift reference and a batch's report, on a synthetic catalog and shards: the reference is a
random sample of the visual model's training videos, built once per visual version, and a batch
whose frames moved is flagged while one drawn like the training data is not."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

import data_checks.drift_features as drift_features
from ml.catalog.model_registry import ModelRecord
from ml.catalog.store import insert_rows
from ml.frames.embedding_store import shard_path, write_shard
from ml.monitoring import drift
from tests.conftest import registry_rows

DIM = 16
TRAINING = 120  # v1..v120: the teacher pseudo-labelled them all
SAMPLE = 40  # the reference's cap in these tests: a third of the training videos
BATCH = 60  # each batch's videos
_BASIS = np.random.default_rng(7).normal(0, 1, (DIM, DIM))
AT = dt.datetime(2026, 1, 1)


def _frames(rng: np.random.Generator, shift: float) -> np.ndarray:
    k = int(rng.integers(3, 7))
    return ((rng.normal(0, 1, (k, DIM)) @ _BASIS) * 0.1 + 1.0 + shift).astype(np.float32)


def _videos(
    catalog, settings, batch_id: str, first: int, n: int, shift: float, seed: int, size=(1280, 720, 30.0)
) -> list[str]:
    """Registered videos ``v<first>..``, probed at ``size`` (width, height, fps), frames in ``batch_id``'s shard."""
    width, height, fps = size
    rng = np.random.default_rng(seed)
    ids = [f"v{i}" for i in range(first, first + n)]
    with catalog.transaction() as con:
        insert_rows(
            con,
            "video_probe",
            ["video_id", "batch_id", "duration_s", "fps", "width", "height", "bit_rate", "probed_at"],
            [
                (v, batch_id, float(rng.uniform(20, 60)), fps, width, height, int(rng.integers(5e5, 2e6)), AT)
                for v in ids
            ],
        )
    records = [(v, np.arange(len(e), dtype=np.float64), e) for v in ids for e in [_frames(rng, shift)]]
    write_shard(shard_path(settings.embeddings_dir, settings.image_encoder, batch_id), records, encoder="test")
    return ids


def _predictions(catalog, fusion: str, ids: list[str], seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = [
        (v, str(c), fusion, 0.9, "fused", AT) for v in ids for c in rng.choice([101, 102, 103, 104], 2, replace=False)
    ]
    columns = ["video_id", "category_id", "model_version", "score", "source", "predicted_at"]
    with catalog.transaction() as con:
        insert_rows(con, "predictions", columns, rows)


def _visual(tmp_path: Path, version: str) -> ModelRecord:
    """A student stored without an out-of-distribution detector: its training videos are its teacher's."""
    folder = tmp_path / "models" / version
    folder.mkdir(parents=True)
    return ModelRecord("visual_model", version, AT, folder, [], {}, {}, {"teacher_version": "teacher-1"})


@pytest.fixture
def world(settings, catalog, tmp_path, monkeypatch):
    monkeypatch.setattr(drift, "REFERENCE_MAX_VIDEOS", SAMPLE)
    registry_rows(catalog, TRAINING + 2 * BATCH)
    training = _videos(catalog, settings, "train", 1, TRAINING, 0.0, seed=1)
    with catalog.transaction() as con:
        insert_rows(
            con,
            "pseudo_labels",
            ["video_id", "category_id", "model_version", "target", "kind"],
            [(v, "101", "teacher-1", 1.0, "positive") for v in training],
        )
    _predictions(catalog, "fusion-1", training, seed=2)
    return settings, catalog


def _spy_on_fits(monkeypatch) -> list[int]:
    fits: list[int] = []
    real = drift_features.fit_pca

    def counting(matrix, *args, **kwargs):
        fits.append(len(matrix))
        return real(matrix, *args, **kwargs)

    monkeypatch.setattr(drift_features, "fit_pca", counting)
    return fits


def test_the_reference_is_a_seeded_random_sample_of_the_training_videos(world, tmp_path):
    settings, catalog = world
    reference = drift.build_reference(catalog, settings, _visual(tmp_path, "visual-1"), None, "fusion-1")
    chosen = list(reference.features.index)
    training = sorted(f"v{i}" for i in range(1, TRAINING + 1))
    assert len(chosen) == SAMPLE and set(chosen) <= set(training)
    # Not the lexicographically first (the oldest uploads), and spread over the whole training set.
    assert sorted(chosen) != training[:SAMPLE]
    assert sum(v in training[SAMPLE:] for v in chosen) >= SAMPLE // 3
    assert drift.reference_sample(training, SAMPLE) == sorted(chosen)  # the same draw every time
    assert drift.reference_sample(training[:10], SAMPLE) == training[:10]  # fewer than the cap: all


def test_the_reference_is_built_once_per_visual_version(world, tmp_path, monkeypatch):
    settings, catalog = world
    fits = _spy_on_fits(monkeypatch)
    first = drift.build_reference(catalog, settings, _visual(tmp_path, "visual-1"), None, "fusion-1")
    again = drift.build_reference(catalog, settings, _visual(tmp_path / "x", "visual-1"), None, "fusion-1")
    assert fits == [SAMPLE]
    assert again.pca == first.pca and again.categories == first.categories
    assert list(again.features.index) == list(first.features.index)
    drift.build_reference(catalog, settings, _visual(tmp_path / "y", "visual-2"), None, "fusion-1")
    assert fits == [SAMPLE, SAMPLE]  # a new student: a new reference


def test_a_shifted_batch_is_flagged_and_a_like_one_is_not_across_a_fusion_change(world, tmp_path, monkeypatch):
    settings, catalog = world
    visual = _visual(tmp_path, "visual-1")
    reference = drift.build_reference(catalog, settings, visual, None, "fusion-1")
    assert reference.categories  # the reference's category rates come from fusion-1
    like = _videos(catalog, settings, "like", TRAINING + 1, BATCH, 0.0, seed=3)
    # Another source: other frames and smaller, slower files.
    moved = _videos(catalog, settings, "moved", TRAINING + BATCH + 1, BATCH, 0.6, seed=4, size=(640, 360, 25.0))
    # A newer fusion scored the batches; the reference stays the one built for this student.
    _predictions(catalog, "fusion-2", like + moved, seed=5)
    fits = _spy_on_fits(monkeypatch)
    reused = drift.build_reference(catalog, settings, visual, None, "fusion-2")
    assert fits == [] and reused.categories == reference.categories
    summaries = {}
    for batch_id, ids in (("like", like), ("moved", moved)):
        summary, html, js = drift.batch_drift(catalog, settings, reused, batch_id, ids, None, "fusion-2", 0.3)
        assert html.exists() and js.exists()
        assert summary.n_current == BATCH and summary.n_reference == SAMPLE
        summaries[batch_id] = summary
    assert set(summaries["moved"].columns) == set(summaries["like"].columns)
    assert any(c.startswith("cat_") for c in summaries["like"].columns)
    assert summaries["moved"].warning and not summaries["like"].warning
    assert {"emb_norm", "width", "height", "fps"} <= set(summaries["moved"].drifted_columns)
