"""Held-out videos: gold and the locked test, recorded once, never trainable, never fitted on twice."""

from __future__ import annotations

import json

import pytest

from ml.catalog.holdout import (
    HeldOutLeak,
    assert_trainable,
    held_out_ids,
    lock_test,
    locked_test_ids,
    split_gold,
    trainable,
)
from ml.catalog.labels import certification_matrix, import_labels, read_label_file
from tests.conftest import registry_rows


def _gold_file(tmp_path, rows):
    path = tmp_path / "gold.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return read_label_file(path)


def test_held_out_is_gold_and_locked_test(catalog, ws, tmp_path):
    registry_rows(catalog, 6)
    import_labels(catalog, _gold_file(tmp_path, [{"video_id": "v1", "labels": ["533"]}]), ws, "gold")
    assert lock_test(catalog, ["v2", "v3"], "manual") == 2
    assert lock_test(catalog, ["v3"], "demo-ground-truth") == 1  # idempotent: re-locking replaces
    assert locked_test_ids(catalog) == {"v2", "v3"}
    assert locked_test_ids(catalog, source="demo-ground-truth") == {"v3"}
    assert held_out_ids(catalog) == {"v1", "v2", "v3"}
    assert trainable(["v1", "v4", "v2", "v5"], held_out_ids(catalog)) == ["v4", "v5"]
    assert_trainable(["v4", "v5"], held_out_ids(catalog), "a step")
    with pytest.raises(HeldOutLeak, match="a step would train on 1 held-out video"):
        assert_trainable(["v4", "v1"], held_out_ids(catalog), "a step")
    with pytest.raises(ValueError):
        lock_test(catalog, ["v4"], "somewhere")


def test_import_gold_excludes_videos_that_carry_editor_labels(catalog, ws, tmp_path):
    registry_rows(catalog, 4)
    import_labels(catalog, _gold_file(tmp_path, [{"video_id": "v1", "labels": ["216"]}]), ws, "editor")
    rows = [{"video_id": v, "labels": ["533"]} for v in ("v1", "v2", "v3")]
    report = import_labels(catalog, _gold_file(tmp_path, rows), ws, "gold")
    assert report.excluded_editor_overlap == ["v1"] and report.videos == 2
    gold = {r[0] for r in catalog.query("SELECT video_id FROM label_coverage WHERE label_set = 'gold'")}
    assert gold == {"v2", "v3"}


def test_certification_gold_leaves_the_locked_test_out(catalog, ws, tmp_path):
    registry_rows(catalog, 5)
    rows = [{"video_id": f"v{i}", "labels": ["533"]} for i in range(1, 6)]
    import_labels(catalog, _gold_file(tmp_path, rows), ws, "gold")
    lock_test(catalog, ["v2", "v4"], "gold-split")
    ids, y = certification_matrix(catalog, ["533"])
    assert ids == ["v1", "v3", "v5"] and y.sum() == 3


def test_gold_split_is_fixed_per_video_whatever_else_is_imported():
    ids = [f"g{i:04d}" for i in range(2000)]
    certify, test = split_gold(ids, 0.3)
    assert 0.25 < len(test) / len(ids) < 0.35 and not set(certify) & set(test)
    _, test_again = split_gold(ids[:1000] + [f"x{i}" for i in range(500)], 0.3)
    assert {v for v in test_again if v.startswith("g")} == {v for v in test if v in set(ids[:1000])}
    with pytest.raises(ValueError):
        split_gold(ids, 1.0)


def register_student(catalog, tmp_path, version: str, targets: dict[str, tuple[str, list[float]]], cats: list[str]):
    """A visual model whose ``targets.npz`` (written by the student's own writer) holds ``targets``."""
    import numpy as np

    from ml.catalog.model_registry import register_model
    from ml.visual.stage import save_targets
    from ml.visual.targets import StudentTargets

    model_dir = tmp_path / version
    model_dir.mkdir()
    learnt = StudentTargets(
        cats,
        {v: np.array(t, np.float32) for v, (_, t) in targets.items()},
        source={v: src for v, (src, _) in targets.items()},
    )
    save_targets(learnt, model_dir / "targets.npz")
    register_model(catalog, "visual_model", version, model_dir, cats)


def test_one_reader_says_what_the_student_learnt_from(catalog, tmp_path):
    """Which videos trained the student (certification leaves them out) and on what targets (the report's
    like-for-like baseline) come from its ``targets.npz``."""
    from ml.catalog.holdout import student_targets, student_trained_on

    register_student(
        catalog, tmp_path, "visual-1", {"v1": ("editor", [1, 0]), "v2": ("pseudo", [0.2, 0.9])}, ["a", "b"]
    )
    learnt = student_targets(catalog, "visual-1")
    assert learnt is not None and learnt.video_ids == ["v1", "v2"] and learnt.sources == ["editor", "pseudo"]
    assert learnt.categories == ["a", "b"] and learnt.targets[1].tolist() == pytest.approx([0.2, 0.9])
    assert student_trained_on(catalog, "visual-1") == {"v1", "v2"}
    assert student_targets(catalog, None) is None and student_trained_on(catalog, None) == frozenset()
    assert student_targets(catalog, "visual-9") is None  # not registered
    (tmp_path / "visual-1" / "targets.npz").unlink()
    assert student_trained_on(catalog, "visual-1") == frozenset()  # a model saved before targets were kept


def test_which_videos_trained_the_student_reads_only_their_ids(catalog, tmp_path):
    """Thresholds, import-gold and the report ask only which videos trained the student: the target
    matrix (videos x categories, compressed) stays on disk."""
    import numpy as np

    from ml.catalog.holdout import student_targets, student_trained_on

    register_student(catalog, tmp_path, "visual-1", {"v1": ("editor", [1, 0])}, ["a", "b"])
    np.savez_compressed(tmp_path / "visual-1" / "targets.npz", video_ids=np.array(["v1", "v7"]))  # ids alone
    assert student_trained_on(catalog, "visual-1") == {"v1", "v7"}
    with pytest.raises(KeyError):
        student_targets(catalog, "visual-1")
