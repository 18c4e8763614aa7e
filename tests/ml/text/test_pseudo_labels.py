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


def test_lowest_cut_whose_bound_reaches_the_target():
    s, y = _ladder()
    policy = pl.default_policy(0.9, min_support=10)
    t = pl.threshold_for_category(s, y, policy, category_id="c")
    assert t.enabled and t.reason == "ok"
    above = s >= t.threshold
    assert y[above].mean() >= 0.9 and t.lower_bound >= 0.9
    assert t.support == int(above.sum()) and t.precision == pytest.approx(y[above].mean())
    assert t.recall == pytest.approx(y[above].sum() / y.sum())
    # The next lower cut (one more video) no longer holds the bound: this is the lowest eligible cut.
    k, n = int(y[above].sum()), int(above.sum())
    nxt = np.sort(s[~above])[-1]
    k2, n2 = k + int(y[s == nxt].sum()), n + int((s == nxt).sum())
    from ml.thresholds import lower_bound

    assert lower_bound(k2, n2, policy) < 0.9 or k2 < 10


def test_a_point_estimate_at_the_target_is_not_enough():
    """The old rule took the lowest cut whose *point* precision reached 0.9; the bound needs more evidence."""
    s, y = _ladder()
    t = pl.threshold_for_category(s, y, pl.default_policy(0.9, min_support=5))
    cuts = sorted(set(s.tolist()), reverse=True)
    point_cut = [c for c in cuts if y[s >= c].sum() >= 5 and y[s >= c].mean() >= 0.9][-1]
    assert t.threshold > point_cut


def test_category_that_cannot_reach_the_target_emits_nothing():
    rng = np.random.default_rng(0)
    s = rng.random(500)
    y = (rng.random(500) < 0.3).astype(float)  # scores carry no information: precision ~0.3
    t = pl.threshold_for_category(s, y, pl.default_policy(0.9, 20), category_id="noise")
    assert not t.enabled and t.threshold is None and "never reaches" in t.reason


def test_min_support_blocks_a_lucky_handful():
    s = np.r_[np.array([0.99, 0.98, 0.97, 0.96, 0.95, 0.94]), np.linspace(0, 0.5, 50)]
    y = np.r_[np.ones(6), np.zeros(50)]
    assert pl.threshold_for_category(s, y, pl.default_policy(0.8, min_support=3)).enabled
    assert not pl.threshold_for_category(s, y, pl.default_policy(0.8, min_support=10)).enabled


def test_unknown_labels_are_ignored_and_no_positives_is_explained():
    s = np.array([0.9, 0.8, 0.1])
    policy = pl.default_policy(0.5, min_support=1)
    assert pl.threshold_for_category(s, np.array([np.nan, 0, 0]), policy).reason == "no held-out positives"
    t = pl.threshold_for_category(s, np.array([1, np.nan, 0]), policy)
    assert t.n_known == 2 and t.support == 1


def test_select_thresholds_checks_shapes():
    s, y = _ladder()
    out = pl.select_thresholds(np.c_[s, s], np.c_[y, np.zeros(100)], ["a", "b"], pl.default_policy(0.9, 10))
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


def test_make_pseudo_labels_positive_negative_and_soft_rows():
    scores = np.array(
        [
            [0.95, 0.01, 0.99],  # v1: a positive; b negative; c (disabled) in between: soft
            [0.45, 0.03, 0.01],  # v2: no positive, no belief above 0.5: uninformative, no row at all
            [0.85, 0.75, 0.04],  # v3: a and b positive; c negative (disabled categories still give negatives)
            [np.nan, 0.9, 0.2],  # v4: b positive; a unscored; c soft
            [0.6, 0.02, 0.3],  # v5: no certified positive: uninformative unless uncertified beliefs are admitted
        ],
        dtype=np.float32,
    )
    ids = ["v1", "v2", "v3", "v4", "v5"]
    df = pl.make_pseudo_labels(ids, scores, ["a", "b", "c"], _thresholds())
    assert list(df.columns) == pl.COLUMNS
    got = {(r.video_id, r.category_id): (round(r.target, 2), round(r.weight, 2), r.kind) for r in df.itertuples()}
    assert got == {
        ("v1", "a"): (0.95, 0.9, "positive"),
        ("v1", "b"): (0.01, 0.98, "negative"),
        ("v1", "c"): (0.99, 0.98, "soft"),
        ("v3", "a"): (0.85, 0.7, "positive"),
        ("v3", "b"): (0.75, 0.5, "positive"),
        ("v3", "c"): (0.04, 0.92, "negative"),
        ("v4", "b"): (0.9, 0.8, "positive"),
        ("v4", "c"): (0.2, 0.6, "soft"),
    }
    believed = pl.make_pseudo_labels(ids, scores, ["a", "b", "c"], _thresholds(), informative_min_score=0.5)
    got5 = {r.category_id: r.kind for r in believed.itertuples() if r.video_id == "v5"}
    assert got5 == {"a": "soft", "b": "negative", "c": "soft"}
    hard = pl.make_pseudo_labels(ids, scores, ["a", "b", "c"], _thresholds(), soft=False)
    assert set(hard["kind"]) == {"positive", "negative"} and "v5" not in set(hard["video_id"])
    only_pos = pl.make_pseudo_labels(ids, scores, ["a", "b", "c"], _thresholds(), negative_max_score=None, soft=False)
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


def test_the_pseudo_label_policy_is_the_shared_one_at_the_lowest_eligible_cut():
    policy = pl.default_policy(0.9, 20)
    assert policy.target_precision == 0.9 and policy.min_support == 20 and policy.objective == "recall"
