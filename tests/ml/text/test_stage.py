"""The teacher on a real catalog: gold and locked-test videos never train it, whatever labels they carry."""

from __future__ import annotations

import datetime as dt
import random

import numpy as np
import pytest

from ml.catalog.holdout import lock_test
from ml.catalog.store import insert_rows
from ml.demo.vocabulary import PHRASES

CATS = ["533", "216", "425", "472"]
N = 90


def _populate(catalog, *, with_held_out: bool) -> tuple[list[str], list[str]]:
    rng = random.Random(0)
    rows, editor, gold, test = [], [], [], []
    for i in range(N):
        cat = CATS[i % len(CATS)]
        lang = rng.choice(["en", "fr", "de"])
        title = f"{rng.choice(PHRASES[cat][lang])} | {rng.choice(PHRASES[cat][lang])}"
        vid = f"t{i:03d}"
        kind = "editor" if i % 5 < 3 else ("gold" if i % 5 == 3 else "test")
        if kind != "editor" and not with_held_out:
            continue
        rows.append((vid, cat, title, lang))
        {"editor": editor, "gold": gold, "test": test}[kind].append(vid)
    now = dt.datetime(2026, 1, 1)
    with catalog.transaction() as con:
        insert_rows(
            con,
            "videos",
            ["video_id", "seq", "uri", "registered_at", "origin", "title", "language"],
            [(v, i, f"/m/{v}.mp4", now, "test", title, lang) for i, (v, _, title, lang) in enumerate(rows)],
        )
        # The held-out videos carry editor labels too: a bug that read them would change the model.
        labelled = [(v, c) for v, c, _, _ in rows]
        insert_rows(
            con,
            "label_coverage",
            ["video_id", "label_set", "exhaustive"],
            [(v, "editor", True) for v, _ in labelled] + [(v, "gold", True) for v in gold],
        )
        insert_rows(
            con,
            "human_labels",
            ["video_id", "category_id", "label_set", "is_positive", "annotator", "created_at"],
            [(v, c, "editor", True, "t", now) for v, c in labelled]
            + [(v, c, "gold", True, "t", now) for v, c in labelled if v in set(gold)],
        )
    if test:
        lock_test(catalog, test, "manual")
    return editor, gold + test


def test_removing_held_out_videos_leaves_the_teacher_unchanged(tmp_path, settings):
    from ml.catalog.store import open_catalog
    from ml.text.stage import train_teacher

    models = []
    for with_held_out in (True, False):
        s = settings.with_overrides(data_root=tmp_path / str(with_held_out)).ensure_dirs()
        catalog = open_catalog(s.catalog_path)
        editor, held = _populate(catalog, with_held_out=with_held_out)
        model, _, info = train_teacher(catalog, CATS, s)
        models.append(model)
        assert info["with_text"] == len(editor)
        assert model.training_data["held_out_excluded"] == len(held)
    a, b = models
    assert a.training_data["data_hash"] == b.training_data["data_hash"]
    for key in a.weights:
        np.testing.assert_array_equal(a.weights[key], b.weights[key])
    np.testing.assert_array_equal(np.nan_to_num(a.heldout_scores), np.nan_to_num(b.heldout_scores))


def test_a_leak_is_refused_before_training(catalog, settings, monkeypatch):
    from ml.catalog import holdout
    from ml.text import stage

    _populate(catalog, with_held_out=True)
    # A catalog query that forgot the exclusion: the guard reads the catalog itself and stops the run.
    monkeypatch.setattr(stage, "held_out_ids", lambda c: frozenset())
    with pytest.raises(holdout.HeldOutLeak, match="the text teacher would train on"):
        stage.train_teacher(catalog, CATS, settings)
