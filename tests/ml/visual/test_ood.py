"""Out-of-distribution abstention: the k-NN score, its calibration, and a student that knows what it never saw."""

from __future__ import annotations

import numpy as np
import pytest

from ml.catalog.holdout import assert_trainable
from ml.visual.ood import fit_detector, load_detector, mean_pool


def _cloud(rng, centre, n, spread=0.3):
    return {f"v{rng.integers(1e9)}": centre + rng.normal(0, spread, len(centre)) for _ in range(n)}


def test_calibration_flags_the_documented_share_of_held_out_in_distribution_videos():
    rng = np.random.default_rng(0)
    centre = rng.random(64) * 3
    train, held = _cloud(rng, centre, 400), _cloud(rng, centre, 400)
    det = fit_detector(train, held, k=5, flag_share=0.05)
    fresh = np.stack(list(_cloud(rng, centre, 2000).values()))
    share = det.flag(det.scores(fresh)).mean()
    assert 0.02 < share < 0.09  # calibrated at 5% on other videos of the same distribution
    assert det.calibration["calibration_videos"] == 800 and det.calibration["flag_share"] == 0.05
    far = np.stack(list(_cloud(rng, rng.random(64) * 3, 50).values()))
    assert det.flag(det.scores(far)).all()


def test_leave_one_out_does_not_count_a_video_as_its_own_neighbour():
    ref = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0]), "c": np.array([1.0, 1.0])}
    det = fit_detector(ref, {}, k=1, flag_share=0.1)
    raw = np.stack([ref[v] for v in det.reference_ids])
    assert (det.scores(raw, exclude_self=True) > 1e-6).all()  # left out: never distance 0 to itself
    assert np.allclose(det.scores(raw), 0.0, atol=1e-6)


def test_round_trip_and_frameless_videos(tmp_path):
    rng = np.random.default_rng(1)
    det = fit_detector(_cloud(rng, np.ones(8), 30), _cloud(rng, np.ones(8), 10), k=3)
    det.save(tmp_path)
    back = load_detector(tmp_path)
    x = rng.random((5, 8)).astype(np.float32)
    np.testing.assert_allclose(back.scores(x), det.scores(x), atol=1e-3)  # the reference is stored as float16
    assert back.threshold == det.threshold and back.reference_ids == det.reference_ids
    assert not det.flag(np.array([np.nan])).any()  # no frames: not measured, not flagged
    assert load_detector(tmp_path / "nothing") is None
    frames = np.array([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]])
    assert mean_pool(frames, np.array([[True, True, False]])).tolist() == [[2.0, 3.0]]


@pytest.mark.slow
def test_a_student_flags_videos_of_another_kind_and_gives_them_no_visual_category(settings, tmp_path):
    """Trained on demo scenes; flat colour cards (another kind of video) are flagged and get nothing."""
    from ml.demo.catalog import render_clip
    from ml.frames.stage import embed_batch
    from ml.fusion.rules import FusionModel
    from ml.thresholds import Threshold
    from ml.visual.network import VisualTrainConfig
    from ml.visual.predictor import VisualPredictor
    from ml.visual.stage import StudentInputs, fit_student
    from ml.visual.targets import TargetPolicy
    from tests.videogen import write_video

    cats = ["533", "216", "472"]
    media = settings.media_dir
    videos, labels = [], {}
    for i in range(48):
        cat = cats[i % 3]
        path = render_clip(media / f"s{i:02d}.mp4", categories=(cat,), duration_s=3.0, size=(96, 64), seed=i)
        videos.append((f"s{i:02d}", str(path)))
        labels[f"s{i:02d}"] = np.array([float(c == cat) for c in cats], np.float32)
    for i in range(6):
        path = write_video(media / f"card{i}.mp4", seconds=3.0, size=(96, 64))
        videos.append((f"card{i}", str(path)))
    result = embed_batch("b00000001", videos, settings)
    assert not result.failures
    train = {v: t for v, t in labels.items() if int(v[1:]) < 36}
    inputs = StudentInputs(cats, train, ({}, {}), frozenset())
    config = VisualTrainConfig(arch="meanpool", max_epochs=4, enable_progress_bar=False, val_fraction=0.25)
    fit = fit_student(
        [result.shard],
        inputs,
        TargetPolicy(pseudo_labels=False, self_training=False),
        config,
        tmp_path / "m",
        guard=lambda ids, what: assert_trainable(ids, frozenset(), what),  # no catalog: nothing is held out
        min_positives=3,
        ood_flag_share=0.03,
    )
    scores = {s.video_id: s for s in VisualPredictor(fit.result.model_dir).predict_shards([result.shard])}
    held = [v for v in labels if v not in train]
    cards = [f"card{i}" for i in range(6)]
    assert all(scores[v].out_of_distribution for v in cards)
    assert sum(scores[v].out_of_distribution for v in held) <= 1
    # Through the fusion decision: the flagged source abstains (NaN), so nothing is emitted for a card.
    model = FusionModel(
        "visual",
        [Threshold(None, None, None, 0, 0, 0, None, False, "off")] * 3,
        [Threshold(0.5, 1, 1, 1, 1, 1, 1, True, "ok")] * 3,
    )
    order = held + cards
    visual = np.stack([np.full(3, np.nan) if scores[v].out_of_distribution else scores[v].scores for v in order])
    d = model.decide(np.full(visual.shape, np.nan), visual, np.zeros(len(order)))
    assert not d.emitted[len(held) :].any()
    right = sum(d.emitted[i, int(np.argmax(labels[v]))] for i, v in enumerate(held))
    assert right >= len(held) - 2  # held-out videos of the first kind are classified
