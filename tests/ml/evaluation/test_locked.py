"""The promise audit: certified (category, source) pairs checked on videos nothing was fitted on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml.evaluation.locked import format_audit, promise_audit


def test_the_audit_counts_certified_pairs_below_the_promise():
    y = np.zeros((40, 3), bool)
    y[:20, 0] = True  # category a: half the videos
    y[:, 1] = True  # category b: every video
    emitted = np.zeros_like(y)
    emitted[:20, 0] = True  # a: 20 emitted, all right
    emitted[:, 2] = True  # c: 40 emitted, none right
    audit = promise_audit({"text": (emitted, [True, True, True])}, y, ["a", "b", "c"], promise=0.8)
    rows = {r["category_id"]: r for r in audit["rows"]}
    assert audit["certified"] == 3 and rows["b"] == {"source": "text", "category_id": "b", "emitted": 0}
    assert rows["a"]["precision"] == 1.0 and rows["a"]["upper_bound"] == pytest.approx(1.0)
    assert rows["c"]["precision"] == 0.0 and rows["c"]["upper_bound"] < 0.8
    assert (audit["below_promise"], audit["evidence_below_promise"]) == (1, 1)
    assert audit["holds"] == (audit["allowed"] >= 1)
    assert "3 certified (category, source) pairs" in format_audit(audit, {"a": "Arts"})


def test_the_audit_states_its_own_confidence():
    y = np.ones((30, 1), bool)
    audit = promise_audit({"text": (y, [True])}, y, ["a"], promise=0.825, confidence=0.9)
    text = format_audit(audit)
    assert "one-sided 90% Clopper-Pearson bounds" in text and "below 82.5%" in text and "95%" not in text


def test_a_source_may_bring_its_own_truth_and_uncertified_pairs_are_not_audited():
    y = np.zeros((10, 2), bool)
    parents = np.ones((10, 2), bool)
    emitted = np.ones((10, 2), bool)
    audit = promise_audit({"backoff": (emitted, [True, False], parents)}, y, ["p", "q"], promise=0.8)
    assert audit["certified"] == 1 and audit["rows"][0]["precision"] == 1.0 and audit["holds"]


def test_the_pseudo_baseline_learns_the_students_pool_targets_only(catalog, ws, tmp_path):
    """Editor rows and held-out videos are not the pool; targets are hardened at 0.5 and mapped onto the
    report's categories (one the student never learnt is 0)."""
    from ml.catalog.holdout import lock_test
    from ml.evaluation.locked import _student_pool_targets
    from tests.ml.catalog.test_holdout import register_student

    targets = {"v1": ("editor", [1, 0]), "v2": ("pseudo", [0.2, 0.9]), "v3": ("self", [0.6, 0.4])}
    targets["v4"] = ("pseudo", [1, 1])
    register_student(catalog, tmp_path, "visual-1", targets, ["a", "b"])
    lock_test(catalog, ["v4"], "manual")
    pool = _student_pool_targets(catalog, "visual-1", ["b", "z", "a"])
    assert sorted(pool) == ["v2", "v3"]
    assert pool["v2"].tolist() == [1.0, 0.0, 0.0] and pool["v3"].tolist() == [0.0, 0.0, 1.0]
    assert _student_pool_targets(catalog, "visual-9", ["a"]) == {}


@pytest.mark.slow
def test_a_locked_video_the_student_learnt_from_is_left_out_of_the_report_and_counted(pipeline_env, tmp_path):
    """Gold imported after training can put a video the deployed student learnt from (a spot-checked pool
    video) into the locked share: its scores there are not held out, so the report leaves it out of every
    figure and says how many it left out, until the student is retrained."""
    from ml.catalog.holdout import lock_test, student_trained_on
    from ml.catalog.store import Catalog, clone_file
    from ml.evaluation.locked import LockedTest, evaluate_locked_test
    from ml.evaluation.report import reported_locked_test
    from ml.fusion.stage import load_current_fusion

    copy = tmp_path / "catalog.duckdb"  # the shared trained catalog stays as it is
    clone_file(pipeline_env.data_root / "catalog.duckdb", copy)
    catalog = Catalog(copy)
    fusion = load_current_fusion(catalog)
    test = reported_locked_test(catalog, pipeline_env.data_root / "demo")
    before = evaluate_locked_test(catalog, fusion, test)
    learnt = sorted(student_trained_on(catalog, fusion.visual_version) - set(test.video_ids))
    assert learnt and before["student_trained_on"] == 0
    lock_test(catalog, learnt[:1], "gold-split")
    with_it = LockedTest(
        [*test.video_ids, learnt[0]],
        {**test.labels, learnt[0]: [fusion.categories[0]]},
        {**test.kinds, learnt[0]: "full"},
        test.source,
    )
    after = evaluate_locked_test(catalog, fusion, with_it)
    assert after["student_trained_on"] == 1 and after["videos"] == before["videos"] == len(test.video_ids)
    same = [json.dumps(r[k], sort_keys=True) for r in (before, after) for k in ("systems", "audit")]  # NaN == NaN
    assert same[:2] == same[2:]
