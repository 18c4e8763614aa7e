"""The scene stage (ml/segments/): its CPU per video as a share of the end-to-end CPU, and its benchmark figures.

1. **Cost.** ``VIDCAT_BENCH_SEGMENT_UPLOADS`` (default 2) one-minute 720p uploads (bench/end_to_end.py's
   renders, cached under ``VIDCAT_BENCH_CACHE``) go through the end-to-end **floor** (decode + encode +
   the title's text encoding in one process, bench/end_to_end.py: the pipeline's work without any
   orchestration, so the smallest end-to-end CPU per video and the share against it the largest), and
   through the frame stage into a shard. The scene stage then does what it does in production from
   that shard: read each video's stored embeddings, detect its scenes, score them with the student
   (one ONNX call per video) and place the breaks; its process CPU is measured over
   ``VIDCAT_BENCH_SEGMENT_REPEATS`` (default 20) passes. Without a trained student under the data root
   it costs detection alone, and says so.
2. **Figures.** With a trained student under the data root (``make demo``), the table of
   ``vidcat eval-segments`` (the benchmark is rendered and embedded on the first run, about 5 minutes
   on 2 cores, and reused after); otherwise the boundary figures only, and a line saying to run
   ``make demo`` first.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_SHARE = 0.05


def _student(catalog: Any) -> Any | None:
    """The trained student, or None without one or without a fusion model: `evaluate_segments` needs both."""
    from ml.catalog.model_registry import latest_model
    from ml.visual.stage import load_predictor

    record = latest_model(catalog, "visual_model", required=False)
    fusion = latest_model(catalog, "fusion", required=False)
    return None if record is None or fusion is None else load_predictor(str(record.artifact_path))


def stage_cost(settings: Any, predictor: Any | None, n_uploads: int, repeats: int) -> dict[str, Any]:
    """End-to-end floor CPU per one-minute upload, and the scene stage's CPU per video on the same uploads."""
    from bench.end_to_end import floor, uploads
    from ml.frames.embedding_store import iter_videos
    from ml.frames.image_encoder import encoder_from_settings
    from ml.frames.stage import embed_batch
    from ml.segments.breaks import ad_breaks
    from ml.segments.detect import DEFAULT_DETECTOR, detect_scenes
    from ml.segments.score import score_scenes

    videos = uploads(n_uploads, 60.0, n_uploads)
    files = [p for p, _ in videos]
    print(f"bench: the end-to-end floor over {len(files)} one-minute 720p uploads ...", file=sys.stderr, flush=True)
    fl = floor(files, [m.get("title") or "" for _, m in videos], settings.models_dir)
    with tempfile.TemporaryDirectory(prefix="vidcat-bench-segments-") as tmp:
        local = settings.with_overrides(data_root=Path(tmp))
        encoder = encoder_from_settings(settings, beside_decoders=True)
        shard = embed_batch("bench", [(str(i), str(p)) for i, p in enumerate(files)], local, encoder=encoder).shard
        next(iter_videos(shard), None)  # pyarrow's first read is not the stage's cost
        started = time.process_time()
        scenes_found = 0
        for _ in range(repeats):
            for v in iter_videos(shard):
                scenes = detect_scenes(v.timestamps, v.embeddings, 60.0, DEFAULT_DETECTOR)
                if predictor is not None:
                    score_scenes(predictor, v.embeddings, scenes)
                ad_breaks(scenes, [set()] * len(scenes))
                scenes_found += len(scenes)
        stage_cpu = (time.process_time() - started) / (repeats * len(files))
    floor_cpu = fl["cpu_s"] / len(files)
    return {
        "uploads": len(files),
        "floor_cpu_s_per_video": round(floor_cpu, 3),
        "segment_cpu_s_per_video": round(stage_cpu, 5),
        "segment_share_of_floor": round(stage_cpu / floor_cpu, 5),
        "segment_share_target": TARGET_SHARE,
        "segment_cost_covers": "read + detect + score + breaks" if predictor is not None else "read + detect only",
        "scenes_per_upload": round(scenes_found / (repeats * len(files)), 2),
    }


def run() -> dict[str, Any]:
    from ml.catalog.store import open_catalog
    from ml.config import load_settings
    from ml.evaluation.segments import evaluate_boundaries, evaluate_segments, format_segments

    settings = load_settings().ensure_dirs()
    catalog = open_catalog(settings.catalog_path)
    predictor = _student(catalog)
    out = stage_cost(
        settings,
        predictor,
        int(os.environ.get("VIDCAT_BENCH_SEGMENT_UPLOADS", "2")),
        int(os.environ.get("VIDCAT_BENCH_SEGMENT_REPEATS", "20")),
    )

    def progress(stage: str, done: int, total: int) -> None:
        if done == total or done % 24 == 0:
            print(f"bench: segment benchmark, {stage} {done}/{total}", file=sys.stderr, flush=True)

    if predictor is None:
        print(
            f"bench: no trained student in {settings.data_root}: run make demo first "
            "(boundary figures only, no per-second categories or segment MAP)",
            file=sys.stderr,
            flush=True,
        )
        ev = evaluate_boundaries(settings, progress=progress)
    else:
        ev = evaluate_segments(settings, catalog, progress=progress)
    print(format_segments(ev), file=sys.stderr, flush=True)
    b = ev.boundaries
    out.update(
        {
            "boundary_precision": round(b["precision"], 4),
            "boundary_recall": round(b["recall"], 4),
            "boundary_f1": round(b["f1"], 4),
        }
    )
    if ev.per_second:
        ours, copied = ev.per_second["scenes"], ev.per_second["video_copied"]
        out.update(
            {
                "per_second_precision": round(ours["precision"], 4),
                "per_second_recall": round(ours["recall"], 4),
                "per_second_precision_video_copied": round(copied["precision"], 4),
                "per_second_recall_video_copied": round(copied["recall"], 4),
                "segment_map": round(ev.segment_map["map"], 4),
                "scene_categories_certified": ev.certified["count"],
            }
        )
    else:
        out["per_second"] = "no trained student: run make demo first"
    out["evaluation"] = ev.as_dict()
    return out
