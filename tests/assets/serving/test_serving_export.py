"""`serving_export` through `dagster.materialize` on the session's trained catalog, with a real PostgreSQL."""

from __future__ import annotations

import dagster as dg
import pytest

from tests.pipeline import patched_env

pytestmark = pytest.mark.slow


def _materialize(pipeline, batch: str):
    from assets.core.resources import VidcatResource
    from orchestration.definitions import all_assets, all_checks

    return dg.materialize(
        [*all_assets, *all_checks],
        selection=[dg.AssetKey("serving_export")],
        partition_key=batch,
        instance=dg.DagsterInstance.get(),
        resources={"vidcat": VidcatResource()},
    )


def test_serving_export_is_off_without_a_database_and_exports_with_one(pipeline, serving_dsn, capsys):
    from ml.catalog.store import Catalog
    from ml.serving.export import connect, read_video
    from orchestration.cli import main

    batch = pipeline.batches[0]
    with patched_env(pipeline.env):
        off = _materialize(pipeline, batch)
    assert off.success
    (mat,) = off.asset_materializations_for_node("serving_export")
    assert mat.metadata["status"].value.startswith("off: no serving database configured")
    with patched_env({**pipeline.env, "VIDCAT_SERVING_DSN": serving_dsn}):
        on = _materialize(pipeline, batch)
        again = _materialize(pipeline, batch)
        capsys.readouterr()
        catalog = Catalog(pipeline.data_root / "catalog.duckdb")
        vid = catalog.query(
            "SELECT m.video_id FROM batch_members m JOIN video_results r USING (video_id) "
            "WHERE m.batch_id = ? AND r.status = 'classified' AND r.n_categories > 0 ORDER BY 1 LIMIT 1",
            [batch],
        )[0][0]
        assert main(["serve-check", vid, "--json"]) == 0
    (mat,) = on.asset_materializations_for_node("serving_export")
    assert mat.metadata["status"].value == "exported" and mat.metadata["updated"].value > 0
    (mat2,) = again.asset_materializations_for_node("serving_export")
    assert mat2.metadata["videos"].value == mat.metadata["videos"].value
    import json

    served = json.loads(capsys.readouterr().out)
    stored = {r[0] for r in catalog.query("SELECT category_id FROM current_predictions WHERE video_id = ?", [vid])}
    assert {c["category_id"] for c in served["categories"]} == stored
    # Its scenes went with its categories: the current segmentation, time ranges and categories.
    scenes = catalog.query(
        "SELECT start_s, end_s, categories FROM current_segments WHERE video_id = ? ORDER BY scene_index", [vid]
    )
    assert scenes and [(s["start_s"], s["end_s"], s["categories"]) for s in served["segments"]] == [
        (pytest.approx(a, abs=1e-4), pytest.approx(b, abs=1e-4), list(c)) for a, b, c in scenes
    ]
    assert mat.metadata["segments_written"].value > 0
    with connect(serving_dsn) as conn:
        assert read_video(conn, vid)["model_version"] == served["model_version"]
        failed = [r[0] for r in catalog.query("SELECT video_id FROM video_results WHERE status = 'failed'")]
        assert all(read_video(conn, v) is None for v in failed)
