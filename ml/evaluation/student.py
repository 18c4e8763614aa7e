"""The visual student measured on the locked test: architectures, label sources and label budgets.

Every variant is trained exactly as the pipeline trains it (``fit_student``: same targets, same
held-out exclusion, same self-training check), its per-category thresholds are fitted on the
certification share of gold as the fusion stage fits them, and it is scored on the locked test that
none of this saw. The strong simple baseline (``ml/visual/baseline.py``) is trained on the same
editor labels in the same run.

The label budget (``vidcat eval-visual --label-budget 1.0,0.3,0.1``) is the seed's thesis: in
production a few thousand human labels face millions of videos, which is why pseudo-labels exist.
For each budget the editor-labelled videos are subsampled by a hash of their id (nested: the 10%
are inside the 30%), the teacher is retrained on the kept ones, it pseudo-labels every other
trainable video with text (the dropped editor videos included, their labels hidden), and the
student is trained with and without those pseudo-labels. The demo catalog itself is unchanged.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ml.catalog.holdout import HeldOutLeak, HoldoutGuard, held_out_ids
from ml.catalog.labels import certification_matrix, label_matrix
from ml.catalog.scores import labelled_categories
from ml.catalog.store import Catalog
from ml.evaluation.locked import LockedTest
from ml.fusion.rules import rule_metrics
from ml.thresholds import ThresholdPolicy, select_thresholds, threshold_vector

BUDGET_SALT = "vidcat-label-budget-v1"


def budget_position(video_id: str) -> float:
    digest = hashlib.sha256(f"{BUDGET_SALT}\x00{video_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass
class EvalContext:
    categories: list[str]
    shards: list[Path]
    meta: dict[str, np.ndarray] | None
    editor: dict[str, np.ndarray]  # trainable editor-labelled videos -> targets over categories
    held_out: frozenset[str]
    certify_ids: list[str]
    certify_y: np.ndarray
    test: LockedTest
    test_y: np.ndarray
    settings: Any
    policy: ThresholdPolicy
    text_probs: dict[str, np.ndarray] = field(default_factory=dict)  # the current teacher's, pool videos
    # Reads the held-out videos from the catalog at each training (ml/catalog/holdout.py); None: refuse
    # to train at all rather than train unguarded.
    guard: Callable[[Iterable[str], str], None] | None = None


def eval_context(catalog: Catalog, settings, test: LockedTest, ws_ids: list[str]) -> EvalContext:
    from ml.catalog.model_registry import latest_model
    from ml.frames.embedding_store import list_shards
    from ml.visual.stage import load_meta, teacher_text_probs

    held_out = held_out_ids(catalog)
    labelled = labelled_categories(catalog, "editor")
    categories = [c for c in ws_ids if c in labelled]
    ids, y = label_matrix(catalog, "editor", categories, exclude=set(held_out))
    certify_ids, certify_y = certification_matrix(catalog, categories)
    index = {c: j for j, c in enumerate(categories)}
    test_y = np.zeros((len(test.video_ids), len(categories)), bool)
    for i, v in enumerate(test.video_ids):
        for c in test.labels[v]:
            if c in index:
                test_y[i, index[c]] = True
    return EvalContext(
        categories,
        list_shards(settings.embeddings_dir, settings.image_encoder),
        load_meta(catalog),
        {v: y[i] for i, v in enumerate(ids)},
        held_out,
        certify_ids,
        certify_y,
        test,
        test_y,
        settings,
        settings.threshold_policy(),
        teacher_text_probs(catalog, latest_model(catalog, "text_model", required=False), categories, held_out),
        HoldoutGuard(catalog),
    )


def guard_of(ctx: EvalContext) -> Callable[[Iterable[str], str], None]:
    if ctx.guard is None:
        raise ValueError("an evaluation context without a held-out guard trains nothing (eval_context builds one)")
    return ctx.guard


def score_student(ctx: EvalContext, model_dir: Path, categories: list[str]) -> dict[str, Any]:
    """Thresholds on certification gold, figures on the locked test (visual source alone, abstentions applied)."""
    from ml.metrics import gap_at_k
    from ml.visual.predictor import VisualPredictor

    wanted = set(ctx.certify_ids) | set(ctx.test.video_ids)
    scored = {
        s.video_id: (s.scores, s.out_of_distribution)
        for s in VisualPredictor(model_dir).predict_shards(ctx.shards, ctx.meta, video_ids=wanted)
    }
    col = [categories.index(c) if c in categories else -1 for c in ctx.categories]

    def matrix(ids: Sequence[str]) -> np.ndarray:
        out = np.full((len(ids), len(ctx.categories)), np.nan)
        for i, v in enumerate(ids):
            if v in scored and not scored[v][1]:
                for j, k in enumerate(col):
                    if k >= 0:
                        out[i, j] = scored[v][0][k]
        return out

    g, t = matrix(ctx.certify_ids), matrix(ctx.test.video_ids)
    cuts = threshold_vector(select_thresholds(g, ctx.certify_y, ctx.policy))
    with np.errstate(invalid="ignore"):
        emitted = np.where(np.isfinite(t), t >= cuts[None, :], False)
    # The figure a choice may be made on: certification gold (never trained on), not the locked test.
    return _figures(ctx, emitted, t) | {
        "gap_at_20": float(gap_at_k(np.nan_to_num(t, nan=-1.0), ctx.test_y, 20)),
        "gold_gap_at_20": float(gap_at_k(np.nan_to_num(g, nan=-1.0), ctx.certify_y, 20)),
    }


def _figures(ctx: EvalContext, emitted: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    out = rule_metrics(emitted, score, ctx.test_y, promise=ctx.settings.target_precision)
    none = [i for i, v in enumerate(ctx.test.video_ids) if ctx.test.kinds.get(v) == "none"]
    if none:
        m = rule_metrics(emitted[none], score[none], ctx.test_y[none])
        out["no_text"] = {k: m[k] for k in ("coverage", "precision", "recall", "f1")} | {"videos": len(none)}
    return out


def score_baseline(ctx: EvalContext, editor: dict[str, np.ndarray]) -> dict[str, Any]:
    from ml.metrics import gap_at_k
    from ml.visual.baseline import baseline_scores

    probs, n_train = baseline_scores(ctx.shards, editor, ctx.categories, ctx.test.video_ids, guard=guard_of(ctx))
    t = np.stack([probs.get(v, np.full(len(ctx.categories), np.nan)) for v in ctx.test.video_ids])
    with np.errstate(invalid="ignore"):
        emitted = np.where(np.isfinite(t), t >= 0.5, False)
    return _figures(ctx, emitted, t) | {
        "gap_at_20": float(gap_at_k(np.nan_to_num(t, nan=-1.0), ctx.test_y, 20)),
        "train_videos": n_train,
    }


def train_and_score(
    ctx: EvalContext,
    editor: dict[str, np.ndarray],
    pseudo: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
    policy: Any,
    config: Any,
    text_probs: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    from ml.visual.stage import NotEnoughLabels, StudentInputs, fit_student

    settings = ctx.settings
    text = ctx.text_probs if text_probs is None else text_probs
    inputs = StudentInputs(list(ctx.categories), editor, pseudo, ctx.held_out, text_probs=dict(text))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            fit = fit_student(
                ctx.shards,
                inputs,
                policy,
                config,
                Path(tmp),
                guard=guard_of(ctx),
                meta=ctx.meta,
                min_positives=settings.visual_min_positives,
                self_precision=settings.pseudo_label_precision,
                negative_max_score=settings.pseudo_label_negative_max_score,
                ood_flag_share=settings.ood_flag_share,
                ood_k=settings.ood_k,
            )
        except NotEnoughLabels as exc:
            return {"error": str(exc)}
        figures = score_student(ctx, fit.result.model_dir, fit.categories)
    return figures | {
        "train_seconds": round(time.perf_counter() - started, 1),
        "targets": fit.targets.counts(),
        "self_training_accepted": fit.self_training.get("accepted_videos", 0),
        "categories_learnt": len(fit.categories),
    }


def _student_config(settings, **overrides: Any):
    from ml.visual.network import VisualTrainConfig

    base = VisualTrainConfig(
        arch=settings.visual_arch,
        max_epochs=settings.visual_max_epochs,
        enable_progress_bar=False,
        augment=settings.student_augment,
    )
    return replace(base, **overrides)


def compare_architectures(ctx: EvalContext, catalog_pseudo: tuple[dict, dict]) -> dict[str, Any]:
    """NeXtVLAD against mean pooling, same targets, seed and budget, on the locked test."""
    from ml.visual.targets import TargetPolicy

    policy = TargetPolicy.from_settings(ctx.settings)
    out = {}
    for arch in ("nextvlad", "meanpool"):
        out[arch] = train_and_score(ctx, ctx.editor, catalog_pseudo, policy, _student_config(ctx.settings, arch=arch))
    out["baseline"] = score_baseline(ctx, ctx.editor)
    return out


def ablation(ctx: EvalContext, catalog_pseudo: tuple[dict, dict]) -> dict[str, Any]:
    """Each ingredient switched off alone, from the configured recipe: its effect, measured."""
    from ml.visual.targets import TargetPolicy

    policy = TargetPolicy.from_settings(ctx.settings)
    variants = {
        "configured": (policy, {}),
        "no pseudo-labels": (replace(policy, pseudo_labels=False), {}),
        "hard pseudo-labels": (replace(policy, soft=False), {}),
        "no self-training": (replace(policy, self_training=False), {}),
        "augmentation " + ("off" if ctx.settings.student_augment else "on"): (
            policy,
            {"augment": not ctx.settings.student_augment},
        ),
    }
    return {
        name: train_and_score(ctx, ctx.editor, catalog_pseudo, p, _student_config(ctx.settings, **kw))
        for name, (p, kw) in variants.items()
    }


def _over_seeds(run, seeds: int) -> dict[str, Any]:
    """``run(seed)`` for each seed; the first run's figures, with mean and spread of F1 across seeds."""
    results = [run(seed) for seed in range(seeds)]
    first = dict(results[0])
    ok = [r for r in results if "error" not in r]
    if seeds > 1 and ok:
        f1 = np.array([r["f1"] for r in ok])
        first.update({k: float(np.mean([r[k] for r in ok])) for k in ("coverage", "precision", "recall", "f1")})
        first["f1_sd"] = float(f1.std(ddof=1)) if len(f1) > 1 else 0.0
        if all("no_text" in r for r in ok):
            first["no_text"] = {
                k: float(np.mean([r["no_text"][k] for r in ok]))
                for k in ("coverage", "f1")
                if all(r["no_text"].get(k) is not None for r in ok)
            }
        first["seeds"] = len(ok)
    return first


