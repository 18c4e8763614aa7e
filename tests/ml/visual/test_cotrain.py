"""The pool's pseudo-labels: text and frames combined as independent evidence over the base rate."""

from __future__ import annotations

import numpy as np
import pytest

from ml.visual.cotrain import base_rates, fit_visual_calibration, logit, pool_targets, posterior, sigmoid


def test_posterior_adds_evidence_in_log_odds():
    base = np.array([0.1, 0.1, 0.1])
    pv = np.array([0.1, 0.5, 0.9])
    pt = np.array([0.1, 0.1, 0.1])  # text at the base rate says nothing
    assert posterior(pv, pt, base) == pytest.approx(pv)
    # two independent views that each raise the odds nine-fold from 1:9 give 81:9 = 0.9
    assert posterior(np.array([0.5]), np.array([0.5]), np.array([0.1]))[0] == pytest.approx(0.9)
    # text against a visual belief lowers it, text for it raises it
    both = posterior(np.array([0.7, 0.7]), np.array([0.01, 0.9]), np.array([0.1, 0.1]))
    assert both[0] < 0.7 < both[1]


def test_missing_text_keeps_the_visual_score():
    pv, base = np.array([0.2, 0.8]), np.array([0.1, 0.1])
    assert posterior(pv, None, base) == pytest.approx(pv)
    assert posterior(pv, np.array([np.nan, 0.99]), base)[0] == pytest.approx(0.2)


def test_base_rates_are_smoothed_shares_of_known_labels():
    t = {"a": np.array([1, 0, np.nan], np.float32), "b": np.array([1, 0, np.nan], np.float32)}
    assert base_rates(t, 3) == pytest.approx([2.5 / 3, 0.5 / 3, 0.5])


def test_pool_targets_sources_and_weights():
    pv = {"with_text": np.array([0.5, 0.5]), "no_text": np.array([0.9, 0.1])}
    pt = {"with_text": np.array([0.9, 0.01])}
    base = np.array([0.1, 0.1])
    t, w, src = pool_targets(pv, pt, base, use_text=True, use_self=True, soft=True, pseudo_weight=0.5, self_weight=0.25)
    assert src == {"with_text": "pseudo", "no_text": "self"}
    assert t["with_text"][0] > 0.95 and t["with_text"][1] < 0.1  # 1:1 x 99:1 / 1:9; 1:1 x 1:99 / 1:9
    assert w["no_text"] == pytest.approx(0.25 * np.abs(2 * pv["no_text"] - 1))
    kw = {"pseudo_weight": 0.5, "self_weight": 0.5}
    t, w, src = pool_targets(pv, pt, base, use_text=False, use_self=False, soft=True, **kw)
    assert not t
    t, w, src = pool_targets(pv, pt, base, use_text=True, use_self=False, soft=False, **kw)
    assert set(t) == {"with_text"} and set(t["with_text"].tolist()) <= {0.0, 1.0}


def test_visual_calibration_learns_an_overconfident_score():
    rng = np.random.default_rng(0)
    truth = rng.random(4000) < 0.2
    raw = sigmoid(3 * (np.where(truth, 1.0, -1.0) + rng.normal(0, 1.2, 4000)))  # overconfident
    cal = fit_visual_calibration(raw.reshape(-1, 2), truth.reshape(-1, 2).astype(float))
    p = cal.transform(logit(raw))
    for lo, hi in ((0.0, 0.2), (0.8, 1.0)):
        sel = (p >= lo) & (p < hi)
        assert abs(truth[sel].mean() - p[sel].mean()) < 0.05
