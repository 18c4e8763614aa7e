"""Fusion rules on synthetic sources with known strengths: each rule does what it promises."""

from __future__ import annotations

import numpy as np
import pytest

from ml.fusion.rules import RULES, FusionModel, best_rule, compare_rules, fit_rule
from ml.thresholds import ThresholdPolicy

POLICY = ThresholdPolicy(min_true_positives=3, bound="none", min_lower_bound=0.0)


def synthetic(n=400, seed=0):
    """Category 0: text knows it, frames do not. Category 1: frames know it; 40% of videos have no text."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 2)) < 0.3).astype(int)
    has_text = rng.random(n) > 0.4
    text = np.clip(y * 0.6 + rng.normal(0.2, 0.12, (n, 2)), 0.001, 0.999)
    text[:, 1] = np.clip(rng.normal(0.3, 0.15, n), 0.001, 0.999)  # text blind to category 1
    text[~has_text] = np.nan
    visual = np.clip(y * 0.55 + rng.normal(0.25, 0.12, (n, 2)), 0.001, 0.999)
    visual[:, 0] = np.clip(rng.normal(0.4, 0.2, n), 0.001, 0.999)  # frames blind to category 0
    chars = np.where(has_text, rng.integers(10, 200, n), 0)
    return text, visual, chars, y


def test_single_sources_enable_only_what_they_know():
    text, visual, chars, y = synthetic()
    m = fit_rule("union", text, visual, chars, y, POLICY)
    assert m.text_thresholds[0].enabled and not m.text_thresholds[1].enabled
    assert m.visual_thresholds[1].enabled and not m.visual_thresholds[0].enabled


def test_union_covers_more_than_each_source_and_stacking_keeps_precision():
    text, visual, chars, y = synthetic()
    table = compare_rules(text, visual, chars, y, POLICY, folds=4)
    assert set(table) == set(RULES)
    assert table["union"]["coverage"] > table["text"]["coverage"]
    assert table["union"]["coverage"] > table["visual"]["coverage"]
    assert table["union"]["recall"] > max(table["text"]["recall"], table["visual"]["recall"])
    for rule in ("text", "visual", "union", "stacked"):
        assert table[rule]["precision"] >= 0.75, (rule, table[rule])
    assert best_rule(table) in RULES


def test_missing_text_never_fires_and_provenance_is_recorded():
    text, visual, chars, y = synthetic()
    m = fit_rule("union", text, visual, chars, y, POLICY)
    d = m.decide(text, visual, chars)
    no_text = ~np.isfinite(text[:, 0])
    assert not d.text_fired[no_text].any()
    src = d.source()
    assert set(np.unique(src[d.emitted])) <= {"text", "visual", "both"}
    assert (src[d.emitted & d.text_fired & d.visual_fired] == "both").all()
    assert (src[~d.emitted] == "").all()


@pytest.mark.parametrize("rule", RULES)
def test_json_round_trip_gives_identical_decisions(rule):
    text, visual, chars, y = synthetic(seed=3)
    m = fit_rule(rule, text, visual, chars, y, POLICY)
    m2 = FusionModel.from_json(m.to_json())
    a, b = m.decide(text, visual, chars), m2.decide(text, visual, chars)
    assert np.array_equal(a.emitted, b.emitted)
    np.testing.assert_allclose(np.nan_to_num(a.score), np.nan_to_num(b.score))


def test_unknown_rule_is_refused():
    text, visual, chars, y = synthetic(n=40)
    with pytest.raises(ValueError, match="unknown fusion rule"):
        fit_rule("average", text, visual, chars, y)


def test_best_rule_prefers_f1_among_precise_rules():
    table = {
        "text": {"precision": 0.9, "f1": 0.5, "coverage": 0.4},
        "union": {"precision": 0.82, "f1": 0.7, "coverage": 0.7},
        "max": {"precision": 0.7, "f1": 0.9, "coverage": 0.9},
    }
    assert best_rule(table) == "union"
    # No rule holds the target: union, whose per-source thresholds each hold it, emits less instead.
    imprecise = {
        "stacked": {"precision": 0.6, "f1": 0.4, "coverage": 1},
        "max": {"precision": 0.5, "f1": 0.5, "coverage": 1},
    }
    assert best_rule(imprecise) == "union"


def test_stacker_does_not_emit_on_a_source_missing_only_at_prediction():
    """Gold videos all had frames; a video whose frames failed must not read as a strong visual signal."""
    text, visual, chars, y = synthetic(seed=4)
    text = np.where(np.isfinite(text), text, 0.05)  # every training video has both sources
    m = fit_rule("stacked", text, visual, chars, y, POLICY)
    n = 50
    weak_text = np.full((n, 2), 0.02)
    no_frames = np.full((n, 2), np.nan)
    d = m.decide(weak_text, no_frames, np.full(n, 30))
    assert not d.emitted.any()
    strong_text = np.full((n, 2), 0.98)
    assert m.decide(strong_text, no_frames, np.full(n, 30)).emitted[:, 0].all()  # text alone still carries it


@pytest.mark.parametrize("rule", ["max", "stacked"])
def test_without_text_only_visual_categories_are_emitted(rule):
    text, visual, chars, y = synthetic(seed=5)
    m = fit_rule(rule, text, visual, chars, y, POLICY)
    n = 40
    no_text = np.full((n, 2), np.nan)
    strong_frames = np.full((n, 2), 0.99)
    m.is_visual = [True, True]
    allowed = m.decide(no_text, strong_frames, np.zeros(n)).emitted
    m.is_visual = [True, False]
    gated = m.decide(no_text, strong_frames, np.zeros(n)).emitted
    assert allowed[:, 1].all(), "the frames alone carry category 1 when it is visual"
    assert not gated[:, 1].any() and (gated[:, 0] == allowed[:, 0]).all()
    with_text = np.full((n, 2), 0.5)
    assert (
        m.decide(with_text, strong_frames, np.full(n, 30)).emitted[:, 1]
        == (
            m.fused_score(with_text, strong_frames, np.full(n, 30))[:, 1] >= m.fused_thresholds[1].threshold
            if m.fused_thresholds[1].enabled
            else False
        )
    ).all()
