"""`vidcat eval-visual` on the locked test: a true category no editor labelled is a miss, as in the report."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from ml.catalog.store import insert_rows
from ml.evaluation.locked import LockedTest, locked_labels
from tests.conftest import video_rows


def _catalog_with_editor_labels(catalog) -> None:
    now = dt.datetime(2026, 1, 1)
    ids = ["e1", "e2", "t1", "t2"]
    with catalog.transaction() as con:
        video_rows(con, ids, now)
        insert_rows(con, "label_coverage", ["video_id", "label_set", "exhaustive"], [("e1", "editor", True)])
        insert_rows(
            con,
            "human_labels",
            ["video_id", "category_id", "label_set", "is_positive", "annotator", "created_at"],
            [("e1", "a", "editor", True, "test", now)],
        )


def test_eval_visual_counts_true_categories_no_editor_labelled_as_misses(catalog, settings):
    from ml.evaluation.student import _figures, _widen, eval_context

    _catalog_with_editor_labels(catalog)
    # t1 shows a and z; nobody labelled z for training, so no student can say it: a miss all the same.
    test = LockedTest(["t1", "t2"], {"t1": ["a", "z"], "t2": ["a"]}, {"t1": "none", "t2": "text"}, "test")
    ctx = eval_context(catalog, settings, test, ["a", "b", "z"])
    assert ctx.categories == ["a"]
    _, expected = locked_labels(test, ctx.categories)
    np.testing.assert_array_equal(ctx.test_y, expected)
    assert ctx.test_y.sum() == 3
    # a system that finds every a and nothing else
    emitted, score = _widen(ctx, np.array([[True], [True]]), np.array([[0.9], [0.8]]))
    figures = _figures(ctx, emitted, score)
    assert figures["precision"] == 1.0
    assert figures["recall"] == pytest.approx(2 / 3)
    assert figures["no_text"]["recall"] == pytest.approx(1 / 2)


def _context(settings, certify_y: np.ndarray):
    from ml.evaluation.student import EvalContext

    test = LockedTest(["t1", "t2", "t3"], {"t1": ["a"], "t2": [], "t3": ["a"]}, {"t1": "none"}, "test")
    _, test_y = locked_labels(test, ["a"])
    ids = [f"g{i}" for i in range(len(certify_y))]
    policy = settings.threshold_policy()
    return EvalContext(["a"], [], None, {}, frozenset(), ids, certify_y, test, test_y, settings, policy)


def test_cuts_certified_on_gold_judge_the_locked_test_and_gold_is_judged_out_of_fold(settings):
    """A regression and the student are compared at the same held precision: the locked test under cuts
    certified on gold, gold itself under cuts from its other folds. A scorer gold cannot certify emits
    nothing, however well it would do at a 0.5 cut."""
    from ml.evaluation.student import _certified_figures, gold_f1_at_promise
    from ml.thresholds import out_of_fold_emitted

    y = np.zeros((60, 1), bool)
    y[:40] = True  # 40 gold positives, each fold's training share holds 32
    ctx = _context(settings, y)
    ranked = np.where(y, 0.9, 0.2) + np.linspace(0, 0.01, 60)[:, None]
    test = np.array([[0.95], [0.1], [0.5]])
    figures = _certified_figures(ctx, ranked, test)
    assert figures["precision"] == 1.0 and figures["recall"] == pytest.approx(0.5)  # t3 is under the cut
    e = out_of_fold_emitted(ranked, y, ctx.policy)
    assert figures["gold_f1_at_promise"] == pytest.approx(2 * (e & y).sum() / (e.sum() + y.sum()))
    assert gold_f1_at_promise(ctx, ranked) == pytest.approx(1.0)

    noise = np.random.default_rng(0).uniform(size=(60, 1))  # ranks gold at random: no cut holds 80%
    blind = _certified_figures(ctx, noise, np.array([[0.99], [0.99], [0.99]]))
    assert blind["coverage"] == 0.0 and blind["gold_f1_at_promise"] == 0.0


def test_a_students_targets_become_the_regressions_labels_over_the_evaluated_categories():
    from ml.evaluation.locked import hardened_targets
    from ml.visual.targets import StudentTargets

    t = StudentTargets(["b", "a"])
    t.add("v1", np.array([0.7, np.nan], np.float32), np.ones(2, np.float32), "pseudo")
    t.add("v2", np.array([0.2, 0.9], np.float32), np.ones(2, np.float32), "editor")
    out = hardened_targets(list(t.targets), list(t.targets.values()), t.categories, ["a", "b", "c"])  # c: unlearnt
    np.testing.assert_array_equal(out["v1"], [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(out["v2"], [1.0, 0.0, 0.0])


def test_a_baselines_certified_row_is_silent_where_the_student_abstained(tmp_path, settings):
    """Certified, a regression is read at the product's operating point: where the student's detector
    abstained the product gives the visual source nothing, so the regression says nothing there either,
    run by run; its 0.5 cut still scores every video (the 20-line model as it is)."""
    from ml.evaluation.student import EvalContext, baseline_row
    from ml.frames.embedding_store import VideoEmbeddings, write_shard

    rng = np.random.default_rng(0)

    def frames(positive: bool) -> np.ndarray:
        centre = np.r_[np.ones(4), np.zeros(4)] if positive else np.r_[np.zeros(4), np.ones(4)]
        return (centre + 0.05 * rng.standard_normal((3, 8))).astype(np.float32)

    editor = {f"e{i}": np.array([float(i % 2 == 0)], np.float32) for i in range(20)}
    gold_y = np.zeros((60, 1), bool)
    gold_y[:40] = True
    gold = [f"g{i}" for i in range(60)]
    test = LockedTest(["t1", "t2", "t3"], {"t1": ["a"], "t2": [], "t3": ["a"]}, {"t1": "none"}, "test")
    positive = {**{v: bool(y[0]) for v, y in editor.items()}, **dict(zip(gold, gold_y[:, 0], strict=True))}
    positive |= {"t1": True, "t2": False, "t3": True}
    records = [VideoEmbeddings(v, np.arange(3, dtype=np.float32), frames(p)) for v, p in positive.items()]
    write_shard(tmp_path / "s.parquet", records, encoder="t")
    _, test_y = locked_labels(test, ["a"])
    ctx = EvalContext(
        ["a"],
        [tmp_path / "s.parquet"],
        None,
        editor,
        frozenset(),
        gold,
        gold_y,
        test,
        test_y,
        settings,
        settings.threshold_policy(),
        guard=lambda ids, what: None,
    )

    every = baseline_row(ctx, editor)
    assert every["recall"] == 1.0 and every["certified"]["recall"] == 1.0  # gold certifies a cut for "a"
    one = baseline_row(ctx, editor, [["t1"]])
    assert one["recall"] == 1.0  # the 0.5 cut is unchanged
    assert one["certified"]["recall"] == pytest.approx(0.5) and one["certified"]["no_text"]["coverage"] == 0.0
    two = baseline_row(ctx, editor, [["t1"], []])  # the mean over the runs, each with its own abstentions
    assert two["certified"]["recall"] == pytest.approx(0.75)
    assert two["certified"]["abstaining_with"] == "2 student run(s)"
