"""Review sheets of pseudo-labelled videos, for a person to confirm or reject the teacher's labels.

The answers go back with `vidcat import-gold` (the `verdict` column: yes or no), which is how the
gold set grows where the teacher is least trusted. Each sampled video also shows the scenes the
scene stage found (`detected_scenes`: time ranges with their categories, from `current_segments`), so
the editor can verify where each category is: the `scenes` column takes the verified ranges as
``start-end=category`` entries separated by ``;`` (ml/catalog/gold_scenes.py), on which scene
thresholds are certified. Left empty, only the verdict is imported. Only videos that can become gold are sampled: a
video with editor labels trains the models, so it can never certify them (ml/catalog/holdout.py).
"""

from __future__ import annotations

import csv
import html
import random
from pathlib import Path
from typing import Any

from ml.catalog.labels import review_candidates
from ml.catalog.model_registry import latest_model
from ml.catalog.segments import current_segments
from ml.catalog.store import Catalog
from ml.errors import InvalidInput, MissingPrerequisite
from ml.taxonomy import WorkingSet

COLUMNS = (
    "video_id",
    "category_id",
    "category",
    "teacher_score",
    "title",
    "description",
    "verdict",
    "detected_scenes",
    "scenes",
    "notes",
)


def spot_check(
    catalog: Catalog, settings, ws: WorkingSet, category: str, n: int, out_dir: Path, seed: int = 0, thumbnails: int = 3
) -> dict[str, Any]:
    from ml.frames.embedding_store import read_video, shard_path
    from ml.frames.thumbnails import evenly_spaced, jpeg_data_uri, sample_for_review

    if category not in ws.taxonomy:
        raise InvalidInput(f"{category!r} is not an IAB Content Taxonomy 3.1 id")
    teacher = latest_model(catalog, "text_model")
    rows = review_candidates(catalog, teacher.version, category)
    if not rows:
        raise MissingPrerequisite(f"no positive pseudo-label for category {category} from teacher {teacher.version}")
    picked = random.Random(seed).sample(rows, k=min(n, len(rows)))
    j = teacher.categories.index(category) if category in teacher.categories else None
    name = ws.taxonomy[category].full_name
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"spot-check-{category}-{teacher.version}"
    csv_path, html_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.html"
    scenes = current_segments(catalog, [r[0] for r in picked])
    records = []
    for vid, scores, title, desc, uri, batch in picked:
        score = None if scores is None or j is None else round(float(scores[j]), 4)
        records.append(
            {
                "video_id": vid,
                "category_id": category,
                "category": name,
                "teacher_score": score,
                "title": title or "",
                "description": (desc or "")[:300],
                "verdict": "",
                "detected_scenes": detected_scenes(scenes.get(vid, [])),
                "scenes": "",
                "notes": "",
                "_uri": uri,
                "_batch": batch,
            }
        )
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(records)
    e = html.escape
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>{e(stem)}</title>",
        "<style>body{font:14px sans-serif;margin:2em}.v{border-bottom:1px solid #ccc;padding:8px}</style>",
        f"<h1>Spot check: {e(category)} {e(name)}</h1><p>teacher {e(teacher.version)}; answer yes/no in the "
        f"<code>verdict</code> column of {e(csv_path.name)}, then <code>vidcat import-gold {e(csv_path.name)}"
        "</code></p><p>Where is each category? Correct the detected scenes and write them in the <code>scenes"
        "</code> column as <code>start-end=category</code> entries separated by <code>;</code> (seconds; one "
        "entry per category on screen; ranges may overlap).</p>",
    ]
    with_frames = 0
    for r in records:
        imgs = ""
        shard = shard_path(settings.embeddings_dir, settings.image_encoder, r["_batch"])
        has_embeddings = shard.exists() and read_video(shard, r["video_id"], dequantized=False) is not None
        if thumbnails and has_embeddings:
            sampled = sample_for_review(r["_uri"], settings)
            if sampled is not None:
                with_frames += 1
                ts, frames = sampled
                imgs = "".join(
                    f"<img title='t={ts[i]:.0f}s' src='{jpeg_data_uri(frames[i], 120)}'>"
                    for i in evenly_spaced(len(frames), thumbnails)
                )
        found = r["detected_scenes"] or "not segmented yet"
        parts.append(
            f"<div class=v><b>{e(r['video_id'])}</b> (teacher {r['teacher_score']})<br>"
            f"<i>{e(r['title'])}</i><br>{e(r['description'])}<br>{imgs}<br>detected scenes: "
            f"<code>{e(found)}</code></div>"
        )
    html_path.write_text("\n".join(parts), encoding="utf-8")
    return {
        "category": category,
        "videos": len(records),
        "with_scenes": sum(bool(r["detected_scenes"]) for r in records),
        "available": len(rows),
        "with_thumbnails": with_frames,
        "csv": str(csv_path),
        "html": str(html_path),
    }


def detected_scenes(scenes: list[dict[str, Any]]) -> str:
    """The stored scenes in the ``scenes`` column's syntax, one entry per category given (``?`` for a scene
    given none): what the editor corrects and copies."""
    return "; ".join(
        f"{round(s['start_s'], 1):g}-{round(s['end_s'], 1):g}={c}" for s in scenes for c in s["categories"] or ["?"]
    )
