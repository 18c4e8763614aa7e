"""Training, checkpointing, export and scoring of the visual model, on a tiny synthetic synth."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from ml.visual.data import split_ids
from ml.visual.meta import META_DIM, meta_vector
from ml.visual.model import load_checkpoint, masked_bce, ranking_metrics
from ml.visual.network import bn_momentum_for, param_count
from ml.visual.nextvlad import MeanPoolClassifier
from ml.visual.predictor import VisualPredictor, _session
from ml.visual.training import train_visual_model
from tests.ml.conftest import SYNTHETIC_DIM, TINY_STUDENT

DIM = SYNTHETIC_DIM  # the shared synthetic catalog's feature size
TINY = TINY_STUDENT


@pytest.fixture(scope="module")
def meta(synth):
    return {
        vid: meta_vector({"language": "en", "duration_s": float(n), "has_audio": i % 2 == 0})
        for i, (vid, n) in enumerate(sorted(synth.n_frames.items()))
    }


@pytest.fixture(scope="module")
def stopped(synth, meta, tmp_path_factory):
    """A run with metadata that early stopping ends after two epochs (no gain can reach min_delta)."""
    config = dataclasses.replace(TINY, max_epochs=10, patience=1, min_delta=1.0)
    return train_visual_model(
        synth.shards, synth.targets, meta, synth.categories, config, tmp_path_factory.mktemp("models")
    )


def _weights(result) -> dict[str, torch.Tensor]:
    return torch.load(result.checkpoint_path, map_location="cpu", weights_only=True)["state_dict"]


def test_masked_bce_ignores_unknown_targets_and_takes_soft_ones():
    logits = torch.tensor([[0.5, -1.0, 2.0], [0.0, 1.0, -2.0]])
    targets = torch.tensor([[1.0, float("nan"), 0.3], [0.0, 0.8, float("nan")]])
    known = ~torch.isnan(targets)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[known], targets[known], reduction="sum") / 2
    assert torch.allclose(masked_bce(logits, targets), expected)


def test_bn_momentum_follows_the_run_length():
    assert bn_momentum_for(320, 32) == pytest.approx(0.4)  # a demo: 10 steps an epoch
    assert bn_momentum_for(32, 32) == 0.5
    assert bn_momentum_for(50_000, 32) == 0.01  # the product keeps ml/visual/nextvlad.py's value


@pytest.mark.slow
def test_training_improves_val_gap_and_is_deterministic(synth, tmp_path):
    first = train_visual_model(synth.shards, synth.targets, None, synth.categories, TINY, tmp_path / "a")
    second = train_visual_model(synth.shards, synth.targets, None, synth.categories, TINY, tmp_path / "b")
    m = first.metrics
    assert m["val_gap_at_20"] > m["untrained_val_gap_at_20"] + 0.2
    assert first.history == second.history and first.metrics == second.metrics
    a, b = _weights(first), _weights(second)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert len(first.history) == 4 and first.history[-1]["train_loss"] < first.history[0]["train_loss"]
    assert first.videos["train"] == first.videos["train_targets"] and first.videos["val"] == first.videos["val_targets"]
    assert first.videos["train"] + first.videos["val"] == len(synth.targets)
    assert first.history[1]["lr"] == pytest.approx(first.history[0]["lr"] * TINY.lr_decay)
    assert torch.get_num_threads() >= 1 and not torch.are_deterministic_algorithms_enabled()  # switches put back


def test_early_stopping_keeps_and_reloads_the_best_checkpoint(stopped, synth, meta):
    history = stopped.history
    assert stopped.metrics["stopped_early"] and len(history) == 2
    best = int(np.argmax([h["val_gap"] for h in history]))
    assert stopped.metrics["best_epoch"] == history[best]["epoch"]
    # the reloaded checkpoint reproduces the best epoch's validation GAP, not the last epoch's
    assert stopped.metrics["val_gap_at_20"] == pytest.approx(history[best]["val_gap"], abs=1e-6)
    assert stopped.metrics["checkpoint_val_gap"] == pytest.approx(history[best]["val_gap"], abs=1e-6)
    # and so does the exported model the predictor loads
    _, val = split_ids(synth.targets, TINY.val_fraction)
    predictor = VisualPredictor(stopped.model_dir)
    scores = {s.video_id: s.scores for s in predictor.predict_shards(synth.shards, video_ids=val, meta=meta)}
    y = np.stack([synth.targets[v] for v in val]) >= 0.5
    gap = ranking_metrics(np.stack([scores[v] for v in val]), y)["gap_at_20"]
    assert gap == pytest.approx(stopped.metrics["val_gap_at_20"], abs=1e-4)
    manifest = json.loads(stopped.manifest_path.read_text())
    assert manifest["meta_dim"] == META_DIM and manifest["meta_layout_version"] == 1
    assert manifest["categories"] == synth.categories and manifest["version"] == stopped.version
    assert json.loads((stopped.model_dir / "history.json").read_text()) == history


def test_exported_model_matches_the_lightning_model(stopped):
    module = load_checkpoint(stopped.checkpoint_path)
    session = _session(stopped.artifact_path, threads=1)
    assert [i.name for i in session.get_inputs()] == ["frames", "mask", "meta"]
    rng = np.random.default_rng(7)
    for batch, frames in ((4, 9), (2, 30), (1, 1)):
        x = rng.gamma(1.0, 0.5, (batch, frames, DIM)).astype(np.float32)
        mask = np.zeros((batch, frames), dtype=bool)
        for i in range(batch):
            mask[i, : max(1, frames - 5 * i)] = True
        meta = rng.normal(size=(batch, META_DIM)).astype(np.float32)
        with torch.inference_mode():
            expected = torch.sigmoid(module(torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(meta)))
        got = session.run(None, {"frames": x, "mask": mask, "meta": meta})[0]
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-4)
    assert stopped.export["max_abs_diff_vs_torch"] <= 1e-4


def test_predictor_scores_every_video_once(stopped, synth, meta):
    predictor = VisualPredictor(stopped.model_dir, batch_size=8, length_window=3)
    results = list(predictor.predict_shards(synth.shards, meta=meta))
    assert sorted(r.video_id for r in results) == sorted(synth.n_frames)
    assert all(r.n_frames == synth.n_frames[r.video_id] for r in results)
    assert all(r.scores.shape == (4,) and r.scores.dtype == np.float32 for r in results)
    assert all(((r.scores >= 0) & (r.scores <= 1)).all() for r in results)
    eager = {
        r.video_id: r.scores
        for r in VisualPredictor(stopped.model_dir, backend="torch").predict_shards(synth.shards, meta=meta)
    }
    for r in results:
        np.testing.assert_allclose(r.scores, eager[r.video_id], atol=1e-4)
    with pytest.raises(ValueError, match="metadata vectors"):
        next(predictor.predict_shards(synth.shards, meta={"x": np.zeros(3, np.float32)}))


@pytest.mark.slow
def test_soft_and_partial_targets_are_accepted(synth, tmp_path):
    rng = np.random.default_rng(0)
    soft = {}
    for vid, t in synth.targets.items():
        s = np.where(t > 0, rng.uniform(0.6, 1.0, t.shape), rng.uniform(0.0, 0.3, t.shape)).astype(np.float32)
        s[rng.random(t.shape) < 0.2] = np.nan  # the teacher said nothing about these
        soft[vid] = s
    config = dataclasses.replace(TINY, max_epochs=2)
    result = train_visual_model(synth.shards, soft, None, synth.categories, config, tmp_path)
    assert all(np.isfinite(h["train_loss"]) and np.isfinite(h["val_loss"]) for h in result.history)
    assert result.metrics["val_gap_at_20"] > result.metrics["untrained_val_gap_at_20"]


@pytest.mark.slow
def test_mean_pool_baseline_trains_through_the_same_code(synth, tmp_path):
    config = dataclasses.replace(TINY, arch="meanpool", max_epochs=2)
    result = train_visual_model(synth.shards, synth.targets, None, synth.categories, config, tmp_path)
    expected = MeanPoolClassifier(DIM, 4, hidden_size=TINY.hidden_size, gating_reduction=TINY.gating_reduction)
    assert result.arch == "meanpool" and result.param_count == param_count(expected)
    assert json.loads(result.manifest_path.read_text())["arch"] == "meanpool"
    assert len(list(VisualPredictor(result.model_dir).predict_shards(synth.shards))) == len(synth.n_frames)


def test_bad_inputs_fail_with_a_message(synth, tmp_path):
    with pytest.raises(ValueError, match="arch"):
        train_visual_model(
            synth.shards, synth.targets, None, synth.categories, dataclasses.replace(TINY, arch="lstm"), tmp_path
        )
    with pytest.raises(ValueError, match="shape"):
        train_visual_model(synth.shards, {"x": np.zeros(2)}, None, synth.categories, TINY, tmp_path)
    few = dict(list(synth.targets.items())[:1])
    with pytest.raises(ValueError, match="split"):
        train_visual_model(synth.shards, few, None, synth.categories, TINY, tmp_path)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no half-written run left behind
