"""The student's targets: editor labels first, soft pseudo-labels weighted by confidence, unknown masked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.catalog.holdout import HeldOutLeak, assert_trainable
from ml.visual.model import masked_bce
from ml.visual.targets import (
    TargetPolicy,
    build_targets,
    editor_targets,
    pseudo_targets,
)

CATS = ["a", "b", "c"]
PSEUDO_ROWS = [
    ("p1", "a", 0.95, 0.9, "positive"),
    ("p1", "b", 0.02, 0.96, "negative"),
    ("p1", "c", 0.40, 0.2, "soft"),
    ("p2", "b", 0.80, 0.6, "positive"),
    ("e1", "a", 0.10, 0.8, "negative"),  # an editor-labelled video: the human label wins
    ("g1", "a", 0.99, 0.98, "positive"),  # a gold video: never a target
]


def test_editor_targets_exhaustive_and_single_verdicts():
    rows = [("e1", "a", True), ("e2", "b", False)]
    t = editor_targets(rows, exhaustive=["e1"], categories=CATS)
    assert t["e1"].tolist() == [1.0, 0.0, 0.0]  # exhaustive: unlisted categories are negatives
    assert np.isnan(t["e2"][[0, 2]]).all() and t["e2"][1] == 0.0  # one verdict: only b is known


def test_soft_pseudo_targets_are_the_teachers_scores_weighted_by_confidence():
    policy = TargetPolicy(pseudo_weight=0.5)
    targets, weights = pseudo_targets(PSEUDO_ROWS, CATS, policy)
    assert targets["p1"].tolist() == pytest.approx([0.95, 0.02, 0.40])
    assert weights["p1"].tolist() == pytest.approx([0.45, 0.48, 0.10])
    assert np.isnan(targets["p2"][[0, 2]]).all() and weights["p2"][0] == 0  # unknown stays unknown


def test_hard_pseudo_targets_drop_the_in_between_rows():
    targets, weights = pseudo_targets(PSEUDO_ROWS, CATS, TargetPolicy(soft=False, pseudo_weight=0.5))
    assert targets["p1"][:2].tolist() == [1.0, 0.0] and np.isnan(targets["p1"][2])
    assert weights["p1"][:2].tolist() == [0.5, 0.5]


def test_build_targets_human_labels_win_and_held_out_videos_never_enter():
    editor = editor_targets([("e1", "a", True), ("g1", "b", True)], ["e1", "g1"], CATS)
    pseudo = pseudo_targets(PSEUDO_ROWS, CATS, TargetPolicy())
    out = build_targets(CATS, editor, pseudo, held_out=frozenset({"g1"}), policy=TargetPolicy())
    assert set(out.targets) == {"e1", "p1", "p2"}
    assert out.source == {"e1": "editor", "p1": "pseudo", "p2": "pseudo"}
    assert out.targets["e1"].tolist() == [1.0, 0.0, 0.0] and out.weights["e1"].tolist() == [1, 1, 1]
    assert out.counts() == {"editor": 1, "pseudo": 2, "self": 0}
    none = build_targets(CATS, editor, pseudo, frozenset({"g1"}), TargetPolicy(pseudo_labels=False))
    assert set(none.targets) == {"e1"}
    none.add("g1", np.ones(3), np.ones(3), "self")  # a bug that let a gold video in ...
    with pytest.raises(HeldOutLeak, match="1 held-out video"):  # ... is caught before any training
        assert_trainable(none.targets, frozenset({"g1"}), "the visual student")


def test_unknown_targets_contribute_nothing_to_the_loss_and_weights_scale_the_rest():
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    soft = torch.tensor([[0.9, float("nan"), 0.2]])
    weights = torch.tensor([[0.5, 1.0, 0.25]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = 0.5 * bce(logits[0, 0], soft[0, 0]) + 0.25 * bce(logits[0, 2], soft[0, 2])
    assert torch.allclose(masked_bce(logits, soft, weights), expected)
    # Changing the logit of the unknown category changes nothing.
    moved = logits.clone()
    moved[0, 1] = 40.0
    assert torch.allclose(masked_bce(moved, soft, weights), expected)


def test_policy_refuses_a_student_without_labels():
    with pytest.raises(ValueError):
        TargetPolicy(editor_labels=False, pseudo_labels=False)
