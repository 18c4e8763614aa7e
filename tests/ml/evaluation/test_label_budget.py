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


def _run(seed: int) -> dict:
    if seed == 0:
        return {"error": "no category has 3 positive targets"}
    return {
        "coverage": 0.5 * seed,
        "precision": 0.9,
        "recall": 0.1 * seed,
        "f1": 0.2 * seed,
        "gap_at_20": 0.6 + 0.1 * seed,
        "gold_gap_at_20": 0.7 + 0.1 * seed,
        "failing_categories": [{"category_id": f"c{seed}"}],
        "no_text": {"coverage": 0.1 * seed, "precision": 0.8, "recall": 0.2 * seed, "f1": 0.3 * seed, "videos": 4},
    }


def test_seeds_that_failed_are_counted_out_and_every_figure_is_a_mean():
    from ml.evaluation.label_budget import _over_seeds
    from ml.evaluation.student import format_rows

    row = _over_seeds(_run, 3)  # seed 0 failed; seeds 1 and 2 trained
    assert "error" not in row and row["seeds"] == 2 and row["failed_seeds"] == 1
    assert row["f1"] == pytest.approx(0.3) and row["f1_sd"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert row["gap_at_20"] == pytest.approx(0.75) and row["gold_gap_at_20"] == pytest.approx(0.85)
    assert row["no_text"]["precision"] == pytest.approx(0.8) and row["no_text"]["recall"] == pytest.approx(0.3)
    assert "failing_categories" not in row  # one seed's list, not a mean
    assert "(2 of 3 seeds)" in format_rows({"editor only": row})[0][0][6]
    assert _over_seeds(lambda seed: _run(0), 2) == _run(0)  # every seed failed: the error
    assert _over_seeds(_run, 2)["f1"] == pytest.approx(0.2)  # one seed counts: its own figures


def test_a_precision_mean_says_how_many_seeds_emitted_and_one_seed_has_no_spread():
    """Precision is NaN for a seed that emitted nothing, so its mean covers fewer seeds than recall and F1
    do; the record and the row say how many. One seed left: its figures, no '± 0.000'."""
    from ml.evaluation.label_budget import _over_seeds
    from ml.evaluation.student import format_rows

    def run(seed: int) -> dict:
        if seed == 0:
            return {"error": "no category has 3 positive targets"}
        out = _run(seed)
        if seed == 1:  # trained, but emitted nothing
            out = out | {"precision": float("nan"), "no_text": out["no_text"] | {"precision": float("nan")}}
        return out

    row = _over_seeds(run, 4)  # seeds 1-3 trained; seed 1 emitted nothing
    assert row["seeds"] == 3 and row["precision"] == pytest.approx(0.9) and row["precision_seeds"] == 2
    assert row["no_text"]["precision_seeds"] == 2 and "recall_seeds" not in row and "f1_seeds" not in row
    assert row["recall"] == pytest.approx(0.2)  # over all three seeds
    cells = format_rows({"editor + pseudo-labels": row})[0][0]
    assert cells[4] == "0.900 (2 of 3 seeds emitted)" and "(3 of 4 seeds)" in cells[6] and "±" in cells[6]
    assert "precision_seeds" not in _over_seeds(_run, 3)  # every seed that trained emitted

    single = _over_seeds(_run, 2)  # seed 0 failed: one seed counts
    assert single["seeds"] == 1 and "f1_sd" not in single
    f1 = format_rows({"editor only": single})[0][0][6]
    assert f1 == "0.200 (1 of 2 seeds)"


def test_a_run_carries_its_regression_and_a_baseline_its_certified_row():
    """The like-for-like rows: a student run's regression on its own targets and a baseline at cuts
    certified on gold are printed under the row they belong to, with their gold figure at the promise."""
    from ml.evaluation.student import format_rows

    base = {"coverage": 0.9, "precision": 0.85, "recall": 0.8, "f1": 0.82, "gold_f1_at_promise": 0.7}
    run = base | {"regression on its targets": base | {"f1": 0.8, "gold_f1_at_promise": 0.75}}
    rows, head = format_rows({"editor + pseudo-labels": run, "baseline": base | {"certified": base | {"f1": 0.7}}})
    names = [r[0] for r in rows]
    assert names == [
        "editor + pseudo-labels",
        "editor + pseudo-labels: regression on its targets, certified",
        "baseline",
        "baseline, certified",
    ]
    assert head[2] == "gold F1 at the promise" and rows[1][2] == "0.750" and rows[3][6] == "0.700"
    assert all(len(r) == len(head) for r in rows)
