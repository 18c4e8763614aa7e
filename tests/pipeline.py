"""A small demo catalog taken through every asset with `dagster.materialize`, shared by the slow tests.

Real files, real encoders, real models (small settings so they train in seconds); each stage is
materialized in dependency order on a persistent instance under the data root, as a backfill would.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ml.demo.catalog import SMALL_CATALOG_SETTINGS

# What scoring one batch materializes, in order: the per-batch assets but the report and the export.
SCORING_ASSETS = (
    "video_probe",
    "frame_embeddings",
    "text_predictions",
    "pseudo_labels",
    "visual_predictions",
    "fused_predictions",
    "segment_predictions",
)

STAGES: list[tuple[str, ...]] = [
    ("video_registry",),
    ("text_model",),
    ("video_probe", "frame_embeddings", "text_predictions", "pseudo_labels"),
    ("visual_model",),
    ("visual_predictions",),
    ("category_thresholds",),
    ("scene_thresholds",),
    ("fused_predictions", "drift_report", "segment_predictions"),
]


@dataclass
class Pipeline:
    root: Path
    env: dict[str, str]
    batches: list[str]
    results: dict[tuple[str, str | None], object] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def data_root(self) -> Path:
        return Path(self.env["VIDCAT_HOME"])


@contextlib.contextmanager
def patched_env(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def pipeline_env(root: Path, extra_roots: list[Path], overrides: dict[str, object] | None = None) -> dict[str, str]:
    config = root / "vidcat.toml"
    lines = {line.split("=")[0].strip(): line for line in SMALL_CATALOG_SETTINGS.strip().splitlines()}
    for key, value in (overrides or {}).items():
        lines[key] = f"{key} = {value!r}" if not isinstance(value, bool) else f"{key} = {str(value).lower()}"
    config.write_text(f'data_root = "{root / "vidcat"}"\n' + "\n".join(lines.values()) + "\n")
    media = [root / "vidcat" / "media", root / "vidcat" / "inbox", *extra_roots]
    return {
        "VIDCAT_HOME": str(root / "vidcat"),
        "VIDCAT_CONFIG": str(config),
        "VIDCAT_MEDIA_ROOTS": os.pathsep.join(str(p) for p in media),
        "DAGSTER_HOME": str(root / "vidcat" / "dagster_home"),
    }


def verified_with_scenes(rows: list[tuple[int, dict]], summary: dict) -> list[tuple[int, dict]]:
    """Gold answers, each with its video's timeline as verified scene ranges.

    The demo's label files carry no scene ranges; here the test plays the editor who also verified
    where each category is, so scene thresholds are certified on the pipeline's own catalog.
    """
    truth = Path(summary["ground_truth"]).read_text(encoding="utf-8").splitlines()
    timelines = {r["video_id"]: r["segments"] for r in map(json.loads, truth) if "segments" in r}
    return [
        (n, {**row, "scenes": [{"start_s": a, "end_s": b, "category": c} for a, b, c in timelines[row["video_id"]]]})
        for n, row in rows
    ]


def build(
    root: Path, videos: int, seed: int, extra_roots: list[Path], overrides: dict[str, object] | None = None
) -> Pipeline:
    import dagster as dg

    from assets.core.resources import VidcatResource
    from ml.catalog.batching import create_batches
    from ml.catalog.labels import import_labels, read_label_file
    from ml.catalog.registration import register_manifest
    from ml.catalog.store import open_catalog
    from ml.config import load_settings
    from ml.demo.catalog import build_demo_catalog
    from ml.demo.truth import lock_demo_test
    from ml.taxonomy import default_working_set
    from orchestration.definitions import all_assets, all_checks

    env = pipeline_env(root, extra_roots, overrides)
    with patched_env(env):
        settings = load_settings().ensure_dirs()
        catalog = open_catalog(settings.catalog_path)
        ws = default_working_set()
        summary = build_demo_catalog(videos, seed, settings.media_dir / "demo", settings.demo_dir, editor_share=0.3)
        register_manifest(catalog, summary["manifest"], settings.allowed_roots, ws, origin="demo")
        import_labels(catalog, verified_with_scenes(read_label_file(summary["gold_file"]), summary), ws, "gold")
        lock_demo_test(catalog, settings.demo_dir)  # as `vidcat demo` does: before anything trains
        batches = [b.batch_id for b in create_batches(catalog, settings.batch_size, "backfill")]
        instance = dg.DagsterInstance.get()
        instance.add_dynamic_partitions("video_batches", batches)
        pipeline = Pipeline(root, env, batches)
        resources = {"vidcat": VidcatResource()}
        for stage in STAGES:
            started = time.monotonic()
            keys = [dg.AssetKey(n) for n in stage]
            partitioned = stage[0] in ("video_probe", "visual_predictions", "fused_predictions")
            for pk in batches if partitioned else [None]:
                result = dg.materialize(
                    [*all_assets, *all_checks], selection=keys, partition_key=pk, instance=instance, resources=resources
                )
                assert result.success, f"{stage} {pk} failed"
                pipeline.results[(stage[0], pk)] = result
            pipeline.seconds["+".join(stage)] = time.monotonic() - started
    return pipeline


def in_distribution_flag_limit(calibration: Mapping[str, float], n: int, tail: float = 1e-3) -> int:
    """The most of ``n`` new videos like the out-of-distribution detector's calibration videos that it
    flags, but with probability ``tail``.

    The threshold is the ``1 - flag_share`` quantile of ``m`` calibration scores (ml/visual/ood.py,
    interpolated between order statistics), so a new video like them scores above it with probability
    at most ``(m - floor((1 - flag_share) * (m - 1))) / (m + 1)``: the flag share for large ``m``, more
    with few calibration videos (1 in 5 of 9). The flagged count is at most binomial at that rate.
    """
    from scipy.stats import binom

    m = int(calibration["calibration_videos"])
    rate = (m - math.floor((1 - calibration["flag_share"]) * (m - 1))) / (m + 1)
    return int(binom.ppf(1 - tail, n, rate))