def _student_runs(ctx: EvalContext, kept, pseudo, policy, config, seeds: int, text_probs=None) -> dict[str, Any]:
    return _over_seeds(
        lambda seed: train_and_score(ctx, kept, pseudo, policy, replace(config, seed=seed), text_probs), seeds
    )


def teacher_on_pool(
    probs: np.ndarray,
    cut: float | np.ndarray | None,
    ids: Sequence[str],
    categories: Sequence[str],
    truth: dict[str, list[str]],
) -> dict[str, Any]:
    """The teacher's calls at its pseudo-label cut(s) against the pool's true labels (measurement only)."""
    from ml.metrics import gap_at_k

    rows = [i for i, v in enumerate(ids) if v in truth]
    if not rows:
        return {}
    index = {c: j for j, c in enumerate(categories)}
    y = np.zeros((len(rows), len(categories)), bool)
    for r, i in enumerate(rows):
        for c in truth[ids[i]]:
            if c in index:
                y[r, index[c]] = True
    p = np.nan_to_num(probs[rows], nan=0.0)
    called = p >= (np.inf if cut is None else np.asarray(cut, dtype=np.float64))
    tp = int((called & y).sum())
    return {
        "videos": len(rows),
        "cut": None if cut is None or np.ndim(cut) else float(cut),
        "calls": int(called.sum()),
        "precision": tp / int(called.sum()) if called.any() else None,
        "recall": tp / int(y.sum()) if y.any() else None,
        "gap": float(gap_at_k(p, y.astype(np.float32), 20)),
    }


