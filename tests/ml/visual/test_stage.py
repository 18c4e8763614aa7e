"""The student on a real catalog: gold never trains it, soft targets and sources recorded, models unchanged
when the gold videos' labels and embeddings are removed altogether."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from ml.catalog.model_registry import latest_model, register_model
from ml.catalog.store import insert_rows
from ml.frames.embedding_store import VideoEmbeddings, iter_videos, write_shard
from ml.visual.synthetic import synthetic_catalog
from tests.conftest import video_rows

N = 160


def _populate(catalog, settings, tmp_path, *, with_gold: bool):
    """Synthetic shards and a catalog: 60% editor-labelled, 20% gold, the rest pseudo-labelled only.

    The teacher scores and pseudo-labels every video with text, gold ones included (as the batch assets
    do); with
    ``with_gold`` False the gold videos are removed altogether: rows, labels, pseudo-labels, embeddings.
    """
    syn = synthetic_catalog(tmp_path / "syn", N, dim=32, n_categories=4, frames=(4, 12), seed=3)
    ids = sorted(syn.labels)
    editor = ids[: int(0.6 * N)]
    gold = ids[int(0.6 * N) : int(0.8 * N)]
    keep = [v for v in ids if with_gold or v not in set(gold)]
    out = settings.embeddings_dir / settings.image_encoder
    for i, shard in enumerate(syn.shards):
        write_shard(
            out / f"b{i:08d}.parquet",
            (VideoEmbeddings(v.video_id, v.timestamps, v.embeddings) for v in iter_videos(shard) if v.video_id in keep),
            encoder=settings.image_encoder,
        )
    now = dt.datetime(2026, 1, 1)
    with catalog.transaction() as con:
        video_rows(con, keep, now)
        label_rows, coverage = [], []
        for label_set, vids in (("editor", editor), ("gold", gold if with_gold else [])):
            for v in vids:
                coverage.append((v, label_set, True))
                label_rows += [
                    (v, syn.categories[j], label_set, True, "test", now) for j in np.flatnonzero(syn.labels[v])
                ]
        insert_rows(con, "label_coverage", ["video_id", "label_set", "exhaustive"], coverage)
        insert_rows(
            con,
            "human_labels",
            ["video_id", "category_id", "label_set", "is_positive", "annotator", "created_at"],
            label_rows,
        )
        pseudo = []
        for v in keep:
            if v in set(editor):
                continue
            for j, c in enumerate(syn.categories):
                p = 0.9 if syn.targets[v][j] else 0.04
                pseudo.append((v, c, "t1", None, p, abs(2 * p - 1), "positive" if p > 0.5 else "negative"))
        insert_rows(
            con,
            "pseudo_labels",
            ["video_id", "category_id", "model_version", "batch_id", "target", "weight", "kind"],
            pseudo,
        )
        # The teacher's calibrated scores, the text half of the pool's targets: gold videos have them too.
        scored = [
            (v, "t1", None, True, "en", 100, [0.9 if t else 0.04 for t in syn.targets[v]], now)
            for v in keep
            if v not in set(editor)
        ]
        insert_rows(
            con,
            "text_predictions",
            ["video_id", "model_version", "batch_id", "has_text", "language", "text_chars", "scores", "predicted_at"],
            scored,
        )
    register_model(catalog, "text_model", "t1", tmp_path / "teacher", list(syn.categories))
    return syn, gold


@pytest.fixture
def student_settings(settings):
    return settings.with_overrides(visual_arch="meanpool", visual_max_epochs=3, visual_min_positives=3)


def _train(catalog, settings, syn):
    from ml.visual.stage import train_student

    return train_student(catalog, settings, list(syn.categories))


@pytest.mark.parametrize("editor_labels", [True, False])
def test_gold_videos_never_train_the_student(catalog, student_settings, tmp_path, editor_labels):
    """Gold carries pseudo-labels and teacher scores like the pool: neither reaches the student.

    Without editor labels round one learns the pseudo-labels ``build_targets`` keeps; with them, round
    two learns the pool's posteriors from the teacher's scores (source ``pseudo``).
    """
    from ml.visual.stage import student_inputs
    from ml.visual.targets import TargetPolicy

    settings = student_settings.with_overrides(student_editor_labels=editor_labels)
    syn, gold = _populate(catalog, settings, tmp_path, with_gold=True)
    inputs = student_inputs(catalog, list(syn.categories), TargetPolicy.from_settings(settings))
    assert set(gold) <= set(inputs.pseudo[0]) and not set(inputs.text_probs) & set(gold)
    result = _train(catalog, settings, syn)
    record = latest_model(catalog, "visual_model")
    assert result.sources["editor"] == (int(0.6 * N) if editor_labels else 0)
    assert result.sources["pseudo"] > 0
    # the pool: every video neither editor nor gold (the gold fifth had pseudo-labels too: dropped)
    pool = N - int(0.8 * N)
    if editor_labels:
        assert result.sources["pseudo"] + result.sources["self"] == pool
    else:  # round one learnt the pool's pseudo-labels; the unused editor videos are pool videos without text
        assert result.sources["pseudo"] == pool
        assert result.sources["self"] <= int(0.6 * N)
    targets = np.load(result.model_dir / "targets.npz")
    assert not set(targets["video_ids"].tolist()) & set(gold)
    assert record.training_data["held_out_videos"] == len(gold)
    from ml.visual.ood import load_detector

    assert not set(load_detector(result.model_dir).reference_ids) & set(gold)


def test_the_students_gold_figure_leaves_the_locked_test_out(catalog, student_settings, tmp_path):
    from ml.catalog.holdout import lock_test

    syn, gold = _populate(catalog, student_settings, tmp_path, with_gold=True)
    locked = gold[::3]
    lock_test(catalog, locked, "gold-split")
    _train(catalog, student_settings, syn)
    figures = latest_model(catalog, "visual_model").metrics["gold"]
    assert [g["videos"] for g in figures.values()] == [len(gold) - len(locked)]


def test_removing_gold_labels_and_embeddings_leaves_the_student_unchanged(tmp_path, student_settings):
    from ml.catalog.store import open_catalog
    from ml.visual.predictor import VisualPredictor

    models = []
    for with_gold in (True, False):
        root = tmp_path / ("with" if with_gold else "without")
        settings = student_settings.with_overrides(data_root=root).ensure_dirs()
        catalog = open_catalog(settings.catalog_path)
        syn, _ = _populate(catalog, settings, root, with_gold=with_gold)
        result = _train(catalog, settings, syn)
        record = latest_model(catalog, "visual_model")
        models.append((record, VisualPredictor(result.model_dir), syn))
    (a, pa, syn), (b, pb, _) = models
    assert a.training_data["data_digest"] == b.training_data["data_digest"]
    assert a.training_data["sources"] == b.training_data["sources"]
    probe = list(iter_videos(syn.shards))
    sa = {s.video_id: s for s in pa.predict(probe)}
    sb = {s.video_id: s for s in pb.predict(probe)}
    for vid in sa:
        np.testing.assert_array_equal(sa[vid].scores, sb[vid].scores)
        assert sa[vid].ood_score == pytest.approx(sb[vid].ood_score, abs=0)


def test_gold_the_current_student_learnt_from_is_left_out_of_certification(catalog, student_settings, tmp_path):
    """A spot-check sheet turns pool videos the student learnt from into gold: they certify nothing until
    the student is retrained (the next one leaves them out, being held out)."""
    from ml.catalog.holdout import student_trained_on
    from ml.fusion.stage import gold_inputs

    syn, gold = _populate(catalog, student_settings, tmp_path, with_gold=True)
    result = _train(catalog, student_settings, syn)
    visual, text = latest_model(catalog, "visual_model"), latest_model(catalog, "text_model")
    z = np.load(result.model_dir / "targets.npz")
    spot_checked = [str(v) for v, src in zip(z["video_ids"], z["sources"], strict=True) if src != "editor"][:3]
    assert set(spot_checked) <= student_trained_on(catalog, visual.version)
    now = dt.datetime(2026, 1, 2)
    with catalog.transaction() as con:
        insert_rows(
            con, "label_coverage", ["video_id", "label_set", "exhaustive"], [(v, "gold", True) for v in spot_checked]
        )
        insert_rows(
            con,
            "human_labels",
            ["video_id", "category_id", "label_set", "is_positive", "annotator", "created_at"],
            [(v, syn.categories[0], "gold", True, "spot-check", now) for v in spot_checked],
        )
    ids, *_, left_out = gold_inputs(catalog, text, visual, list(syn.categories))
    assert sorted(ids) == sorted(gold) and left_out == len(spot_checked) == 3  # counted, for the asset's warning
