"""Two batch runs at once against one catalog: no lock failure, no lost or duplicated rows."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from ml.catalog.store import Catalog
from tests.pipeline import SCORING_ASSETS

pytestmark = pytest.mark.slow


def _run_batch(env: dict[str, str], batch_id: str, queue) -> None:
    import os

    os.environ.update(env)
    import dagster as dg

    from assets.core.resources import VidcatResource
    from orchestration.definitions import all_assets, all_checks

    result = dg.materialize(
        [*all_assets, *all_checks],
        selection=[dg.AssetKey(s) for s in SCORING_ASSETS],
        partition_key=batch_id,
        instance=dg.DagsterInstance.get(),
        resources={"vidcat": VidcatResource()},
        raise_on_error=False,
    )
    queue.put((batch_id, result.success))


def test_two_batch_runs_at_once(pipeline):
    catalog = Catalog(pipeline.data_root / "catalog.duckdb")
    batches = pipeline.batches[:2]
    tables = ("video_probe", "text_predictions", "visual_predictions", "predictions", "video_results", "failures")
    before = {t: catalog.scalar(f"SELECT count(*) FROM {t}") for t in tables}
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_run_batch, args=(pipeline.env, b, queue)) for b in batches]
    for p in procs:
        p.start()
    for p in procs:
        p.join(600)
        assert p.exitcode == 0
    outcomes = dict(queue.get(timeout=5) for _ in procs)
    assert outcomes == {b: True for b in batches}
    after = {t: catalog.scalar(f"SELECT count(*) FROM {t}") for t in tables}
    assert after == before
