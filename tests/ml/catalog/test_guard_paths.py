"""The held-out guard on every training path: fed a held-out video, each path refuses it.

Each test builds its training set the way a buggy caller would (the held-out videos not filtered out,
or a held-out set read before they were locked); the guard reads the catalog at the moment of training
and raises HeldOutLeak naming the step.
"""

from __future__ import annotations

import numpy as np
import pytest

from ml.catalog.holdout import HeldOutLeak, HoldoutGuard, held_out_ids
from tests.ml.visual.test_stage import _populate, student_settings  # noqa: F401 (fixture)


@pytest.fixture
def populated(catalog, student_settings, tmp_path):  # noqa: F811
    syn, gold = _populate(catalog, student_settings, tmp_path, with_gold=True)
    assert gold and set(gold) <= held_out_ids(catalog)
    return syn, gold


def test_the_guard_reads_the_catalog_when_called(catalog, populated):
    _, gold = populated
    guard = HoldoutGuard(catalog)
    guard(["not-held-out"], "a step")
    with pytest.raises(HeldOutLeak, match="a step would train on 1 held-out video"):
        guard(["not-held-out", gold[0]], "a step")


def test_student_refuses_a_held_out_video_the_inputs_forgot(catalog, student_settings, populated, tmp_path):  # noqa: F811
    from ml.frames.embedding_store import list_shards
    from ml.visual.network import VisualTrainConfig
    from ml.visual.stage import StudentInputs, fit_student, student_inputs
    from ml.visual.targets import TargetPolicy

    syn, gold = populated
    policy = TargetPolicy.from_settings(student_settings)
    inputs = student_inputs(catalog, list(syn.categories), policy)
    leaky = StudentInputs(
        inputs.categories,
        {**inputs.editor, gold[0]: np.ones(len(inputs.categories), np.float32)},
        inputs.pseudo,
        frozenset(),  # a held-out set read before the gold import
    )
    with pytest.raises(HeldOutLeak, match="the student's round one"):
        fit_student(
            list_shards(student_settings.embeddings_dir, student_settings.image_encoder),
            leaky,
            policy,
            VisualTrainConfig(arch="meanpool", max_epochs=1, enable_progress_bar=False),
            tmp_path / "models",
            guard=HoldoutGuard(catalog),
            min_positives=1,
        )


def test_baseline_refuses_a_held_out_video(catalog, student_settings, populated):  # noqa: F811
    from ml.frames.embedding_store import list_shards
    from ml.visual.baseline import baseline_scores

    syn, gold = populated
    shards = list_shards(student_settings.embeddings_dir, student_settings.image_encoder)
    labels = {gold[0]: np.ones(len(syn.categories), np.float32)}
    with pytest.raises(HeldOutLeak, match="the baseline"):
        baseline_scores(shards, labels, list(syn.categories), [gold[1]], guard=HoldoutGuard(catalog))


def _context(catalog, settings, syn, gold):
    from ml.evaluation.locked import LockedTest
    from ml.evaluation.student import eval_context

    test = LockedTest([gold[1]], {gold[1]: [syn.categories[0]]}, {gold[1]: "none"}, "test")
    ctx = eval_context(catalog, settings, test, list(syn.categories))
    from dataclasses import replace

    # the evaluation's own held-out set forgot the gold videos; its editor set carries one of them
    return replace(ctx, held_out=frozenset(), editor={**ctx.editor, gold[0]: np.ones(len(ctx.categories), np.float32)})


def test_eval_commands_refuse_a_held_out_video(catalog, student_settings, populated):  # noqa: F811
    from ml.evaluation.student import score_baseline, train_and_score
    from ml.visual.targets import TargetPolicy

    syn, gold = populated
    ctx = _context(catalog, student_settings, syn, gold)
    with pytest.raises(HeldOutLeak, match="the baseline"):
        score_baseline(ctx, ctx.editor)
    config_policy = TargetPolicy.from_settings(student_settings)
    from ml.evaluation.student import student_config

    with pytest.raises(HeldOutLeak, match="the student's round one"):
        train_and_score(ctx, ctx.editor, ({}, {}), config_policy, student_config(student_settings, max_epochs=1))


def test_label_budget_teacher_refuses_a_held_out_video(catalog, student_settings, populated, monkeypatch):  # noqa: F811
    from ml.catalog import videos
    from ml.evaluation.label_budget import label_budget

    syn, gold = populated
    ctx = _context(catalog, student_settings, syn, gold)
    # every video has a text: the label-budget teacher would read the leaked one
    monkeypatch.setattr(
        videos,
        "video_rows",
        lambda c, *a, **k: [
            {"video_id": v, "title": "football match", "description": "", "tags": "", "language": "en"}
            for v in [*ctx.editor, *syn.labels]
        ],
    )
    with pytest.raises(HeldOutLeak, match="the label-budget teacher"):
        label_budget(catalog, ctx, [1.0])


def test_no_guard_no_training(catalog, student_settings, populated):  # noqa: F811
    from dataclasses import replace

    from ml.evaluation.student import score_baseline

    syn, gold = populated
    ctx = replace(_context(catalog, student_settings, syn, gold), guard=None)
    with pytest.raises(ValueError, match="without a held-out guard"):
        score_baseline(ctx, {})
