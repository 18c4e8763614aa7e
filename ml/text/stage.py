"""The text stages on catalog data: train the teacher, score a batch, turn scores into pseudo-labels."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ml.catalog.failures import Failure, record_stage_outcome
from ml.catalog.holdout import HoldoutGuard, held_out_ids
from ml.catalog.labels import exhaustive_ids, judgements
from ml.catalog.model_registry import ModelRecord, latest_model, register_model
from ml.catalog.scores import with_text_scores
from ml.catalog.store import Catalog, delete_where_in, insert_rows
from ml.catalog.videos import video_rows


def train_teacher(catalog: Catalog, categories: list[str], settings) -> tuple[Any, Path, dict]:
    """Fit the text model on every video with editor labels; save and register it.

    The teacher is the prior head, which scores every working-set category however few its editor
    labels, so no minimum label count (``text_min_positives``) applies here.
    """
    from ml.taxonomy import working_set_for
    from ml.text.features import prepare_records
    from ml.text.model import label_matrix_from_rows, train_text_model
    from ml.text.prior import category_phrases

    working_set = working_set_for(settings)

    held_out = held_out_ids(catalog)
    labelled = video_rows(catalog, editor_covered=True)
    rows = [r for r in labelled if r["video_id"] not in held_out]
    if not rows:
        raise ValueError(
            "no video has editor labels outside the gold set and the locked test; register a manifest with a "
            "`labels` column first"
        )
    prepared = prepare_records(rows, max_chars=settings.text_max_chars)
    keep = [i for i, p in enumerate(prepared) if p.has_text]
    ids = [rows[i]["video_id"] for i in keep]
    HoldoutGuard(catalog)(ids, "the text teacher")
    labels = judgements(catalog, "editor")
    exhaustive = exhaustive_ids(catalog, "editor")
    y, label_stats = label_matrix_from_rows(ids, categories, labels, exhaustive)
    languages: dict[str, int] = {}
    for i in keep:
        lang = prepared[i].language or "unknown"
        languages[lang] = languages.get(lang, 0) + 1
    model = train_text_model(
        [prepared[i].text for i in keep],
        y,
        categories,
        encoder=settings.text_encoder,
        max_chars=settings.text_max_chars,
        phrases=category_phrases([working_set.by_id(c) for c in categories]),
        training_data={
            "label_set": "editor",
            "videos": len(rows),
            "held_out_excluded": len(labelled) - len(rows),
            "with_text": len(keep),
            "languages": languages,
            **label_stats,
        },
    )
    path = model.save(settings.models_dir / "text_model" / model.version)
    register_model(
        catalog,
        "text_model",
        model.version,
        path,
        list(model.categories),
        params=model.params,
        metrics=model.metrics,
        training_data=model.training_data,
    )
    return model, path, {"videos": len(rows), "with_text": len(keep), "languages": languages}


@functools.lru_cache(maxsize=2)
def load_teacher(path: str):
    """One load per process and version: the e5 encoder and heads stay warm across batches."""
    from ml.text.model import load_text_model

    return load_text_model(path)


@dataclass
class TextBatchResult:
    videos: int = 0
    with_text: int = 0
    languages: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)


def score_batch_text(catalog: Catalog, record: ModelRecord, batch_id: str, video_ids: list[str]) -> TextBatchResult:
    """Write `text_predictions` for the batch (one row per video, scores only where there is text)."""
    from ml.text.model import predict_records

    model = load_teacher(str(record.artifact_path))
    rows = video_rows(catalog, video_ids)
    preds = predict_records(model, rows)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    result = TextBatchResult(videos=len(rows))
    out = []
    ok = []
    for r, p in zip(rows, preds, strict=True):
        if p.error and not p.has_text:
            result.failures.append(Failure(r["video_id"], "text", "TextError", p.error))
        else:
            ok.append(r["video_id"])
        result.with_text += int(p.has_text)
        lang = p.language or "unknown"
        result.languages[lang] = result.languages.get(lang, 0) + 1
        scores = None if p.scores is None else np.asarray(p.scores, dtype=np.float32).tolist()
        out.append(
            (r["video_id"], record.version, batch_id, bool(p.has_text), p.language, int(p.text_chars), scores, now)
        )
    with catalog.transaction() as con:
        delete_where_in(
            con,
            "text_predictions",
            "video_id",
            [r["video_id"] for r in rows],
            "AND model_version = ?",
            [record.version],
        )
        insert_rows(
            con,
            "text_predictions",
            ["video_id", "model_version", "batch_id", "has_text", "language", "text_chars", "scores", "predicted_at"],
            out,
        )
        record_stage_outcome(con, "text", batch_id, ok, result.failures)
    return result


def teacher_thresholds(record: ModelRecord, settings):
    """Pseudo-label cuts from the teacher's cross-fitted held-out editor scores (deterministic per version).

    The teacher never trained on gold or locked-test videos (``train_teacher``), so these cuts never
    saw them either.
    """
    from ml.text.pseudo_labels import select_thresholds

    model = load_teacher(str(record.artifact_path))
    return select_thresholds(
        model.heldout_scores,
        model.heldout_labels,
        model.categories,
        settings.pseudo_label_policy(),
        pooled=bool(model.params.get("pooled_calibration")),
    )


@dataclass
class PseudoBatchResult:
    videos_scored: int
    videos_with_positive: int
    positives: int
    negatives: int
    soft: int
    per_category: dict[str, int]
    gold_precision: dict[str, Any] | None


def pseudo_label_batch(
    catalog: Catalog, record: ModelRecord, thresholds, batch_id: str, video_ids: list[str], settings
) -> PseudoBatchResult:
    from ml.text.pseudo_labels import make_pseudo_labels, pseudo_label_precision

    rows = with_text_scores(catalog, record.version, video_ids)
    ids = [r[0] for r in rows]
    scores = np.array([r[1] for r in rows], dtype=np.float64).reshape(len(rows), len(record.categories))
    table = make_pseudo_labels(
        ids, scores, record.categories, thresholds, negative_max_score=settings.pseudo_label_negative_max_score
    )
    with catalog.transaction() as con:
        delete_where_in(con, "pseudo_labels", "video_id", list(video_ids), "AND model_version = ?", [record.version])
        insert_rows(
            con,
            "pseudo_labels",
            ["video_id", "category_id", "model_version", "batch_id", "target", "weight", "kind"],
            [
                (r.video_id, r.category_id, record.version, batch_id, float(r.target), float(r.weight), r.kind)
                for r in table.itertuples()
            ],
        )
    pos = table[table["kind"] == "positive"]
    gold = judgements(catalog, "gold", ids)
    gold_precision = None
    if gold:
        gold_precision = pseudo_label_precision(table, gold, exhaustive_ids(catalog, "gold", ids))
    return PseudoBatchResult(
        len(ids),
        int(pos["video_id"].nunique()),
        len(pos),
        int((table["kind"] == "negative").sum()),
        int((table["kind"] == "soft").sum()),
        pos.groupby("category_id").size().to_dict(),
        gold_precision,
    )


def current_teacher(catalog: Catalog) -> ModelRecord:
    record = latest_model(catalog, "text_model")
    assert record is not None
    return record
