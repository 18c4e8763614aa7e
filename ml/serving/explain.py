"""Why a video got (or did not get) a category: the troubleshooting view behind `vidcat explain`.

For each category: which source fired, both scores against their thresholds, the words of the text
that carried the text score (leave-one-word-out: the score drop when a word is removed), and the
frames that weighed most in the visual score (leave-one-frame-out through the exported student, so
it explains the model that actually served, whatever its architecture), with timestamps and
thumbnails. An advertiser's complaint about an irrelevant category starts here. The video's stored
scenes (`current_segments`: time ranges, their categories, suggested mid-roll breaks) come with it.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import numpy as np

from ml.catalog.model_registry import get_model
from ml.catalog.results import classified_result, video_categories, video_failures
from ml.catalog.scores import ood_rows
from ml.catalog.segments import current_segments, scene_threshold_rows
from ml.catalog.store import Catalog
from ml.catalog.videos import video_rows, video_uri
from ml.errors import UserFacingError
from ml.segments.certify import best_category
from ml.taxonomy import WorkingSet

MAX_WORDS = 60
TOP_WORDS = 6
TOP_FRAMES = 3


class NotClassified(UserFacingError, LookupError):
    """The video has no classification to explain yet."""


def _word_influence(teacher, text: str, j: int) -> list[dict[str, Any]]:
    words = re.findall(r"\S+", text)[:MAX_WORDS]
    if not words:
        return []
    variants = [" ".join(words[:i] + words[i + 1 :]) for i in range(len(words))]
    base = float(teacher.predict_proba([" ".join(words)])[0, j])
    scores = teacher.predict_proba(variants)[:, j]
    order = np.argsort(-(base - scores))[:TOP_WORDS]
    return [{"word": words[i], "drop": round(float(base - scores[i]), 4)} for i in order if base - scores[i] > 0]


def _frame_influence(student, emb: np.ndarray, meta: np.ndarray, j: int) -> tuple[float, np.ndarray]:
    n = len(emb)
    frames = np.repeat(emb[None, :, :], n + 1, axis=0).astype(np.float32)
    mask = np.ones((n + 1, n), dtype=np.float32)
    for i in range(n):
        mask[i + 1, i] = 0.0  # variant i+1 leaves frame i out
    if n == 1:
        mask[1, 0] = 1.0  # a one-frame video cannot lose its only frame; no influence to report
    scores = student.score_arrays(frames, mask, np.repeat(meta[None, :], n + 1, axis=0))[:, j]
    return float(scores[0]), scores[0] - scores[1:]


def explain_video(
    catalog: Catalog, settings, ws: WorkingSet, video_id: str, category: str | None = None, thumbnails: bool = True
) -> dict[str, Any]:
    from ml.frames.embedding_store import read_video, shard_path
    from ml.frames.thumbnails import jpeg_data_uri, sample_for_review
    from ml.fusion.stage import load_current_fusion, served_policy
    from ml.text.features import prepare_records
    from ml.text.stage import load_teacher
    from ml.visual.stage import load_meta, load_predictor

    rows = video_rows(catalog, [video_id])
    if not rows:
        raise KeyError(f"video {video_id!r} is not registered")
    video = rows[0]
    fusion = load_current_fusion(catalog)
    result = classified_result(catalog, video_id, fusion.version)
    if result is None:
        failures = video_failures(catalog, video_id)
        detail = "; ".join(f"{s}: {e}: {m}" for s, e, m in failures) or "its batch has not been fused yet"
        raise NotClassified(f"video {video_id} has no classification by fusion {fusion.version} ({detail})")
    batch_id = result[0]
    preds = video_categories(catalog, video_id, fusion.version)
    wanted = [category] if category else sorted(preds, key=lambda c: -preds[c][1])
    if category and category not in fusion.categories:
        raise KeyError(f"category {category!r} is not covered by fusion {fusion.version}: neither model predicts it")

    teacher = load_teacher(str(fusion.text_record.artifact_path))
    student = load_predictor(str(fusion.visual_record.artifact_path)) if fusion.visual_record is not None else None
    (prepared,) = prepare_records([video], max_chars=teacher.max_chars)
    shard = shard_path(settings.embeddings_dir, settings.image_encoder, batch_id)
    stored = read_video(shard, video_id) if shard.exists() else None
    meta = load_meta(catalog, [video_id]).get(video_id, student.default_meta) if student else None
    uri = video_uri(catalog, video_id)
    review = sample_for_review(uri, settings) if thumbnails and stored is not None else None

    out: dict[str, Any] = {
        "video_id": video_id,
        "title": video["title"],
        "description": video["description"],
        "language": video["language"],
        "batch_id": batch_id,
        "fusion_version": fusion.version,
        "rule": fusion.model.rule,
        "text_model_version": fusion.text_version,
        "visual_model_version": fusion.visual_version,
        "text_used": prepared.text if prepared.has_text else None,
        "frames": None if stored is None else len(stored.timestamps),
        "abstained": {"text": result[5], "visual": result[6]},
        "out_of_distribution": _ood(catalog, fusion.visual_version, video_id, student) if student else None,
        "categories": [],
        # The promise its thresholds were certified under, not today's settings.
        "promise": served_policy(catalog, settings, fusion).promise(),
        "segments": _segments(catalog, video_id),
    }
    t_index = {c: j for j, c in enumerate(teacher.categories)}
    v_index = {c: j for j, c in enumerate(student.categories)} if student else {}
    f_index = {c: j for j, c in enumerate(fusion.categories)}
    for c in wanted:
        j = f_index[c]
        p = preds.get(c)
        entry: dict[str, Any] = {
            "id": c,
            "name": ws.by_id(c).full_name if c in ws else c,
            "emitted": p is not None,
            "source": p[2] if p else None,
            "score": None if not p else round(float(p[1]), 4),
            "text_threshold": _thr(fusion.model.text_thresholds[j]),
            "visual_threshold": _thr(fusion.model.visual_thresholds[j]),
            "text_certified": _certified(fusion.model.text_thresholds[j]),
            "visual_certified": _certified(fusion.model.visual_thresholds[j]),
            "tier": p[7] if p and p[7] is not None else (ws.by_id(c).tier if c in ws else None),
        }
        backoff = fusion.model.backoff
        if backoff is not None and c in backoff.tree.nodes:
            k = backoff.tree.nodes.index(c)
            entry["backoff_threshold"] = _thr(backoff.thresholds[k])
            entry["backoff_certified"] = _certified(backoff.thresholds[k])
            entry["backoff_over"] = [backoff.tree.paths[m] for m in backoff.tree.subtree[k] if m != j]
            if p and p[2] == "backoff":
                entry["text_score"], entry["visual_score"] = p[3], p[4]  # the subtree's best, as stored
                out["categories"].append(entry)
                continue  # a parent said for its subtree: the evidence is its children's, shown with them
        if prepared.has_text and c in t_index:
            entry["text_score"] = round(float(teacher.predict_proba([prepared.text])[0, t_index[c]]), 4)
            entry["text_words"] = _word_influence(teacher, prepared.text, t_index[c])
        if stored is not None and c in v_index:
            raw, drops = _frame_influence(student, stored.embeddings, meta, v_index[c])
            entry["visual_score_raw"] = round(raw, 4)
            entry["visual_score"] = round(float(fusion.model.calibrate_visual(np.array([[raw]]))[0, 0]), 4)
            top = np.argsort(-drops)[:TOP_FRAMES]
            entry["top_frames"] = []
            for i in top:
                frame = {"t": round(float(stored.timestamps[i]), 2), "weight": round(float(drops[i]), 4)}
                if review is not None and i < len(review[1]):
                    frame["thumbnail"] = jpeg_data_uri(review[1][i])
                entry["top_frames"].append(frame)
        out["categories"].append(entry)
    return out


def _segments(catalog: Catalog, video_id: str) -> dict[str, Any]:
    """The video's current scenes and the suggested breaks between them, as stored (empty: not segmented yet).

    Each scene in the shape `vidcat classify --segments` gives it, ``top`` included, so the two read alike.
    """
    scenes = current_segments(catalog, [video_id]).get(video_id, [])
    tops = _scene_tops(catalog, scenes)
    return {
        "scenes": [
            {
                "scene_index": s["scene_index"],
                "start_s": round(s["start_s"], 3),
                "end_s": round(s["end_s"], 3),
                "categories": [
                    {"id": c, "score": round(x, 4)} for c, x in zip(s["categories"], s["category_scores"], strict=True)
                ],
                "abstained": s["abstained"],
                "break_before": s["break_before"],
                "top": top,
            }
            for s, top in zip(scenes, tops, strict=True)
        ],
        "breaks": [round(s["start_s"], 3) for s in scenes if s["break_before"]],
        "visual_model_version": scenes[0]["model_version"] if scenes else None,
        "scene_thresholds_version": scenes[0]["thresholds_version"] if scenes else None,
    }


def _scene_tops(catalog: Catalog, scenes: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    """Per stored scene, its best category over the student's categories and whether it had a certified
    scene threshold among those the scenes were given categories under (None: no frame)."""
    if not scenes:
        return []
    categories = get_model(catalog, "visual_model", scenes[0]["model_version"]).categories
    version = scenes[0]["thresholds_version"]
    rows = scene_threshold_rows(catalog, version) if version else []
    certified = {c for c, threshold, *_, enabled in rows if enabled and threshold is not None}
    out: list[dict[str, Any] | None] = []
    for s in scenes:
        top = None if s["scores"] is None else best_category(np.asarray(s["scores"]), categories, certified)
        out.append(None if top is None else {"id": top[0], "score": round(top[1], 4), "certified": top[2]})
    return out


def _ood(catalog: Catalog, visual_version: str, video_id: str, student) -> dict[str, Any] | None:
    """The stored out-of-distribution score and decision of the video for the fusion's visual model."""
    stored = ood_rows(catalog, visual_version, [video_id]).get(video_id)
    if stored is None:
        return None
    flagged, score = stored
    return {
        "score": None if score is None else round(float(score), 4),
        "threshold": None if student.ood is None else round(float(student.ood.threshold), 4),
        "flagged": bool(flagged),
        "decision": "the visual source abstained: the frames are unlike the student's training data"
        if flagged
        else "the visual source judged the video",
    }


