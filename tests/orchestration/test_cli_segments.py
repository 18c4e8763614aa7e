"""Scenes in the product commands on a trained catalog: `classify --segments`, `explain`, `status`."""

from __future__ import annotations

import itertools
import json

import pytest

from orchestration.cli import main
from tests.conftest import make_video

pytestmark = pytest.mark.slow


def test_classify_segments_prints_time_ranges_categories_and_breaks(pipeline_env, capsys, tmp_path):
    # Three demo scenes of 14 s (soccer, cooking, space): two cuts, both farther than 10 s from the ends.
    path = make_video(tmp_path / "three-scenes.mp4", categories=("533", "216", "472"), duration_s=42.0, fps=4, seed=3)
    assert main(["classify", str(path), "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert "segments" not in plain  # without --segments the answer is as before
    assert main(["classify", str(path), "--segments", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    seg = out["segments"]
    scenes = seg["scenes"]
    assert scenes[0]["start_s"] == 0.0 and scenes[-1]["end_s"] >= 41.0
    assert all(a["end_s"] == b["start_s"] for a, b in itertools.pairwise(scenes))
    cuts = [s["start_s"] for s in scenes[1:]]
    assert any(abs(t - 14) <= 1 for t in cuts) and any(abs(t - 28) <= 1 for t in cuts), cuts
    assert out["categories"] == plain["categories"]  # the video's own categories do not change
    for s in scenes:
        # A category only under a certified scene threshold; otherwise the scene says why it has none.
        assert s["categories"] or s["abstained"] in (None, seg["note"])
    assert all(10 <= t <= scenes[-1]["end_s"] - 10 for t in seg["breaks"])
    assert main(["classify", str(path), "--segments"]) == 0
    text = capsys.readouterr().out
    assert "scenes (" in text and "suggested mid-roll breaks:" in text and " - " in text


def test_explain_and_status_show_the_stored_scenes(pipeline_env, capsys):
    from ml.catalog.store import Catalog

    catalog = Catalog(pipeline_env.data_root / "catalog.duckdb")
    vid = catalog.query(
        "SELECT video_id FROM current_segments c JOIN current_predictions USING (video_id) ORDER BY video_id LIMIT 1"
    )[0][0]
    assert main(["explain", vid, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    stored = catalog.query("SELECT start_s, end_s FROM current_segments WHERE video_id = ? ORDER BY scene_index", [vid])
    assert [(s["start_s"], s["end_s"]) for s in out["segments"]["scenes"]] == [
        (round(a, 3), round(b, 3)) for a, b in stored
    ]
    assert main(["explain", vid]) == 0
    assert "scenes (" in capsys.readouterr().out
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert "categories certified on" in status["models"]["scene_thresholds"]
    assert isinstance(status["scene_certification_gaps"], list)
