"""The evaluation reports: which locked test they measure on, and what they say when there is nothing to measure."""

from __future__ import annotations

import json

import pytest

from ml.catalog.holdout import lock_test
from ml.catalog.model_registry import ModelNotTrained
from ml.demo.truth import lock_demo_test
from ml.evaluation.demo import demo_locked_test, has_demo_test
from ml.evaluation.report import (
    NoLockedTest,
    locked_test_report,
    pipeline_report,
    reported_locked_test,
    student_report,
)
from tests.conftest import registry_rows


def _ground_truth(settings, rows) -> None:
    settings.demo_dir.mkdir(parents=True, exist_ok=True)
    (settings.demo_dir / "ground_truth.jsonl").write_text("\n".join(json.dumps(r) for r in rows))


def test_the_demo_catalog_is_measured_against_its_ground_truth(catalog, settings):
    registry_rows(catalog, 3)
    _ground_truth(
        settings,
        [
            {"video_id": "v1", "split": "locked", "labels": ["483"], "text_kind": "none"},
            {"video_id": "v2", "split": "pool", "labels": ["216"]},
            {"video_id": "v3", "split": "bad", "labels": []},
            {"video_id": "v9", "split": "locked", "labels": ["216"]},  # not registered: never locked
        ],
    )
    assert not has_demo_test(catalog, settings.demo_dir)
    assert lock_demo_test(catalog, settings.demo_dir) == 1
    test = reported_locked_test(catalog, settings.demo_dir)
    assert test == demo_locked_test(catalog, settings.demo_dir)
    assert (test.video_ids, test.labels, test.kinds) == (["v1"], {"v1": ["483"]}, {"v1": "none"})
    assert "synthetic ground truth" in test.source


def test_without_ground_truth_the_locked_share_of_gold_is_measured(catalog, settings):
    registry_rows(catalog, 2)
    lock_test(catalog, ["v1"], "gold-split")
    test = reported_locked_test(catalog, settings.demo_dir)
    assert test.source == "gold answers of the locked share of gold"
    assert test.video_ids == []  # v1 has no exhaustive gold answer: nothing to score it against


def test_nothing_to_measure_is_said(catalog, settings, ws):
    with pytest.raises(ModelNotTrained, match="no fusion model yet"):
        pipeline_report(settings, catalog, ws)
    report, text = locked_test_report(settings, catalog, ws)
    assert report is None and text.startswith("No locked test")
    with pytest.raises(NoLockedTest, match="no locked test"):
        student_report(settings, catalog, ws)