def _certified(t) -> dict[str, Any]:
    """What gold says of a source's threshold: its precision there and the certified lower bound."""
    if not t.enabled or t.threshold is None:
        return {"reason": t.reason}
    return {"precision": round(float(t.precision), 4), "lower_bound": round(float(t.lower_bound), 4)}


def _thr(t) -> float | None:
    return round(float(t.threshold), 4) if t.enabled and t.threshold is not None else None


def explanation_html(exp: dict[str, Any]) -> str:
    e = html.escape
    parts = [
        "<!doctype html><meta charset='utf-8'><title>vidcat explain " + e(exp["video_id"]) + "</title>",
        "<style>body{font:14px sans-serif;margin:2em}td,th{padding:4px 8px;border-bottom:1px solid #ddd}"
        "img{margin:4px;border:1px solid #999}.w{background:#ffe08a}</style>",
        f"<h1>{e(exp['video_id'])}</h1><p><b>{e(exp.get('title') or '(no title)')}</b><br>"
        f"{e(exp.get('description') or '')}</p>",
        f"<p>fusion {e(exp['fusion_version'])} (rule {e(exp['rule'])}), text model {e(exp['text_model_version'])}, "
        f"visual model {e(exp['visual_model_version'])}, batch {e(exp['batch_id'])}</p>",
    ]
    if exp.get("promise"):
        parts.append(f"<p>Promise: {e(exp['promise'])}.</p>")
    ood = exp.get("out_of_distribution")
    if ood:
        parts.append(
            f"<p>out-of-distribution score {ood['score']} (threshold {ood['threshold']}): {e(ood['decision'])}</p>"
        )
    for c in exp["categories"]:
        verdict = f"emitted by <b>{e(c['source'])}</b>" if c["emitted"] else "<b>not emitted</b>"
        tier = f" (tier {c['tier']})" if c.get("tier") else ""
        parts.append(f"<h2>{e(c['id'])} {e(c['name'])}{tier}: {verdict}</h2><table>")
        parts.append(
            f"<tr><th>source</th><th>score</th><th>threshold</th></tr>"
            f"<tr><td>text</td><td>{c.get('text_score', '-')}</td><td>{c['text_threshold']}</td></tr>"
            f"<tr><td>visual</td><td>{c.get('visual_score', '-')}</td><td>{c['visual_threshold']}</td></tr>"
            + (
                f"<tr><td>back-off (parent)</td><td>{c['score'] if c['source'] == 'backoff' else '-'}</td>"
                f"<td>{c['backoff_threshold']}</td></tr>"
                if "backoff_threshold" in c
                else ""
            )
            + "</table>"
        )
        if c.get("backoff_over"):
            parts.append(
                "<p>back-off parent: said when none of these is, from their scores: "
                + e(", ".join(c["backoff_over"]))
                + "</p>"
            )
        if c.get("text_words"):
            words = ", ".join(f"<span class=w>{e(w['word'])}</span> (-{w['drop']})" for w in c["text_words"])
            parts.append(f"<p>words that carried the text score: {words}</p>")
        if c.get("top_frames"):
            parts.append("<p>frames that weighed most:</p><div>")
            for f in c["top_frames"]:
                img = f"<img src='{f['thumbnail']}'>" if f.get("thumbnail") else ""
                parts.append(
                    f"<figure style='display:inline-block'>{img}<figcaption>t={f['t']}s, "
                    f"weight {f['weight']}</figcaption></figure>"
                )
            parts.append("</div>")
    return "\n".join(parts)


def write_explanation(exp: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(explanation_html(exp), encoding="utf-8")
    return path
