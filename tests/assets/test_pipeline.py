"""Every asset through `dagster.materialize` on a small demo catalog: rows, states, checks, idempotence."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from ml.catalog.store import Catalog

pytestmark = pytest.mark.slow


def _catalog(p) -> Catalog:
    return Catalog(p.data_root / "catalog.duckdb")


def test_every_video_ends_classified_or_failed(pipeline):
    c = _catalog(pipeline)
    counts = c.table_counts()
    videos = counts["videos"]
    assert videos == 180 + 4  # 150 demo videos + 4 bad uploads (the duplicate is refused)
    assert counts["video_probe"] == 180
    assert counts["text_predictions"] == videos
    assert counts["pseudo_labels"] > 0 and counts["visual_predictions"] == 180
    assert counts["thresholds"] > 0 and counts["predictions"] > 0
    lost = c.query(
        "SELECT video_id FROM videos WHERE video_id NOT IN "
        "(SELECT video_id FROM video_results WHERE status = 'classified') "
        "AND video_id NOT IN (SELECT video_id FROM failures)"
    )
    assert lost == []
    failed = dict(c.query("SELECT video_id, error_class FROM failures WHERE stage = 'probe'"))
    # Unplayable files are never served, whatever their titles say.
    assert {r[0] for r in c.query("SELECT video_id FROM video_results WHERE status = 'failed'")} == set(failed)
    assert failed == {
        "bad-truncated": "CorruptFile",
        "bad-empty": "EmptyFile",
        "bad-audio-only": "NoVideoStream",
        "bad-not-a-video": "CorruptFile",
    }
    # Ad serving's view: one classification per video, provenance recorded.
    sources = {r[0] for r in c.query("SELECT DISTINCT source FROM current_predictions")}
    assert sources <= {"text", "visual", "both", "fused", "backoff"} and sources
    assert c.scalar("SELECT count(*) FROM current_predictions") == c.scalar("SELECT count(*) FROM predictions")


def test_models_are_registered_with_versions_and_metrics(pipeline):
    c = _catalog(pipeline)
    models = dict(c.query("SELECT model_name, count(*) FROM model_registry GROUP BY 1"))
    assert models == {"text_model": 1, "visual_model": 1, "fusion": 1, "scene_thresholds": 1}
    versions = c.query("SELECT DISTINCT text_model_version, visual_model_version, thresholds_version FROM predictions")
    assert len(versions) == 1
    (mat,) = pipeline.results[("visual_model", None)].asset_materializations_for_node("visual_model")
    assert mat.metadata["parameters"].value > 1_000_000
    assert "data:image/png;base64," in mat.metadata["training_curve"].value
    (mat,) = pipeline.results[("category_thresholds", None)].asset_materializations_for_node("category_thresholds")
    table = mat.metadata["comparison_held_out_gold"].value
    for rule in ("text", "visual", "union", "max", "stacked"):
        assert f"| {rule} |" in table
    assert "data:image/png;base64," in mat.metadata["precision_coverage"].value


def test_blocking_checks_ran_and_passed(pipeline):
    for asset, check in [
        ("frame_embeddings", "embedding_expectations"),
        ("video_probe", "probe_expectations"),
        ("fused_predictions", "prediction_expectations"),
        ("segment_predictions", "scene_tiling_expectations"),
    ]:
        stage = "video_probe" if asset in ("video_probe", "frame_embeddings") else "fused_predictions"
        result = pipeline.results[(stage, pipeline.batches[0])]
        evaluations = [e for e in result.get_asset_check_evaluations() if e.check_name == check]
        assert evaluations and all(e.passed for e in evaluations), (asset, check)


def test_drift_report_written_and_linked(pipeline):
    result = pipeline.results[("fused_predictions", pipeline.batches[0])]
    (mat,) = result.asset_materializations_for_node("drift_report")
    html = mat.metadata["report_path"].value
    assert html.endswith(".html") and (pipeline.data_root / "reports" / "drift").is_dir()
    assert mat.metadata["features"].value > 10
    # The share is the drifted features over the features compared, as the batch's JSON summary records it.
    summary = json.loads(Path(mat.metadata["summary_json"].value).read_text())
    assert (summary["n_drifted"], summary["n_columns"]) == (
        mat.metadata["drifted_features"].value,
        mat.metadata["features"].value,
    )
    assert mat.metadata["share_drifted"].value == pytest.approx(summary["n_drifted"] / summary["n_columns"], abs=1e-4)
    assert mat.metadata["most_drifted"].value == (", ".join(summary["drifted_columns"][:5]) or "none")
    (check,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "drift_below_warn_share"]
    assert check.passed == (summary["share_drifted"] < summary["warn_share"])


def test_rerunning_a_batch_replaces_rows(pipeline):
    from assets.core.resources import VidcatResource
    from orchestration.definitions import all_assets, all_checks
    from tests.pipeline import SCORING_ASSETS, patched_env

    c = _catalog(pipeline)
    batch = pipeline.batches[0]
    before = {
        t: c.scalar(f"SELECT count(*) FROM {t} WHERE batch_id = ?", [batch])
        for t in (
            "video_probe",
            "text_predictions",
            "pseudo_labels",
            "visual_predictions",
            "predictions",
            "video_results",
            "segment_predictions",
        )
    }
    with patched_env(pipeline.env):
        result = dg.materialize(
            [*all_assets, *all_checks],
            selection=[dg.AssetKey(n) for n in SCORING_ASSETS],
            partition_key=batch,
            instance=dg.DagsterInstance.get(),
            resources={"vidcat": VidcatResource()},
        )
    assert result.success
    after = {t: c.scalar(f"SELECT count(*) FROM {t} WHERE batch_id = ?", [batch]) for t in before}
    assert after == before


def test_out_of_distribution_share_is_recorded_checked_and_explained(pipeline):
    """The student's detector flags a few videos; each run reports the share, and video_results says why."""
    from ml.catalog.holdout import held_out_ids
    from ml.visual.ood import load_detector
    from tests.pipeline import in_distribution_flag_limit

    c = _catalog(pipeline)
    (model_dir,) = c.query("SELECT artifact_path FROM model_registry WHERE model_name = 'visual_model'")[0]
    detector = load_detector(Path(model_dir))
    rows = c.query("SELECT video_id, ood_score, out_of_distribution FROM visual_predictions")
    assert len(rows) == 180 and all(score is not None for _, score, _ in rows)
    # Flagged means above the detector's calibrated threshold, nothing else.
    assert [v for v, _, out in rows if out] == [v for v, score, _ in rows if score > detector.threshold]
    flagged = {v for v, _, out in rows if out}
    # Gold and locked-test videos are like the training data and never in the detector's reference or
    # calibration: it flags them no more often than its calibration allows.
    held = [v for v, _, _ in rows if v in held_out_ids(c)]
    assert len(held) == 66 and not set(held) & set(detector.reference_ids)
    assert len(flagged & set(held)) <= in_distribution_flag_limit(detector.calibration, len(held))
    why = dict(c.query("SELECT video_id, visual_abstained FROM video_results WHERE visual_abstained IS NOT NULL"))
    assert {v for v, r in why.items() if r == "out_of_distribution"} == flagged
    assert {v for v, r in why.items() if r == "no_frames"} == {
        "bad-truncated",
        "bad-empty",
        "bad-audio-only",
        "bad-not-a-video",
    }
    no_text = {r[0] for r in c.query("SELECT video_id FROM video_results WHERE text_abstained = 'no_usable_text'")}
    assert no_text and no_text == {
        r[0] for r in c.query("SELECT video_id FROM text_predictions WHERE NOT has_text")
    } & {r[0] for r in c.query("SELECT video_id FROM video_results")}
    total = 0
    for batch in pipeline.batches:
        result = pipeline.results[("fused_predictions", batch)]
        (mat,) = result.asset_materializations_for_node("fused_predictions")
        share = mat.metadata["out_of_distribution_share"].value
        total += mat.metadata["out_of_distribution"].value
        # The batch's flagged videos over those it scored (none scored, as in a batch of unplayable files: 0).
        scored = {r[0] for r in c.query("SELECT video_id FROM visual_predictions WHERE batch_id = ?", [batch])}
        assert mat.metadata["out_of_distribution"].value == len(flagged & scored)
        assert share == pytest.approx(len(flagged & scored) / max(len(scored), 1), abs=1e-4)
        (check,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "out_of_distribution_share"]
        assert check.passed == (share <= 0.10) and check.severity == dg.AssetCheckSeverity.WARN
        (drift,) = result.asset_materializations_for_node("drift_report")
        assert drift.metadata["out_of_distribution_share"].value == pytest.approx(share, abs=1e-4)
    assert total == len(flagged)


def test_rule_choice_is_checked_per_category(pipeline):
    """The check says what the held-out gold folds say of the chosen rule, naming each failing category."""
    from ml.fusion.rules import choose_rule

    c = _catalog(pipeline)
    ((params, metrics),) = c.query("SELECT params, metrics FROM model_registry WHERE model_name = 'fusion'")
    params, metrics = json.loads(params), json.loads(metrics)
    assert params["requested_rule"] == "auto"
    assert params["rule"] == choose_rule(metrics["comparison"], metrics["promise"]).rule
    chosen = metrics["comparison"][params["rule"]]
    failing = [f["category_id"] for f in chosen["failing_categories"]]
    holds = not failing and chosen["precision"] >= metrics["promise"]
    assert metrics["choice"]["holds"] == holds
    assert [f["category_id"] for f in metrics["choice"]["failing"]] == failing
    result = pipeline.results[("category_thresholds", None)]
    (check,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "rule_holds_promise"]
    assert check.passed == holds and check.severity == dg.AssetCheckSeverity.WARN
    table = check.metadata["failing_categories"].value
    named = [line.split("|")[1].strip() for line in table.splitlines()[2:]] if table != "none" else []
    assert named == failing
