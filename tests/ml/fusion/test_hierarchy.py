"""Back-off to parent categories: tree, score consistency, per-node certification, no node with its ancestor."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml.fusion.hierarchy import (
    Backoff,
    build_tree,
    choose_combiner,
    decide_backoff,
    drop_ancestors,
    fit_backoff,
    fit_backoff_model,
    information,
    node_labels,
    node_scores,
    with_nodes,
)
from ml.fusion.rules import FusionModel, fit_rule
from ml.taxonomy import Category, Taxonomy, default_working_set
from ml.thresholds import ThresholdPolicy, select_threshold

POLICY = ThresholdPolicy()  # the promise: Clopper-Pearson at 95%, fixed-sequence


def _tax() -> Taxonomy:
    """A three-tier chain beside a two-tier one: Root > Mid > {A, B}, Root > C, Other > D."""
    rows = [
        ("r", "Root", None),
        ("m", "Mid", "r"),
        ("a", "A", "m"),
        ("b", "B", "m"),
        ("c", "C", "r"),
        ("o", "Other", None),
        ("d", "D", "o"),
    ]
    nodes: dict[str, Category] = {}
    for cid, name, parent in rows:
        path = (*nodes[parent].path, name) if parent else (name,)
        nodes[cid] = Category(cid, name, path, parent)
    return Taxonomy(nodes, "test")


def test_tree_of_the_working_set_has_the_demo_parents_deepest_first():
    ws = default_working_set()
    tree = build_tree(ws.ids, ws.taxonomy)
    index = {c: j for j, c in enumerate(tree.categories)}
    ent = tree.nodes.index("338") if "338" in tree.nodes else None  # Music is a leaf, not a node
    assert ent is None
    k = next(i for i, n in enumerate(tree.nodes) if ws.by_id(n).name == "Entertainment")
    members = {tree.categories[j] for j in tree.subtree[k]}
    assert {"324", "640", "338"} <= members and tree.nodes[k] in members  # Movies, Television, Music, itself
    assert tree.paths[index["324"]] == "Entertainment > Movies" and tree.tiers[index["324"]] == 2
    tiers = tree.node_tiers()
    assert tiers == sorted(tiers, reverse=True)


def test_three_tiers_deepest_first_and_subtrees():
    tree = build_tree(["r", "m", "a", "b", "c", "o", "d"], _tax())
    assert tree.nodes[0] == "m" and set(tree.nodes) == {"m", "r", "o"}
    sub = {n: {tree.categories[j] for j in s} for n, s in zip(tree.nodes, tree.subtree, strict=True)}
    assert sub == {"m": {"m", "a", "b"}, "r": {"r", "m", "a", "b", "c"}, "o": {"o", "d"}}
    mask = tree.ancestors_mask()
    assert mask[0, 2] and mask[1, 2] and not mask[2, 0]  # r and m above a, never a above r


@pytest.mark.parametrize("combiner", ["max", "noisy-or"])
def test_a_parent_never_scores_below_any_child(combiner):
    tree = build_tree(["r", "m", "a", "b", "c", "o", "d"], _tax())
    rng = np.random.default_rng(0)
    s = rng.random((300, 7))
    s[rng.random(s.shape) < 0.2] = np.nan
    s[0] = np.nan  # a video no source scored
    ns = node_scores(s, tree, combiner)
    for k, cols in enumerate(tree.subtree):
        child = np.nanmax(np.where(np.isfinite(s[:, cols]), s[:, cols], -np.inf), axis=1)
        seen = np.isfinite(s[:, cols]).any(axis=1)
        assert np.all(ns[seen, k] >= child[seen] - 1e-12)
        assert np.isnan(ns[~seen, k]).all()
    assert np.isnan(ns[0]).all()
    with pytest.raises(ValueError, match="combiner"):
        node_scores(s, tree, "mean")


def test_noisy_or_against_its_definition():
    tree = build_tree(["m", "a", "b"], _tax())
    s = np.array([[np.nan, 0.5, 0.5], [0.2, np.nan, 0.1]])
    ns = node_scores(s, tree, "noisy-or")
    assert ns[:, 0] == pytest.approx([1 - 0.5 * 0.5, 1 - 0.8 * 0.9])


def test_drop_ancestors_keeps_the_more_specific():
    tree = build_tree(["r", "m", "a", "b", "c"], _tax())
    e = np.array([[1, 1, 1, 0, 0], [1, 0, 0, 0, 1], [1, 0, 0, 0, 0], [0, 1, 0, 0, 0]], bool)
    out = drop_ancestors(e, tree)
    assert out.tolist() == [
        [False, False, True, False, False],
        [False, False, False, False, True],
        [True, False, False, False, False],
        [False, True, False, False, False],
    ]


def _look_alike(n: int, seed: int, root_head: bool = False):
    """Mid's children A and B look the same: each scores ~0.5 on videos of either, so no leaf certifies.

    With ``root_head`` Root has a column of its own that its leaf rule says on those same videos, so
    back-off to Mid lands on videos that already carry Mid's ancestor.
    """
    rng = np.random.default_rng(seed)
    cats = ["r", "m", "a", "b", "c"]
    y = np.zeros((n, 5), bool)
    truth = rng.choice([2, 3, 4, -1], size=n, p=[0.3, 0.3, 0.2, 0.2])
    for i, j in enumerate(truth):
        if j >= 0:
            y[i, j] = True
    s = rng.random((n, 5)) * 0.2
    ab = np.isin(truth, [2, 3])
    s[ab, 2] = 0.45 + 0.1 * rng.random(ab.sum())
    s[ab, 3] = 0.45 + 0.1 * rng.random(ab.sum())
    s[truth == 4, 4] = 0.9
    s[:, :2] = np.nan  # no head for Mid
    if root_head:
        s[:, 0] = np.where(ab, 0.85, 0.1)
    emitted = s >= 0.8  # C (and Root, with its head) said by the leaf rule; A and B never
    return cats, s, y, emitted


@pytest.mark.parametrize("root_head", [False, True])
def test_the_parent_is_certified_where_its_children_cannot_be_told_apart(root_head: bool):
    cats, s, y, emitted = _look_alike(400, 1, root_head)
    tree = build_tree(cats, _tax())
    ths = fit_backoff(s, emitted, y, tree, POLICY, "noisy-or")
    by = dict(zip(tree.nodes, ths, strict=True))
    assert by["m"].enabled and by["m"].lower_bound >= 0.8
    # Root is certified only on what Mid and C leave unsaid: nothing of its own left to gain.
    assert not by["r"].enabled or by["r"].predicted < 20
    # Held out: Mid said on look-alike videos, never with its ancestor Root or beside a leaf of its subtree.
    _cats2, s2, y2, e2 = _look_alike(400, 2, root_head)
    leaves, fired, _ = decide_backoff(s2, e2, tree, ths, "noisy-or")
    said = with_nodes(leaves, fired, tree)
    mid, root = tree.nodes.index("m"), tree.nodes.index("r")
    assert fired[:, mid].sum() > 100
    assert not (fired[:, mid] & fired[:, root]).any()
    anc = tree.ancestors_mask()
    assert not (said[:, :, None] & said[:, None, :] & anc[None]).any()  # no category with its ancestor
    right = node_labels(y2, tree)[fired[:, mid], mid]
    assert right.mean() >= 0.8
    info = information(said, y2, tree)
    assert info["coverage"] > information(leaves, y2, tree)["coverage"] + 0.3
    assert info["node_precision"] >= 0.9


def test_node_cut_is_the_leaf_rule_on_the_videos_the_subtree_leaves_unsaid():
    cats, s, y, emitted = _look_alike(300, 3)
    tree = build_tree(cats, _tax())
    ths = fit_backoff(s, emitted, y, tree, POLICY, "max")
    mid = tree.nodes.index("m")
    cols = tree.subtree[mid]
    open_ = ~emitted[:, cols].any(axis=1)
    ns = np.nanmax(np.where(np.isfinite(s[:, cols]), s[:, cols], -np.inf), axis=1)
    expect = select_threshold(np.where(open_, ns, np.nan), y[:, cols].any(axis=1), POLICY)
    assert ths[mid] == expect


def test_combiner_choice_holds_the_promise_first():
    comp = {
        "max": {"coverage": 0.9, "node_precision": 0.95},
        "noisy-or": {"coverage": 0.95, "node_precision": 0.7},
    }
    assert choose_combiner(comp, 0.8) == "max"
    comp["noisy-or"]["node_precision"] = 0.85
    assert choose_combiner(comp, 0.8) == "noisy-or"


def test_backoff_travels_inside_the_fusion_model():
    cats, s, y, _emitted = _look_alike(300, 4)
    tree = build_tree(cats, _tax())
    model = fit_rule("text", s, np.full(s.shape, np.nan), np.full(len(s), 30.0), y, POLICY)
    d0 = model.decide(s, np.full(s.shape, np.nan), np.full(len(s), 30.0))
    model.backoff = fit_backoff_model(d0.score, d0.emitted, y, tree, POLICY)
    assert set(model.backoff.comparison) == {"max", "noisy-or"}
    again = FusionModel.from_json(json.loads(json.dumps(model.to_json())))
    assert isinstance(again.backoff, Backoff) and again.backoff.thresholds == model.backoff.thresholds
    d = again.decide(s, np.full(s.shape, np.nan), np.full(len(s), 30.0))
    assert d.nodes is not None and d.nodes.any()
    src = d.source()
    said = d.said()
    assert (src[said & ~d.emitted] == "backoff").all() and (src[d.emitted] != "backoff").all()
    # A fusion file written before back-off existed still loads, leaves only.
    old = model.to_json()
    del old["backoff"]
    assert FusionModel.from_json(old).backoff is None


def test_gold_as_numbers_certifies_like_gold_as_booleans():
    """Gold arrives from the catalog as 0/1 numbers."""
    cats, s, y, emitted = _look_alike(300, 5)
    tree = build_tree(cats, _tax())
    as_bool = fit_backoff(s, emitted, y, tree, POLICY, "max")
    assert fit_backoff(s, emitted, y.astype(np.float32), tree, POLICY, "max") == as_bool
    said = with_nodes(*decide_backoff(s, emitted, tree, as_bool, "max")[:2], tree)
    assert information(said, y.astype(float), tree) == information(said, y, tree)
