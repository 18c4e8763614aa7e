"""The fusion stage on catalog data: fit thresholds and the fusion rule on gold, apply it to a batch.

`fit_fusion_on_gold` is what the `category_thresholds` asset runs; `fuse_batch` is what
`fused_predictions` (and the real-time `vidcat classify`) run. Both read the source scores of one
text-model version and one visual-model version: thresholds belong to the model versions they were
measured on, so the versions travel inside the fusion model.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.catalog.labels import certification_gold
from ml.catalog.model_registry import (
    ModelRecord,
    get_model,
    latest_model,
    new_version,
    register_model_in,
    replace_thresholds,
)
from ml.catalog.scores import ood_counts, scored_count, unplayable
from ml.catalog.store import Catalog, delete_where_in, insert_rows
from ml.fusion.hierarchy import build_tree, fit_backoff_model
from ml.fusion.rules import RULES, FusionModel, RuleChoice, choose_rule, compare_rules, fit_rule
from ml.fusion.score_matrix import category_union, load_scores, text_lengths, visual_scores
from ml.taxonomy import WorkingSet
from ml.thresholds import Threshold, ThresholdPolicy, precision_coverage_curve

SOURCES = ("text", "visual", "fused")


@dataclass
class FittedFusion:
    version: str
    rule: str
    model: FusionModel
    categories: list[str]
    is_visual: list[bool]
    comparison: dict[str, dict[str, float]]
    gold_videos: int
    text_version: str
    visual_version: str | None
    path: Path
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray, float | None]]]
    choice: RuleChoice
    # Certification gold left out because the current student learnt from it (``gold_inputs``).
    student_trained_on: int = 0


def gold_inputs(catalog: Catalog, text: ModelRecord, visual: ModelRecord | None, categories: list[str]):
    """Certification gold (without the locked test) with both sources as deployed (visual abstentions applied).

    Gold videos the current student learnt from (imported after it trained: ``student_trained_on``) are
    left out: its scores there are not held out.
    """
    ids, y, left_out = certification_gold(catalog, categories, visual.version if visual is not None else None)
    t = load_scores(catalog, "text_predictions", text.version, text.categories, ids, categories)
    if visual is None:  # no student yet (too few labels): the visual source abstains everywhere
        v = np.full(t.shape, np.nan)
    else:
        v, _ = visual_scores(catalog, visual.version, visual.categories, ids, categories)
    chars = text_lengths(catalog, text.version, ids)
    return ids, t, v, chars, y, left_out


def decide_visual(
    ws: WorkingSet, categories: list[str], visual_thresholds: list[Threshold], policy: ThresholdPolicy
) -> list[bool]:
    """Visual = the visual source holds the target on gold; overturning a not-visual prior takes twice the support."""
    out = []
    for c, t in zip(categories, visual_thresholds, strict=True):
        prior = ws.by_id(c).visual if c in ws else False
        out.append(bool(t.enabled and (prior or t.true_positives >= 2 * policy.min_support)))
    return out


def fit_fusion_on_gold(
    catalog: Catalog,
    ws: WorkingSet,
    models_dir: Path,
    policy: ThresholdPolicy,
    rule: str = "auto",
    folds: int = 5,
    seed: int = 0,
    promised_precision: float | None = None,
    backoff: str = "auto",
) -> FittedFusion:
    """Compare the rules out of fold, fit the chosen one on all gold, write thresholds and the fusion model.

    ``promised_precision``: the held-out precision a rule must reach to be chosen (default: the
    policy's own target, which may include a safety margin above the promise). ``backoff``: the
    parent-category back-off's combiner ("auto": chosen on held-out gold), or "off".
    """
    text = latest_model(catalog, "text_model")
    assert text is not None
    # Without a student (a catalog too small to train one is a state, not an error) fusion is text only.
    visual = latest_model(catalog, "visual_model", required=False)
    if visual is None:
        rule = "text"
    categories = category_union(ws.ids, text.categories, visual.categories if visual else [])
    ids, t, v, chars, y, trained_on = gold_inputs(catalog, text, visual, categories)
    if len(ids) < 8:
        retrain = (
            f" ({trained_on} more were training videos of visual model {visual.version}: retrain the student, "
            "`vidcat backfill --train`, to certify on them)"
            if trained_on and visual is not None
            else ""
        )
        raise ValueError(
            f"only {len(ids)} gold video(s) have exhaustive human-verified labels; thresholds need a gold set "
            f"(import one with `vidcat import-gold`){retrain}"
        )
    rules = RULES if visual is not None else ("text",)
    comparison = compare_rules(t, v, chars, y, policy, folds=folds, seed=seed, rules=rules, categories=categories)
    promise = promised_precision if promised_precision is not None else policy.target_precision
    if rule == "auto":
        choice = choose_rule(comparison, promise)
    else:
        m = comparison[rule]
        bad = list(m.get("failing_categories", []))
        holds = not bad and bool(np.isfinite(m["precision"]) and m["precision"] >= promise)
        why = f"{rule} set in vidcat.toml (fusion_rule)" if visual is not None else "text only: no visual model yet"
        choice = RuleChoice(rule, holds, bad, why)
    chosen = choice.rule
    model = fit_rule(chosen, t, v, chars, y, policy, seed)
    is_visual = decide_visual(ws, categories, model.visual_thresholds, policy)
    model.is_visual = is_visual
    # A category the data does not confirm as visual is not emitted by the visual source alone.
    model.visual_thresholds = [
        th
        if vis
        else Threshold(
            **{
                **th.as_dict(),
                "enabled": False,
                "reason": th.reason if not th.enabled else "not visual (prior, weak support)",
            }
        )
        for th, vis in zip(model.visual_thresholds, is_visual, strict=True)
    ]
    if backoff != "off":
        d = model.decide(t, v, chars)
        model.backoff = fit_backoff_model(
            d.score, d.emitted, y, build_tree(categories, ws.taxonomy), policy, combiner=backoff, seed=seed
        )
    visual_version = visual.version if visual else None
    version = new_version(chosen, text.version, visual_version, len(ids))
    path = models_dir / "fusion" / f"{version}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "version": version,
        "categories": categories,
        "is_visual": is_visual,
        "text_model_version": text.version,
        "visual_model_version": visual_version,
        **model.to_json(),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload))
    tmp.replace(path)
    curves = _curves(model, t, v, chars, y, categories, ws)
    # One transaction: the model becomes current together with its thresholds, or not at all.
    with catalog.transaction() as con:
        _write_thresholds(con, version, categories, model, is_visual)
        register_model_in(
            con,
            "fusion",
            version,
            path,
            categories,
            params={
                "rule": chosen,
                "requested_rule": rule,
                "policy": policy.__dict__,
                "text_model_version": text.version,
                "visual_model_version": visual_version,
            },
            metrics={
                "comparison": comparison,
                "choice": {"holds": choice.holds, "failing": choice.failing, "reason": choice.reason},
                "promise": promise,
            },
            training_data={
                "gold_videos": len(ids),
                "label_set": "gold",
                "locked_test_excluded": True,
                "student_trained_on_excluded": trained_on,
            },
        )
    return FittedFusion(
        version,
        chosen,
        model,
        categories,
        is_visual,
        comparison,
        len(ids),
        text.version,
        visual_version,
        path,
        curves,
        choice,
        trained_on,
    )


def _curves(model: FusionModel, t, v, chars, y, categories, ws):
    v_cal = model.calibrate_visual(v)
    fused = model.fused_score(t, v, chars)
    out = {}
    sources = {"text": (t, model.text_thresholds), "visual": (v_cal, model.visual_thresholds)}
    if model.fused_thresholds is not None:
        sources["fused"] = (fused, model.fused_thresholds)
    for j, c in enumerate(categories):
        name = ws.by_id(c).full_name if c in ws else c
        out[name] = {}
        for source, (scores, ths) in sources.items():
            thr, precision, cov = precision_coverage_curve(scores[:, j], y[:, j])
            chosen = None
            if ths[j].enabled and len(thr):
                chosen = float(cov[np.searchsorted(-thr, -ths[j].threshold, side="right") - 1])
            out[name][source] = (precision, cov, chosen)
    return out


def _write_thresholds(con, version: str, categories: list[str], model: FusionModel, is_visual: list[bool]) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = []
    per_source = {
        "text": model.text_thresholds,
        "visual": model.visual_thresholds,
        "fused": model.fused_thresholds or [],
    }
    for source, ths in per_source.items():
        for c, th, vis in zip(categories, ths, is_visual, strict=False):
            rows.append(_threshold_row(version, c, source, th, vis, now))
    if model.backoff is not None:
        index = {c: j for j, c in enumerate(categories)}
        for node, th in zip(model.backoff.tree.nodes, model.backoff.thresholds, strict=True):
            rows.append(_threshold_row(version, node, "backoff", th, is_visual[index[node]], now))
    replace_thresholds(con, version, rows)


def _threshold_row(version: str, category: str, source: str, th: Threshold, vis: bool, now) -> tuple:
    return (
        version,
        category,
        source,
        th.threshold,
        th.precision,
        th.recall,
        th.positives,
        th.lower_bound,
        th.enabled,
        vis,
        now,
    )


@dataclass
class LoadedFusion:
    version: str
    model: FusionModel
    categories: list[str]
    text_version: str
    visual_version: str | None  # None: fused without a student (text only)
    text_categories: list[str]
    visual_categories: list[str]
    text_record: ModelRecord
    visual_record: ModelRecord | None
    policy: ThresholdPolicy | None = None  # what its thresholds were certified under (None: not recorded)


def recorded_policy(params: dict[str, Any]) -> ThresholdPolicy | None:
    """The policy a fusion record's thresholds were certified under, from its params.

    The promise stated beside served thresholds must be the one they were certified under, not what
    the settings say today: a changed setting does not re-certify anything until the fusion is refit.
    """
    stored = params.get("policy")
    if not isinstance(stored, dict):
        return None
    known = {f for f in ThresholdPolicy.__dataclass_fields__}
    return ThresholdPolicy(**{k: v for k, v in stored.items() if k in known})


def served_policy(
    catalog: Catalog, settings: Any, fusion: LoadedFusion | None = None, record: ModelRecord | None = None
) -> ThresholdPolicy:
    """The policy behind the thresholds served now; the settings' only while none was recorded.

    ``fusion`` (loaded) or ``record`` (its registry row): the model a caller already holds, so the promise
    it states is that model's even if a newer fusion is registered meanwhile.
    """
    if fusion is not None:
        policy = fusion.policy
    else:
        record = record or latest_model(catalog, "fusion", required=False)
        policy = recorded_policy(record.params) if record is not None else None
    return policy if policy is not None else settings.threshold_policy()


def load_current_fusion(catalog: Catalog, record: ModelRecord | None = None) -> LoadedFusion:
    """The fusion model of ``record`` (default: the latest registered) with its sources' records."""
    record = record or latest_model(catalog, "fusion")
    assert record is not None
    data = json.loads(Path(record.artifact_path).read_text())
    text = get_model(catalog, "text_model", data["text_model_version"])
    visual = get_model(catalog, "visual_model", data["visual_model_version"]) if data["visual_model_version"] else None
    return LoadedFusion(
        record.version,
        FusionModel.from_json(data),
        data["categories"],
        text.version,
        visual.version if visual else None,
        text.categories,
        visual.categories if visual else [],
        text,
        visual,
        recorded_policy(record.params),
    )


def certification_gaps(fusion: LoadedFusion) -> list[dict[str, Any]]:
    """Categories that gold has positives of but no source may emit, with the verified positives they lack.

    ``more_positives``: how many more gold videos of the category a perfect ranking would need before a
    cut could be certified (0 when the count is not the limit: the ranking is, for that source).
    """
    out = []
    for j, c in enumerate(fusion.categories):
        t, v = fusion.model.text_thresholds[j], fusion.model.visual_thresholds[j]
        if t.enabled or v.enabled or not (t.positives or v.positives):
            continue
        need = [x.more_positives for x in (t, v) if x.positives]
        out.append(
            {
                "category_id": c,
                "gold_positives": max(t.positives, v.positives),
                "more_positives": min(need) if need else 0,
                "text": t.reason,
                "visual": v.reason,
            }
        )
    return out


def ensure_source_scores(
    catalog: Catalog, settings, fusion: LoadedFusion, batch_id: str, video_ids: list[str], engine=None
) -> dict[str, bool]:
    """Score the batch with the model versions the fusion model's thresholds belong to, where missing.

    `text_predictions` and `visual_predictions` score with the newest models (the next training needs
    them); while a retraining is under way, or if it stopped half way, those are not the versions the
    current thresholds were measured on. Fusion must combine the versions it was fitted on, so it
    fills the gap itself rather than fusing a batch as if it had no text or no frames.
    """
    from ml.frames.embedding_store import shard_path
    from ml.text.stage import score_batch_text
    from ml.visual.stage import score_batch_visual

    filled = {"text": False, "visual": False}
    ids = list(video_ids)
    n_text = scored_count(catalog, "text_predictions", fusion.text_version, ids)
    if n_text < len(ids):
        score_batch_text(catalog, fusion.text_record, batch_id, ids)
        filled["text"] = True
    shard = shard_path(settings.embeddings_dir, settings.image_encoder, batch_id)
    if fusion.visual_record is not None and shard.exists():
        import pyarrow.parquet as pq

        n_visual = scored_count(catalog, "visual_predictions", fusion.visual_version, ids)
        if n_visual < pq.read_metadata(shard).num_rows:
            score_batch_visual(catalog, fusion.visual_record, settings, batch_id, engine=engine)
            filled["visual"] = True
    return filled


@dataclass
class BatchFusion:
    videos: int
    classified: int
    emitted: int
    by_source: dict[str, int]
    no_text: int
    no_visual: int
    neither: int
    out_of_distribution: int = 0  # videos the visual source abstained on
    visual_scored: int = 0  # videos the visual model scored (the share's denominator)

    @property
    def ood_share(self) -> float:  # flagged / scored, as ml.catalog.scores.ood_counts defines them
        return self.out_of_distribution / self.visual_scored if self.visual_scored else 0.0


def fuse_batch(catalog: Catalog, fusion: LoadedFusion, batch_id: str, video_ids: list[str]) -> BatchFusion:
    """Decide the batch's categories and write `predictions` and `video_results` (replacing this version's rows)."""
    cats = fusion.categories
    t = load_scores(catalog, "text_predictions", fusion.text_version, fusion.text_categories, video_ids, cats)
    scored_visual = np.isfinite(
        load_scores(catalog, "visual_predictions", fusion.visual_version, fusion.visual_categories, video_ids, cats)
    ).any(axis=1)
    v, ood = visual_scores(catalog, fusion.visual_version, fusion.visual_categories, video_ids, cats)
    chars = text_lengths(catalog, fusion.text_version, video_ids)
    d = fusion.model.decide(t, v, chars)
    levels = category_levels(fusion)
    v_cal = fusion.model.calibrate_visual(v)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    pred_rows, result_rows = [], []
    has_text = np.isfinite(t).any(axis=1)
    has_visual = np.isfinite(v).any(axis=1)
    not_playable = unplayable(catalog, video_ids)
    text_why = [None if has_text[i] else "no_usable_text" for i in range(len(video_ids))]
    visual_why = [
        None
        if has_visual[i]
        else (
            "no_visual_model"
            if fusion.visual_version is None
            else ("out_of_distribution" if ood[i] else ("no_frames" if not scored_visual[i] else "not_scored"))
        )
        for i in range(len(video_ids))
    ]
    for i, vid in enumerate(video_ids):
        if vid in not_playable or not (has_text[i] or has_visual[i]):
            # A file that does not open is not served, whatever its title says; a video with neither text
            # nor frames has nothing to classify. Recorded as failed (the reason is in failures), so an
            # earlier classification of the same video stops being served.
            result_rows.append(
                (
                    vid,
                    fusion.version,
                    batch_id,
                    "failed",
                    0,
                    bool(has_text[i]),
                    bool(has_visual[i]),
                    text_why[i],
                    visual_why[i],
                    now,
                )
            )
            continue
        said_i = said_categories(fusion.model, cats, levels, d, t, v_cal, i)
        for c in said_i:
            pred_rows.append(
                (
                    vid,
                    c.category_id,
                    fusion.version,
                    c.score,
                    c.text_score,
                    c.visual_score,
                    c.text_threshold,
                    c.visual_threshold,
                    c.source,
                    fusion.model.rule,
                    fusion.text_version,
                    fusion.visual_version,
                    fusion.version,
                    batch_id,
                    now,
                    c.tier,
                    c.path,
                )
            )
        result_rows.append(
            (
                vid,
                fusion.version,
                batch_id,
                "classified",
                len(said_i),
                bool(has_text[i]),
                bool(has_visual[i]),
                text_why[i],
                visual_why[i],
                now,
            )
        )
    with catalog.transaction() as con:
        delete_where_in(con, "predictions", "video_id", video_ids, "AND model_version = ?", [fusion.version])
        delete_where_in(con, "video_results", "video_id", video_ids, "AND model_version = ?", [fusion.version])
        insert_rows(
            con,
            "predictions",
            [
                "video_id",
                "category_id",
                "model_version",
                "score",
                "text_score",
                "visual_score",
                "text_threshold",
                "visual_threshold",
                "source",
                "fusion",
                "text_model_version",
                "visual_model_version",
                "thresholds_version",
                "batch_id",
                "predicted_at",
                "tier",
                "path",
            ],
            pred_rows,
        )
        insert_rows(
            con,
            "video_results",
            [
                "video_id",
                "model_version",
                "batch_id",
                "status",
                "n_categories",
                "has_text",
                "has_visual",
                "text_abstained",
                "visual_abstained",
                "classified_at",
            ],
            result_rows,
        )
    by_source: dict[str, int] = {}
    for row in pred_rows:
        by_source[row[8]] = by_source.get(row[8], 0) + 1
    return BatchFusion(
        len(video_ids),
        sum(r[3] == "classified" for r in result_rows),
        len(pred_rows),
        by_source,
        int((~has_text).sum()),
        int((~has_visual).sum()),
        int((~has_text & ~has_visual).sum()),
        *(ood_counts(catalog, fusion.visual_version, video_ids) if fusion.visual_version else (0, 0)),
    )


@dataclass(frozen=True)
class SaidCategory:
    """One category said about a video, as predictions store it and `vidcat classify` shows it."""

    column: int
    category_id: str
    score: float
    source: str  # text, visual, both, fused, or backoff (a parent said for its subtree)
    text_score: float | None
    visual_score: float | None  # calibrated
    text_threshold: float | None  # None where the source has no threshold in force
    visual_threshold: float | None
    backoff_threshold: float | None
    tier: int
    path: str


def said_categories(
    model: FusionModel,
    categories: list[str],
    levels: tuple[list[int], list[str]],
    d,
    t: np.ndarray,
    v_cal: np.ndarray,
    i: int,
) -> list[SaidCategory]:
    """Video ``i``'s categories from its decisions, best score first: the one reading of a decision that the
    batch (`fuse_batch`) and real-time (`vidcat classify`) paths share."""
    tiers, paths = levels
    said, sources = d.said(), d.source()
    backoff = model.backoff
    node_of = {col: k for k, col in enumerate(backoff.tree.node_columns)} if backoff is not None else {}
    out = []
    for j in np.nonzero(said[i])[0]:
        if sources[i, j] == "backoff":
            assert backoff is not None and d.node_score is not None
            k = node_of[int(j)]
            cols = backoff.tree.subtree[k]
            th = backoff.thresholds[k]
            out.append(
                SaidCategory(
                    int(j),
                    categories[j],
                    float(d.node_score[i, k]),
                    "backoff",
                    _fmax(t[i, cols]),
                    _fmax(v_cal[i, cols]),
                    None,
                    None,
                    th.threshold if th.enabled else None,
                    tiers[j],
                    paths[j],
                )
            )
            continue
        tt, vt = model.text_thresholds[j], model.visual_thresholds[j]
        out.append(
            SaidCategory(
                int(j),
                categories[j],
                float(d.score[i, j]),
                str(sources[i, j]),
                _f(t[i, j]),
                _f(v_cal[i, j]),
                tt.threshold if tt.enabled else None,
                vt.threshold if vt.enabled else None,
                None,
                tiers[j],
                paths[j],
            )
        )
    return sorted(out, key=lambda c: -c.score)


def _f(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def _fmax(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(x.max()) if len(x) else None


def category_levels(fusion: LoadedFusion) -> tuple[list[int], list[str]]:
    """Tier and path ("Entertainment > Movies") of every category column, as predictions store them."""
    if fusion.model.backoff is not None:
        return fusion.model.backoff.tree.tiers, fusion.model.backoff.tree.paths
    from ml.taxonomy import load_taxonomy

    taxonomy = load_taxonomy()
    cats = fusion.categories
    return (
        [taxonomy[c].tier if c in taxonomy else 1 for c in cats],
        [taxonomy[c].full_name if c in taxonomy else c for c in cats],
    )


__all__ = ["RULES", "SOURCES", "fit_fusion_on_gold", "fuse_batch", "load_current_fusion"]
