"""The label budget's subsample and the teacher's calls on the pool, measured against its true labels."""

from __future__ import annotations

import numpy as np
import pytest

from ml.evaluation.label_budget import budget_position, teacher_on_pool


def test_budgets_are_nested_and_stable():
    ids = [f"v{i}" for i in range(2000)]
    positions = [budget_position(v) for v in ids]
    assert all(0.0 <= p < 1.0 for p in positions) and positions == [budget_position(v) for v in ids]
    tenth = {v for v, p in zip(ids, positions, strict=True) if p < 0.1}
    third = {v for v, p in zip(ids, positions, strict=True) if p < 0.3}
    assert tenth < third and 150 < len(tenth) < 250


def test_teacher_calls_on_the_pool():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.6], [0.9, 0.9]])
    truth = {"a": ["x"], "b": ["x"], "c": ["y"]}  # d has no known truth: left out
    m = teacher_on_pool(probs, 0.5, ["a", "b", "c", "d"], ["x", "y"], truth)
    assert m["videos"] == 3 and m["cut"] == 0.5 and m["calls"] == 4
    assert m["precision"] == pytest.approx(2 / 4) and m["recall"] == pytest.approx(2 / 3)
    assert teacher_on_pool(probs, None, ["a", "b", "c", "d"], ["x", "y"], truth)["calls"] == 0
    assert teacher_on_pool(probs, 0.5, ["a", "b", "c", "d"], ["x", "y"], {}) == {}
