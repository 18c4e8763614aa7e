import numpy as np
import pandas as pd
import pytest

from ml.text import pseudo_labels as pl


def _ladder():
    """Scores 0.00..0.99; positives are rare below 0.5 and common above 0.8."""
    s = np.arange(100) / 100
    y = np.zeros(100)
    y[80:] = 1  # 20 top videos: all positive
    y[[79, 77, 75, 73, 71, 69]] = 1  # some positives lower down
    y[[60, 40, 20]] = 1
    return s, y


def test_lowest_threshold_reaching_the_target():
    s, y = _ladder()
    t = pl.threshold_for_precision(s, y, target_precision=0.9, min_support=10, category_id="c")
    assert t.enabled and t.reason == "ok"
    above = s >= t.threshold
    assert y[above].mean() >= 0.9
    lower = s >= t.threshold - 0.01  # one step lower no longer reaches it
    assert y[lower].mean() < 0.9
    assert t.support == int(above.sum()) and t.precision == pytest.approx(y[above].mean())
    assert t.recall == pytest.approx(y[above].sum() / y.sum())
    assert 0 < t.lower_bound < t.precision


def test_category_that_cannot_reach_the_target_emits_nothing():
    rng = np.random.default_rng(0)
    s = rng.random(500)
    y = (rng.random(500) < 0.3).astype(float)  # scores carry no information: precision ~0.3
    t = pl.threshold_for_precision(s, y, 0.9, min_support=20, category_id="noise")
    assert not t.enabled and t.threshold is None
    assert "never reaches" in t.reason and t.precision < 0.9


def test_min_support_blocks_a_lucky_handful():
    s = np.r_[np.array([0.99, 0.98, 0.97]), np.linspace(0, 0.5, 50)]
    y = np.r_[np.ones(3), np.zeros(50)]
    assert pl.threshold_for_precision(s, y, 0.9, min_support=3).enabled
    assert not pl.threshold_for_precision(s, y, 0.9, min_support=10).enabled


def test_lower_bound_mode_is_stricter():
    s, y = _ladder()
    point = pl.threshold_for_precision(s, y, 0.9, min_support=5)
    bound = pl.threshold_for_precision(s, y, 0.9, min_support=5, use_lower_bound=True)
    assert bound.threshold is None or bound.threshold >= point.threshold


def test_ties_are_not_split():
    s = np.array([0.9, 0.9, 0.9, 0.9, 0.5])
    y = np.array([1, 1, 1, 0, 0])
    t = pl.threshold_for_precision(s, y, 0.7, min_support=1)
    assert t.threshold == 0.9 and t.support == 4


def test_unknown_labels_are_ignored_and_no_positives_is_explained():
    s = np.array([0.9, 0.8, 0.1])
    assert pl.threshold_for_precision(s, np.array([np.nan, 0, 0]), 0.9, 1).reason == "no held-out positives"
    t = pl.threshold_for_precision(s, np.array([1, np.nan, 0]), 0.9, 1)
    assert t.n_known == 2 and t.threshold == 0.9


def test_select_thresholds_checks_shapes():
    s, y = _ladder()
    out = pl.select_thresholds(np.c_[s, s], np.c_[y, np.zeros(100)], ["a", "b"], min_support=10)
    assert [t.category_id for t in out] == ["a", "b"] and out[0].enabled and not out[1].enabled
    records = pl.thresholds_to_records(out)
    assert records[0]["enabled"] and not records[1]["enabled"]
    with pytest.raises(ValueError):
        pl.select_thresholds(np.c_[s, s], np.c_[y, y], ["a"])


def _thresholds():
    return [
        pl.CategoryThreshold("a", 0.8, 0.9, 0.5, 20, 30, 100, 0.8, "ok"),
        pl.CategoryThreshold("b", 0.7, 0.9, 0.5, 20, 30, 100, 0.8, "ok"),
        pl.CategoryThreshold("c", None, 0.5, None, 0, 30, 100, None, "never"),
    ]


def test_make_pseudo_labels_positive_and_negative_rules():
    scores = np.array(
        [
            [0.95, 0.01, 0.99],  # v1: a positive; b negative; c disabled (no row at all)
            [0.50, 0.03, 0.01],  # v2: no positive, so no negatives either
            [0.85, 0.75, 0.04],  # v3: a and b positive; c negative (disabled categories still give negatives)
            [np.nan, 0.9, 0.2],  # v4: b positive; a unscored; c neither
        ],
        dtype=np.float32,
    )
    df = pl.make_pseudo_labels(["v1", "v2", "v3", "v4"], scores, ["a", "b", "c"], _thresholds())
    assert list(df.columns) == pl.COLUMNS
    got = {(r.video_id, r.category_id): (r.target, r.kind) for r in df.itertuples()}
    assert got == {
        ("v1", "a"): (1.0, "positive"),
        ("v1", "b"): (0.0, "negative"),
        ("v3", "a"): (1.0, "positive"),
        ("v3", "b"): (1.0, "positive"),
        ("v3", "c"): (0.0, "negative"),
        ("v4", "b"): (1.0, "positive"),
    }
    soft = pl.make_pseudo_labels(["v1", "v2", "v3", "v4"], scores, ["a", "b", "c"], _thresholds(), soft=True)
    assert soft.set_index(["video_id", "category_id"]).loc[("v1", "a"), "target"] == pytest.approx(0.95)
    only_pos = pl.make_pseudo_labels(
        ["v1", "v2", "v3", "v4"], scores, ["a", "b", "c"], _thresholds(), negative_max_score=None
    )
    assert set(only_pos["kind"]) == {"positive"}


def test_make_pseudo_labels_empty_and_bad_shapes():
    df = pl.make_pseudo_labels([], np.zeros((0, 3), np.float32), ["a", "b", "c"], _thresholds())
    assert df.empty and list(df.columns) == pl.COLUMNS
    with pytest.raises(ValueError):
        pl.make_pseudo_labels(["v1"], np.zeros((2, 3)), ["a", "b", "c"], _thresholds())


def test_precision_against_gold():
    pseudo = pd.DataFrame(
        {
            "video_id": ["v1", "v1", "v2", "v2", "v3", "v4"],
            "category_id": ["a", "b", "a", "b", "a", "a"],
            "target": [1.0, 0.0, 1.0, 0.0, 1.0, 1.0],
            "kind": ["positive", "negative", "positive", "negative", "positive", "positive"],
        }
    )
    gold = [("v1", "a", True), ("v2", "a", False), ("v2", "b", True), ("v3", "c", True)]
    out = pl.pseudo_label_precision(pseudo, gold, exhaustive=["v3"])
    # positives judged: v1/a right, v2/a wrong, v3/a wrong (v3 exhaustive, a absent); v4/a unjudged
    assert out["positive_precision"] == pytest.approx(1 / 3)
    assert out["positive"]["judged"] == 3 and out["positive"]["unjudged"] == 1
    assert out["positive"]["per_category"]["a"]["agreement"] == pytest.approx(1 / 3)
    # negatives judged: v2/b wrong; v1/b unjudged
    assert out["negative_predictive_value"] == 0.0 and out["negative"]["unjudged"] == 1
    frame = pd.DataFrame(gold, columns=["video_id", "category_id", "is_positive"])
    assert pl.pseudo_label_precision(pseudo, frame, ["v3"]) == out


def test_wilson_lower_bound():
    assert pl.wilson_lower_bound(0, 0) == 0.0
    assert 0.6 < pl.wilson_lower_bound(18, 20) < 0.9
    assert pl.wilson_lower_bound(900, 1000) == pytest.approx(0.884, abs=0.005)
