"""One video, end to end, through the same pieces the batch stages use.

Probe (`ml.frames.probe`), frames and embeddings (`ml.frames.sampler` in a worker under the time limit, the ONNX
encoder, the same 8-bit round trip as the shards), the text teacher (`ml.text.model.predict_records`),
the visual student (`VisualPredictor`), and the current fusion model's thresholds and rule
(`FusionModel.decide`). Nothing is written to the catalog: this is how a person or a service asks
"what would vidcat say about this file" and how a single upload is explained. With ``segments`` the
same embeddings also go through the scene stage (`ml.segments.stage.segment_video`: boundaries, the
student per scene, the scene thresholds certified for that student, suggested mid-roll breaks).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.catalog.store import Catalog
from ml.fusion.stage import LoadedFusion, category_levels, load_current_fusion, said_categories
from ml.taxonomy import WorkingSet


@dataclass
class Models:
    """The models of one fusion version, loaded once (a service keeps this object warm)."""

    fusion: LoadedFusion
    teacher: Any
    student: Any
    encoder: Any


def load_models(catalog: Catalog, settings) -> Models:
    from ml.frames.image_encoder import encoder_from_settings
    from ml.text.stage import load_teacher
    from ml.visual.stage import load_predictor

    fusion = load_current_fusion(catalog)
    return Models(
        fusion,
        load_teacher(str(fusion.text_record.artifact_path)),
        load_predictor(str(fusion.visual_record.artifact_path)) if fusion.visual_record is not None else None,
        encoder_from_settings(settings),
    )


def _round(x: float | None, nd: int = 4) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), nd)


def classify_file(
    path: str | Path,
    settings,
    catalog: Catalog,
    ws: WorkingSet,
    *,
    title: str | None = None,
    description: str | None = None,
    tags: str | None = None,
    language: str | None = None,
    models: Models | None = None,
    uploaded_at: Any = None,
    segments: bool = False,
) -> dict[str, Any]:
    """Categories for one file with provenance, scores, thresholds and model versions (JSON-ready).

    ``segments``: also its scenes with time ranges, categories and suggested ad breaks (``"segments"``).
    """
    from ml.frames.embedding_store import VideoEmbeddings, dequantize, quantize
    from ml.frames.probe import VideoError, probe
    from ml.frames.sampler import FrameSamplingError, SampleOptions, SamplerPool
    from ml.text.model import predict_records

    started = time.monotonic()
    models = models or load_models(catalog, settings)
    fusion = models.fusion
    cats = fusion.categories
    out: dict[str, Any] = {
        "path": str(path),
        "fusion_version": fusion.version,
        "rule": fusion.model.rule,
        "text_model_version": fusion.text_version,
        "visual_model_version": fusion.visual_version,
    }
    timings: dict[str, float] = {}

    t0 = time.monotonic()
    try:
        out["probe"] = probe(path, timeout_s=settings.decode_timeout_s, max_pixels=settings.max_pixels).as_dict()
    except VideoError as exc:
        out["probe"] = {"error": type(exc).__name__, "message": str(exc)}
    timings["probe_s"] = time.monotonic() - t0

    visual = np.full(len(cats), np.nan)
    visual_raw = np.full(len(cats), np.nan)  # the student's scores, before any abstention
    if "error" not in out["probe"] and models.student is not None:
        t0 = time.monotonic()
        with SamplerPool(SampleOptions.from_settings(settings), workers=1) as pool:
            _, sampled = next(pool.imap([(0, str(path))]))
        timings["decode_s"] = time.monotonic() - t0
        if isinstance(sampled, FrameSamplingError):
            out["frames"] = {"error": type(sampled).__name__, "message": str(sampled)}
        else:
            t0 = time.monotonic()
            emb = dequantize(quantize(models.encoder.encode(sampled.frames)))  # the shards' 8-bit round trip
            timings["encode_s"] = time.monotonic() - t0
            out["frames"] = {"n_frames": len(sampled), "timestamps": [round(float(t), 2) for t in sampled.timestamps]}
            t0 = time.monotonic()
            meta = _meta(out["probe"], language, uploaded_at)
            (score,) = list(
                models.student.predict([VideoEmbeddings("query", sampled.timestamps, emb)], {"query": meta})
            )
            index = {c: j for j, c in enumerate(models.student.categories)}
            for j, c in enumerate(cats):
                if c in index:
                    visual[j] = float(score.scores[index[c]])
            ood = models.student.ood
            out["out_of_distribution"] = {
                "score": _round(score.ood_score),
                "threshold": None if ood is None else _round(ood.threshold),
                "flagged": bool(score.out_of_distribution),
                "decision": "the visual source abstains: these frames are unlike anything the student learnt from"
                if score.out_of_distribution
                else "the visual source judges the video",
            }
            visual_raw[:] = visual
            if segments:
                out["segments"] = _segments(
                    catalog,
                    models.student,
                    sampled.timestamps,
                    emb,
                    out["probe"].get("duration_s"),
                    meta,
                    bool(score.out_of_distribution),
                    settings.fps,
                )
            if score.out_of_distribution:
                visual[:] = np.nan  # the same abstention as the batch path (ml.fusion.score_matrix.visual_scores)
            timings["visual_s"] = time.monotonic() - t0

    t0 = time.monotonic()
    (pred,) = predict_records(
        models.teacher, [{"title": title, "description": description, "tags": tags, "language": language}]
    )
    text = np.full(len(cats), np.nan)
    if pred.scores is not None:
        index = {c: j for j, c in enumerate(models.teacher.categories)}
        for j, c in enumerate(cats):
            if c in index:
                text[j] = float(pred.scores[index[c]])
    timings["text_s"] = time.monotonic() - t0
    out["text"] = {"has_text": pred.has_text, "language": pred.language, "chars": pred.text_chars}
    out["abstained"] = {
        "text": None if pred.scores is not None else "no_usable_text",
        "visual": None
        if np.isfinite(visual).any()
        else ("out_of_distribution" if out.get("out_of_distribution", {}).get("flagged") else "no_frames"),
    }

    d = fusion.model.decide(text[None, :], visual[None, :], np.array([float(pred.text_chars)]))
    v_cal = fusion.model.calibrate_visual(visual[None, :])
    levels = category_levels(fusion)
    categories = [
        {
            "id": c.category_id,
            "name": c.path,
            "tier": c.tier,
            "score": _round(c.score),
            "source": c.source,
            "text_score": _round(c.text_score),
            "text_threshold": _round(c.text_threshold),
            "visual_score": _round(c.visual_score),
            "visual_threshold": _round(c.visual_threshold),
            **({"backoff_threshold": _round(c.backoff_threshold)} if c.source == "backoff" else {}),
        }
        for c in said_categories(fusion.model, cats, levels, d, text[None, :], v_cal, 0)
    ]
    out["categories"] = categories
    # Every score behind the decision, per category (NaN: the source did not judge it): what a service
    # logs, and what the test comparing this path with the batch stages reads.
    out["source_scores"] = {
        "text": {c: _round(text[j], 6) for j, c in enumerate(cats)},
        "visual": {c: _round(visual_raw[j], 6) for j, c in enumerate(cats)},
    }
    if segments and "segments" not in out:
        out["segments"] = {"scenes": [], "breaks": [], "error": "no frames: the file's scenes cannot be found"}
    out["timings_s"] = {k: round(v, 3) for k, v in timings.items()} | {"total_s": round(time.monotonic() - started, 3)}
    return out


def _segments(
    catalog: Catalog,
    student: Any,
    timestamps: np.ndarray,
    emb: np.ndarray,
    duration_s: float | None,
    meta: np.ndarray,
    out_of_distribution: bool,
    fps: float,
) -> dict[str, Any]:
    """The file's scenes as the `segment_predictions` asset would store them (the batch path's function)."""
    from ml.segments.certification import NO_THRESHOLD, current_scene_thresholds
    from ml.segments.stage import segment_video

    t0 = time.monotonic()
    thresholds = current_scene_thresholds(catalog, student.version)
    seg = segment_video(
        student,
        timestamps,
        emb,
        duration_s,
        meta,
        thresholds,
        out_of_distribution=out_of_distribution,
        fps=fps,
    )
    return {
        "scene_thresholds_version": thresholds.version if thresholds else None,
        "certified_categories": len(thresholds.certified) if thresholds else 0,
        "note": None if thresholds and thresholds.certified else NO_THRESHOLD,
        "scenes": seg.as_dicts(),
        "breaks": seg.breaks,
        "seconds": round(time.monotonic() - t0, 3),
    }


def _threshold(t) -> float | None:
    return _round(t.threshold) if t.enabled else None


def _meta(probe: dict[str, Any], language: str | None, uploaded_at: Any = None) -> np.ndarray:
    """The student's metadata vector; the upload time of a file classified now is now (training never saw a
    missing upload time: every registered video has one)."""
    import datetime as dt

    from ml.visual.meta import meta_vector

    return meta_vector(
        {
            "language": language,
            "uploaded_at": uploaded_at or dt.datetime.now(dt.UTC).replace(tzinfo=None),
            **{k: probe.get(k) for k in ("duration_s", "fps", "width", "height", "rotation", "has_audio")},
        }
    )