def label_budget(
    catalog: Catalog,
    ctx: EvalContext,
    budgets: Sequence[float],
    progress=None,
    seeds: int = 1,
    pool_truth: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Per budget: teacher retrained on the kept editor labels, student with and without its pseudo-labels.

    With ``seeds`` > 1 each student is trained that many times (seeds 0..n-1) and the figures are the
    mean, with the F1's standard deviation: on a few dozen labelled videos one run's luck is as large
    as the effect being measured.
    """
    from ml.catalog.videos import video_rows
    from ml.text.features import CachedEncoder, get_encoder, prepare_records
    from ml.text.model import train_text_model
    from ml.text.pseudo_labels import make_pseudo_labels, select_thresholds
    from ml.visual.targets import TargetPolicy, pseudo_targets

    settings = ctx.settings
    say = progress or (lambda msg: None)
    rows = [r for r in video_rows(catalog) if r["video_id"] not in ctx.held_out]
    prepared = prepare_records(rows, max_chars=settings.text_max_chars)
    with_text = [(r["video_id"], p.text) for r, p in zip(rows, prepared, strict=True) if p.has_text]
    say(f"encoding {len(with_text)} texts (and their segments) once for every budget")
    encoder = CachedEncoder(get_encoder(settings.text_encoder))
    text_of = dict(with_text)
    policy = TargetPolicy.from_settings(settings)
    out: dict[str, Any] = {"categories": len(ctx.categories), "budgets": {}}
    for b in budgets:
        if not 0 < b <= 1:
            raise ValueError(f"a label budget is a share of the editor labels in (0, 1], got {b}")
        kept = {v: t for v, t in ctx.editor.items() if budget_position(v) < b}
        entry: dict[str, Any] = {"editor_videos": len(kept)}
        say(f"budget {b:g}: {len(kept)} editor-labelled videos")
        text_ids = [v for v in kept if v in text_of]
        pseudo: tuple[dict, dict] = ({}, {})
        text_probs: dict[str, np.ndarray] = {}
        text_min = max(2, round(settings.text_min_positives * b))
        try:
            guard_of(ctx)(text_ids, f"the label-budget teacher at {b:g}")
            teacher = train_text_model(
                [text_of[v] for v in text_ids],
                np.stack([kept[v] for v in text_ids]),
                ctx.categories,
                encoder=encoder,
                min_positives=text_min,
                min_negatives=text_min,
            )
            pool = [v for v in text_of if v not in kept]
            probs = (
                teacher.predict_proba([text_of[v] for v in pool]) if pool else np.zeros((0, len(teacher.categories)))
            )
            cuts = select_thresholds(
                teacher.heldout_scores,
                teacher.heldout_labels,
                teacher.categories,
                settings.pseudo_label_policy(),
                pooled=bool(teacher.params.get("pooled_calibration")),
            )
            column = {c: j for j, c in enumerate(teacher.categories)}
            pick = np.array([column.get(c, -1) for c in ctx.categories])
            text_probs = {
                v: np.where(pick >= 0, row[np.maximum(pick, 0)], np.nan).astype(np.float32)
                for v, row in zip(pool, probs, strict=True)
            }
            table = make_pseudo_labels(
                pool, probs, teacher.categories, cuts, negative_max_score=settings.pseudo_label_negative_max_score
            )
            pseudo = pseudo_targets(
                table[["video_id", "category_id", "target", "weight", "kind"]].itertuples(index=False, name=None),
                ctx.categories,
                policy,
            )
            entry["teacher_categories"] = len(teacher.categories)
            entry["pseudo_labelled_videos"] = len(pseudo[0])
            if pool_truth:  # measured on the pool's true labels, read from the demo's ground truth only here
                entry["teacher on pool"] = teacher_on_pool(
                    probs, cuts[0].threshold if cuts else None, pool, teacher.categories, pool_truth
                )
                try:
                    plain = train_text_model(
                        [text_of[v] for v in text_ids],
                        np.stack([kept[v] for v in text_ids]),
                        ctx.categories,
                        encoder=encoder,
                        head="logreg",
                        min_positives=text_min,
                        min_negatives=text_min,
                    )
                    plain_cuts = select_thresholds(
                        plain.heldout_scores, plain.heldout_labels, plain.categories, settings.pseudo_label_policy()
                    )
                    plain_probs = plain.predict_proba([text_of[v] for v in pool])
                    entry["teacher without prior on pool"] = teacher_on_pool(
                        plain_probs,
                        np.array([c.threshold if c.enabled else np.inf for c in plain_cuts]),
                        pool,
                        plain.categories,
                        pool_truth,
                    )
                except ValueError as exc:
                    entry["teacher without prior on pool"] = {"error": str(exc)}
        except HeldOutLeak:
            raise
        except ValueError as exc:  # too few labels for any text head at this budget
            entry["teacher_error"] = str(exc)
        # The guards scale with the budget: a catalog with a tenth of the labels is studied, not refused.
        scaled = settings.with_overrides(visual_min_positives=max(2, round(settings.visual_min_positives * b)))
        ctx_b = replace(ctx, settings=scaled)
        config = _student_config(settings)
        entry["min_positives"] = {"teacher": text_min, "student": scaled.visual_min_positives}
        entry["editor only"] = _student_runs(ctx_b, kept, ({}, {}), replace(policy, pseudo_labels=False), config, seeds)
        entry["editor + pseudo-labels"] = _student_runs(
            ctx_b, kept, pseudo, replace(policy, pseudo_labels=True), config, seeds, text_probs
        )
        entry["baseline"] = score_baseline(ctx, kept)
        if pool_truth:  # what perfect pseudo-labels would give the same regression: the ceiling
            index = {c: j for j, c in enumerate(ctx.categories)}
            oracle = dict(kept)
            for v, labels in pool_truth.items():
                if v not in ctx.held_out and v not in oracle:
                    y = np.zeros(len(ctx.categories), np.float32)
                    y[[index[c] for c in labels if c in index]] = 1.0
                    oracle[v] = y
            entry["baseline, pool's true labels"] = score_baseline(ctx, oracle)
        out["budgets"][f"{b:g}"] = entry
    return out


def format_rows(results: dict[str, dict[str, Any]], first: str = "variant") -> tuple[list[tuple], list[str]]:
    def f(x: Any) -> str:
        return "n/a" if x is None or (isinstance(x, float) and x != x) else f"{x:.3f}"

    rows = []
    for name, m in results.items():
        if "error" in m:
            rows.append((name, "", "error: " + m["error"][:80], "", "", "", "", "", ""))
            continue
        nt = m.get("no_text", {})
        f1 = f(m["f1"]) + (f" ± {m['f1_sd']:.3f} ({m['seeds']} seeds)" if "f1_sd" in m else "")
        rows.append(
            (
                name,
                f(m.get("gold_gap_at_20")),
                f(m["coverage"]),
                f(m["precision"]),
                f(m["recall"]),
                f1,
                f(m.get("gap_at_20")),
                f(nt.get("coverage")),
                f(nt.get("f1")),
            )
        )
    head = [first, "gold GAP@20 (choose on this)", "coverage", "precision", "recall", "F1", "GAP@20"]
    return rows, [*head, "no-text coverage", "no-text F1"]
