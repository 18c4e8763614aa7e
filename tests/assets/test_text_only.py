"""A catalog too small for the student: the run succeeds with text alone and says what is missing."""

from __future__ import annotations

import json

import pytest

from ml.catalog.store import Catalog
from tests.pipeline import build, patched_env

pytestmark = pytest.mark.slow


def test_too_few_labels_for_the_student_is_a_state_not_a_failure(tmp_path, capsys):
    # Every stage must succeed (build asserts it) although no category reaches the student's minimum.
    p = build(tmp_path, videos=45, seed=11, extra_roots=[], overrides={"visual_min_positives": 1000})
    (mat,) = p.results[("visual_model", None)].asset_materializations_for_node("visual_model")
    assert mat.metadata["status"].value == "not trained" and "1000 positive targets" in mat.metadata["reason"].value
    c = Catalog(p.data_root / "catalog.duckdb")
    assert dict(c.query("SELECT model_name, count(*) FROM model_registry GROUP BY 1")) == {
        "text_model": 1,
        "fusion": 1,
    }
    (params,) = c.query("SELECT params FROM model_registry WHERE model_name = 'fusion'")[0]
    assert json.loads(params)["rule"] == "text" and json.loads(params)["visual_model_version"] is None
    # Text alone, or a parent backed off from text scores alone: never a visual score.
    assert {r[0] for r in c.query("SELECT DISTINCT source FROM predictions")} <= {"text", "backoff"}
    assert c.scalar("SELECT count(*) FROM predictions WHERE visual_score IS NOT NULL") == 0
    reasons = {r[0] for r in c.query("SELECT DISTINCT visual_abstained FROM video_results")}
    assert "no_visual_model" in reasons
    from orchestration.cli import main

    capsys.readouterr()  # what the pipeline printed while it ran
    with patched_env(p.env):
        assert main(["status", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)["models"]
    assert models["visual_model"].startswith("not trained: no category has 1000 positive targets")
    assert models["fusion"].endswith("(rule text)")
