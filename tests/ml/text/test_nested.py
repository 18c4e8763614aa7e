"""Nested shrinkage selection: the held-out scores of a fold never helped choose their own lambda."""

from __future__ import annotations

import numpy as np

from ml.text.prior import LAMBDAS, cross_fit, gap_known, nested_cross_fit
from tests.ml.test_metrics import brute_gap


def _data(n: int = 90, d: int = 16, c: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    protos = np.eye(c, d, dtype=np.float32)
    x = rng.normal(0, 1, (n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.stack([x[:, 0] > 0.2, x[:, 1] > 0.1, x[:, 5] > 0.2], axis=1).astype(np.float32)
    y[rng.random(y.shape) < 0.2] = np.nan
    fold = rng.permutation(n) % 3
    return x, y, protos, fold


def test_each_fold_is_scored_with_the_lambda_its_training_part_chose():
    x, y, protos, fold = _data()
    oof, deployed, table, chosen = nested_cross_fit(x, y, protos, fold)
    for k, lam_k in enumerate(chosen):
        rest = fold != k
        # The inner cross-validation, redone from scratch on the training part alone.
        gap = {
            lam: round(gap_known(cross_fit(x[rest], y[rest], protos, lam, fold[rest]), y[rest]), 4) for lam in LAMBDAS
        }
        assert lam_k == max(LAMBDAS, key=lambda lam: (gap[lam], lam))
        expected = cross_fit(x, y, protos, lam_k, fold)
        np.testing.assert_allclose(oof[fold == k], expected[fold == k], rtol=1e-5, atol=1e-5)
    assert deployed == max(LAMBDAS, key=lambda lam: (table[f"{lam:g}"], lam))


def test_labels_of_a_fold_do_not_move_its_lambda():
    x, y, protos, fold = _data(seed=1)
    _, _, _, chosen = nested_cross_fit(x, y, protos, fold)
    flipped = y.copy()
    flipped[fold == 0] = 1 - flipped[fold == 0]  # nonsense labels in fold 0 only
    _, _, _, again = nested_cross_fit(x, flipped, protos, fold)
    assert again[0] == chosen[0]


def test_too_few_folds_fall_back_to_the_default():
    x, y, protos, _ = _data()
    fold = np.arange(len(x)) % 2
    oof, deployed, table, chosen = nested_cross_fit(x, y, protos, fold)
    assert table == {} and chosen == [deployed, deployed] and np.isfinite(oof).all()


def test_gap_from_each_videos_top_twenty_is_gap_at_20():
    """The inner cross-validation keeps only each video's top 20 (score, label) pairs: GAP@20 of any set of
    rows is recovered from them, ties included, so the choice of lambda is the one the full scores give."""
    from ml.metrics import average_precision, top_k_per_video

    rng = np.random.default_rng(0)
    s = np.round(rng.random((60, 40)), 2)  # rounded: ties at the 20th place
    y = rng.random((60, 40)) < 0.1
    top_s, top_y = top_k_per_video(s, y, 20)
    assert top_s.shape == top_y.shape == (60, 20)
    for rows in (rng.random(60) < 0.6, np.ones(60, bool)):
        got = average_precision(top_s[rows], top_y[rows], int(y[rows].sum()))
        assert np.isclose(got, brute_gap(s[rows], y[rows], 20), rtol=1e-12, atol=1e-12)


def test_top_twenty_of_more_than_twenty_tied_categories():
    """25 categories, every score equal: the 20 kept are the first 20, so the positive at 24 is out of
    the list but in the denominator. All 20 tie: precision 1/20 for half the positives, GAP 1/40."""
    from ml.metrics import average_precision, top_k_per_video

    s = np.full((1, 25), 0.5)
    y = np.zeros((1, 25), bool)
    y[0, [0, 24]] = True
    top_s, top_y = top_k_per_video(s, y, 20)
    assert top_s.shape == (1, 20) and top_y.sum() == 1
    assert average_precision(top_s, top_y, 2) == brute_gap(s, y, 20) == 1 / 40
