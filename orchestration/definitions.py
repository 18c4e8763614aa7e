"""The Dagster code location: every asset in `assets/`, the batch job, the upload sensor."""

from __future__ import annotations

import dagster as dg

import assets
from assets.core.partitions import video_batches
from assets.core.resources import VidcatResource
from ml.config import load_settings
from orchestration.sensors import SCORE_JOB_NAME, build_upload_sensor

all_assets = dg.load_assets_from_package_module(assets)
all_checks = dg.load_asset_checks_from_package_module(assets)

# Everything that runs per batch: what a new upload goes through. Models are unpartitioned and are
# not in it, so a sensor run scores with the current models and never retrains them.
BATCH_ASSET_KEYS = [
    key
    for a in all_assets
    if isinstance(a, dg.AssetsDefinition) and a.partitions_def == video_batches
    for key in a.keys
]
# In-process, as every run: a new upload's run pays one process start and loads each model once, where
# the multiprocess executor would start a process (imports, model load) per step (docs/architecture.md).
score_batch_job = dg.define_asset_job(
    SCORE_JOB_NAME,
    selection=dg.AssetSelection.assets(*BATCH_ASSET_KEYS),
    partitions_def=video_batches,
    executor_def=dg.in_process_executor,
    description="Probe, embed, predict and fuse one batch with the current models (the upload path).",
)

defs = dg.Definitions(
    assets=all_assets,
    asset_checks=all_checks,
    jobs=[score_batch_job],
    sensors=[build_upload_sensor(score_batch_job, load_settings().sensor_interval_s)],
    resources={"vidcat": VidcatResource()},
    # Backfill runs too: a process per step paid imports (torch, onnxruntime, Great Expectations,
    # Evidently) and model loads eleven times a run, 0.32 of the floor's throughput end to end; the heavy
    # steps use both cores on their own (decode workers + encoder, e5, training), so running two steps
    # at once bought nothing (bench/end_to_end.py, docs/benchmarks.md).
    executor=dg.in_process_executor,
)
