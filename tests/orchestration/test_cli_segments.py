"""Scenes in the product commands on a trained catalog: `classify --segments`, `explain`, `status`."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import pytest

from orchestration.cli import main
from tests.conftest import make_video

pytestmark = pytest.mark.slow


def _tiles(scenes: list[dict[str, Any]], duration_s: float) -> None:
    """The scenes number 0, 1, ... and cover [0, duration] in order, each starting where the one before ends."""
    assert [s["scene_index"] for s in scenes] == list(range(len(scenes)))
    assert scenes[0]["start_s"] == 0.0
    assert all(a["end_s"] == b["start_s"] for a, b in itertools.pairwise(scenes))
    assert all(s["end_s"] > s["start_s"] for s in scenes)
    assert scenes[-1]["end_s"] == pytest.approx(duration_s, abs=0.01)


def _given_under_certified_thresholds(scenes: list[dict[str, Any]], student: list[str], certified: set[str]) -> None:
    """A scene's categories are certified ones of the student's, best first; a scene given none says why
    (nothing certified, the student abstained, no frame) or was judged, and its best category shows what
    it lacked."""
    from ml.segments.certification import NO_THRESHOLD
    from ml.segments.stage import NO_FRAMES, OUT_OF_DISTRIBUTION

    assert certified <= set(student)
    for s in scenes:
        ids = [c["id"] for c in s["categories"]]
        scores = [c["score"] for c in s["categories"]]
        assert set(ids) <= certified and len(set(ids)) == len(ids)
        assert scores == sorted(scores, reverse=True) and all(0.0 <= x <= 1.0 for x in scores)
        if not certified:
            assert s["abstained"] == NO_THRESHOLD and not ids
        elif ids:
            assert s["abstained"] is None
        else:
            assert s["abstained"] in (None, OUT_OF_DISTRIBUTION, NO_FRAMES)
        top = s["top"]
        if s["abstained"] == NO_FRAMES:
            assert top is None  # no frame, no score
        if top is not None:
            assert top["id"] in student and top["certified"] == (top["id"] in certified)
            assert all(top["score"] >= x - 1e-4 for x in scores)  # the best of every category, given or not


def _breaks_where_categories_change(seg: dict[str, Any], margin_s: float = 10.0) -> None:
    """Breaks are scene starts, marked on their scene, exactly where the category sets change away from the ends."""
    scenes = seg["scenes"]
    end = scenes[-1]["end_s"]
    assert seg["breaks"] == [s["start_s"] for s in scenes if s["break_before"]]
    assert not scenes[0]["break_before"]
    for before, at in itertools.pairwise(scenes):
        inside = margin_s <= at["start_s"] <= end - margin_s
        changes = {c["id"] for c in before["categories"]} != {c["id"] for c in at["categories"]}
        assert at["break_before"] == (inside and changes), (before, at)


def test_classify_segments_prints_time_ranges_categories_and_breaks(pipeline_env, capsys, tmp_path):
    from ml.catalog.model_registry import get_model
    from ml.catalog.store import Catalog
    from ml.segments.certification import NO_THRESHOLD, current_scene_thresholds

    # Three demo scenes of 14 s (soccer, cooking, space): two cuts, both farther than 10 s from the ends.
    path = make_video(tmp_path / "three-scenes.mp4", categories=("533", "216", "472"), duration_s=42.0, fps=4, seed=3)
    assert main(["classify", str(path), "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert "segments" not in plain  # without --segments the answer is as before
    assert main(["classify", str(path), "--segments", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    seg = out["segments"]
    scenes = seg["scenes"]
    _tiles(scenes, max(out["probe"]["duration_s"], out["frames"]["timestamps"][-1]))
    assert out["probe"]["duration_s"] == pytest.approx(42.0, abs=0.5)
    assert sum(s["n_frames"] for s in scenes) == out["frames"]["n_frames"]  # every sampled frame in one scene
    cuts = [s["start_s"] for s in scenes[1:]]
    assert any(abs(t - 14) <= 1 for t in cuts) and any(abs(t - 28) <= 1 for t in cuts), cuts
    assert out["categories"] == plain["categories"]  # the video's own categories do not change

    catalog = Catalog(pipeline_env.data_root / "catalog.duckdb")
    student = get_model(catalog, "visual_model", out["visual_model_version"]).categories
    thresholds = current_scene_thresholds(catalog, out["visual_model_version"])
    certified = set(thresholds.certified) if thresholds else set()
    assert seg["scene_thresholds_version"] == (thresholds.version if thresholds else None)
    assert seg["certified_categories"] == len(certified)
    assert seg["note"] == (None if certified else NO_THRESHOLD)
    _given_under_certified_thresholds(scenes, student, certified)
    assert all(s["top"] is not None for s in scenes if s["n_frames"])  # a scene with frames has scores
    _breaks_where_categories_change(seg)

    assert main(["classify", str(path), "--segments"]) == 0
    text = capsys.readouterr().out
    assert "scenes (" in text and "suggested mid-roll breaks:" in text
    for s in scenes:
        assert f"{s['start_s']:7.1f} - {s['end_s']:7.1f} s" in text
    for t in seg["breaks"]:
        assert f"{t:.1f} s" in text


def test_explain_and_status_show_the_stored_scenes(pipeline_env, capsys):
    from ml.catalog.model_registry import get_model, latest_model
    from ml.catalog.segments import scene_threshold_rows
    from ml.catalog.store import Catalog
    from ml.catalog.videos import DURATION_SLACK_S, probed_durations

    catalog = Catalog(pipeline_env.data_root / "catalog.duckdb")
    vid = catalog.query(
        "SELECT video_id FROM current_segments c JOIN current_predictions USING (video_id) ORDER BY video_id LIMIT 1"
    )[0][0]
    assert main(["explain", vid, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    seg = out["segments"]
    scenes = seg["scenes"]
    stored = catalog.query(
        "SELECT s.start_s, s.end_s, s.categories, s.scores, s.break_before, s.model_version, s.thresholds_version "
        "FROM current_segments c JOIN segment_predictions s USING (video_id, model_version, scene_index) "
        "WHERE c.video_id = ? ORDER BY c.scene_index",
        [vid],
    )
    assert [(s["start_s"], s["end_s"]) for s in scenes] == [(round(r[0], 3), round(r[1], 3)) for r in stored]
    assert [[c["id"] for c in s["categories"]] for s in scenes] == [list(r[2]) for r in stored]
    assert [s["break_before"] for s in scenes] == [r[4] for r in stored]
    duration = probed_durations(catalog, [vid])[vid]
    assert scenes[0]["start_s"] == 0.0 and all(a["end_s"] == b["start_s"] for a, b in itertools.pairwise(scenes))
    assert duration - 1e-3 <= scenes[-1]["end_s"] <= duration + DURATION_SLACK_S

    version, thresholds_version = stored[0][5], stored[0][6]
    assert seg["visual_model_version"] == version and seg["scene_thresholds_version"] == thresholds_version
    student = get_model(catalog, "visual_model", version).categories
    rows = scene_threshold_rows(catalog, thresholds_version) if thresholds_version else []
    certified = {r[0] for r in rows if r[6] and r[1] is not None}
    _given_under_certified_thresholds(scenes, student, certified)
    _breaks_where_categories_change(seg)
    for s, r in zip(scenes, stored, strict=True):
        # The best of the stored score vector over the student's categories, as classify gives it.
        if r[3] is None:
            assert s["top"] is None
            continue
        best = max(range(len(student)), key=lambda j: -math.inf if r[3][j] is None else r[3][j])
        assert s["top"] == {"id": student[best], "score": round(r[3][best], 4), "certified": student[best] in certified}

    assert main(["explain", vid]) == 0
    text = capsys.readouterr().out
    assert "scenes (" in text and "suggested mid-roll breaks:" in text
    for s in scenes:
        assert f"{s['start_s']:7.1f} - {s['end_s']:7.1f} s" in text

    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    record = latest_model(catalog, "scene_thresholds")
    assert status["models"]["scene_thresholds"].startswith(f"{record.version}: ")
    assert "categories certified on" in status["models"]["scene_thresholds"]
    current = latest_model(catalog, "visual_model").categories
    for gap in status["scene_certification_gaps"]:
        assert gap["category_id"] in current and gap["gold_scenes"] > 0 and gap["reason"]
