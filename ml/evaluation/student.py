"""The visual student measured on the locked test: the evaluation context, one variant trained and
scored, the baseline beside it, and each ingredient of the recipe switched off alone (``ablation``).

Every variant is trained exactly as the pipeline trains it (``fit_student``: same targets, same
held-out exclusion, same self-training check), its per-category thresholds are fitted on the
certification share of gold as the fusion stage fits them, and it is scored on the locked test that
none of this saw. The strong simple baseline (``ml/visual/baseline.py``) is trained on the same
editor labels in the same run. Architectures are compared in ``ml/evaluation/architectures.py``,
label budgets in ``ml/evaluation/label_budget.py``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ml.catalog.holdout import HoldoutGuard, held_out_ids
from ml.catalog.labels import certification_matrix, label_matrix
from ml.catalog.scores import labelled_categories
from ml.catalog.store import Catalog
from ml.evaluation.locked import LockedTest, hardened_targets, locked_labels, pad_columns
from ml.fusion.rules import rule_metrics
from ml.thresholds import ThresholdPolicy, out_of_fold_emitted, select_thresholds, threshold_vector


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
    # Over ``categories`` then one column per true category none of them covers: always missed, counted
    # as the locked report counts them (``locked_labels``).
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
    _, test_y = locked_labels(test, categories)
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


def score_student(ctx: EvalContext, model_dir: Path, categories: list[str]) -> tuple[dict[str, Any], set[str]]:
    """Thresholds on certification gold, figures on the locked test (visual source alone, abstentions
    applied); and the videos its out-of-distribution detector abstained on."""
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
    figures = _certified_figures(ctx, g, t) | {
        "gap_at_20": float(gap_at_k(np.nan_to_num(t, nan=-1.0), ctx.test_y, 20)),
        "gold_gap_at_20": float(gap_at_k(np.nan_to_num(g, nan=-1.0), ctx.certify_y, 20)),
    }
    return figures, {v for v, (_, flagged) in scored.items() if flagged}


def _certified_figures(ctx: EvalContext, gold: np.ndarray, test: np.ndarray) -> dict[str, Any]:
    """Locked-test figures under cuts certified on the certification gold, and the gold's own figure at
    the promise (cuts certified on the other folds): the figures a choice may be made on are gold's."""
    cuts = threshold_vector(select_thresholds(gold, ctx.certify_y, ctx.policy))
    with np.errstate(invalid="ignore"):
        emitted = np.where(np.isfinite(test), test >= cuts[None, :], False)
    emitted, test = _widen(ctx, emitted, test)
    return _figures(ctx, emitted, test) | {"gold_f1_at_promise": gold_f1_at_promise(ctx, gold)}


def gold_f1_at_promise(ctx: EvalContext, gold: np.ndarray) -> float:
    """Micro F1 on the certification gold under cuts certified on its other folds (5 folds)."""
    from ml.metrics import micro_f1

    return micro_f1(out_of_fold_emitted(gold, np.asarray(ctx.certify_y) >= 0.5, ctx.policy), ctx.certify_y)


def _widen(ctx: EvalContext, emitted: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Calls and scores over the test's columns: nothing emitted, no score where no category is learnt."""
    width = ctx.test_y.shape[1]
    return pad_columns(emitted, width, False), pad_columns(score.astype(np.float64), width, np.nan)


def _figures(ctx: EvalContext, emitted: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    out = rule_metrics(emitted, score, ctx.test_y, promise=ctx.settings.target_precision)
    none = [i for i, v in enumerate(ctx.test.video_ids) if ctx.test.kinds.get(v) == "none"]
    if none:
        m = rule_metrics(emitted[none], score[none], ctx.test_y[none])
        out["no_text"] = {k: m[k] for k in ("coverage", "precision", "recall", "f1")} | {"videos": len(none)}
    return out


def fit_baseline(ctx: EvalContext, labels: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
    """The regression fitted on ``labels``: its probabilities on the locked test and the certification
    gold, and how many videos it trained on."""
    from ml.visual.baseline import baseline_scores

    ids = list(ctx.test.video_ids) + list(ctx.certify_ids)
    return baseline_scores(ctx.shards, labels, ctx.categories, ids, guard=guard_of(ctx))


def score_baseline(
    ctx: EvalContext,
    editor: dict[str, np.ndarray],
    abstain: Iterable[str] = (),
    *,
    fitted: tuple[dict[str, np.ndarray], int] | None = None,
) -> dict[str, Any]:
    """The regression at its 0.5 cut, and under ``certified``: at cuts certified on gold as the student's
    are, so that the two are compared at the same held precision too.

    ``abstain``: videos given no score, everywhere (a student's out-of-distribution abstentions, so that
    its regression is compared on the videos the student judged: without them the regression reads as
    up to 0.03 GAP@20 ahead on gold when it is not). ``fitted``: ``fit_baseline``'s result, to score one
    fit under several abstentions.
    """
    from ml.metrics import gap_at_k

    probs, n_train = fitted if fitted is not None else fit_baseline(ctx, editor)

    blank = np.full(len(ctx.categories), np.nan)
    skipped = set(abstain)

    def matrix(wanted: Sequence[str]) -> np.ndarray:
        return np.stack([blank if v in skipped else probs.get(v, blank) for v in wanted])

    t, g = matrix(ctx.test.video_ids), matrix(ctx.certify_ids)
    certified = _certified_figures(ctx, g, t)
    with np.errstate(invalid="ignore"):
        emitted = np.where(np.isfinite(t), t >= 0.5, False)
    ranking = {
        "gap_at_20": float(gap_at_k(np.nan_to_num(t, nan=-1.0), ctx.test_y, 20)),
        "gold_gap_at_20": float(gap_at_k(np.nan_to_num(g, nan=-1.0), ctx.certify_y, 20)),
    }
    emitted, t = _widen(ctx, emitted, t)
    return _figures(ctx, emitted, t) | ranking | {"train_videos": n_train, "certified": certified | ranking}


def baseline_row(
    ctx: EvalContext, labels: dict[str, np.ndarray], abstentions: Sequence[Iterable[str]] = ()
) -> dict[str, Any]:
    """A baseline as the tables print it: at its 0.5 cut on every video (the 20-line model as it is),
    and ``certified`` at the product's operating point, silent where the student abstains.

    ``abstentions``: the out-of-distribution abstentions of each student run it is read against; the
    certified figures are then the mean over those runs, each silent where that run's detector
    abstained, as the product (and the locked-test report's certified rows) give the visual source
    nothing there. Scoring every video there instead credits the regression with videos the student
    was not allowed to judge. Without runs, it scores every video.
    """
    fitted = fit_baseline(ctx, labels)
    row = score_baseline(ctx, labels, fitted=fitted)
    runs = [set(a) for a in abstentions]
    if runs:
        row["certified"] = mean_figures([score_baseline(ctx, labels, a, fitted=fitted)["certified"] for a in runs])
        row["certified"]["abstaining_with"] = f"{len(runs)} student run(s)"
    return row


def mean_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of every number the runs share (nested dicts too), NaN-aware; one run is itself.

    A figure some runs could not give (precision where a seed emitted nothing is NaN) is the mean over
    those that gave it, and ``<figure>_seeds`` says how many did: beside F1 and recall (over every
    seed) it is a mean over fewer, luckier runs.
    """
    if len(runs) == 1:
        return dict(runs[0])
    out: dict[str, Any] = {}
    for k in runs[0]:
        values = [r.get(k) for r in runs]
        if all(isinstance(v, dict) for v in values):
            out[k] = mean_figures(values)
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            x = np.array(values, dtype=np.float64)
            given = int((~np.isnan(x)).sum())
            out[k] = float(np.nanmean(x)) if given else float("nan")
            if 0 < given < len(values):
                out[f"{k}_seeds"] = given
    return out


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
                ood_flag_share=settings.ood_flag_share,
                ood_k=settings.ood_k,
            )
        except NotEnoughLabels as exc:
            return {"error": str(exc)}
        figures, flagged = score_student(ctx, fit.result.model_dir, fit.categories)
    # The same regression as the baseline on this run's own targets, abstaining where the student did:
    # the data without the architecture.
    t = fit.targets
    own = hardened_targets(list(t.targets), list(t.targets.values()), t.categories, ctx.categories)
    regression = score_baseline(ctx, own, abstain=flagged)
    figures["regression on its targets"] = regression["certified"]
    return figures | {
        "abstained": sorted(flagged),
        "train_seconds": round(time.perf_counter() - started, 1),
        "targets": fit.targets.counts(),
        "self_training_accepted": fit.self_training.get("accepted_videos", 0),
        "categories_learnt": len(fit.categories),
    }


def student_config(settings, **overrides: Any):
    """The pipeline's student recipe from ``settings``, quiet, with ``overrides`` (an architecture, a seed)."""
    from ml.visual.network import VisualTrainConfig

    base = VisualTrainConfig(
        arch=settings.visual_arch,
        max_epochs=settings.visual_max_epochs,
        enable_progress_bar=False,
        augment=settings.student_augment,
    )
    return replace(base, **overrides)


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
    out = {}
    for name, (p, kw) in variants.items():
        out[name] = train_and_score(ctx, ctx.editor, catalog_pseudo, p, student_config(ctx.settings, **kw))
        out[name].pop("abstained", None)
    return out


def _with_nested_rows(results: dict[str, dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each result, then the rows it carries: a regression's figures at certified cuts, and a student
    run's regression on its own targets (certified, as the student is)."""
    for name, m in results.items():
        yield name, m
        if isinstance(m.get("certified"), dict):
            silent = ", silent where the student abstained" if m["certified"].get("abstaining_with") else ""
            yield f"{name}, certified{silent}", m["certified"]
        if isinstance(m.get("regression on its targets"), dict):
            yield f"{name}: regression on its targets, certified", m["regression on its targets"]


def format_rows(results: dict[str, dict[str, Any]], first: str = "variant") -> tuple[list[tuple], list[str]]:
    def f(x: Any) -> str:
        return "n/a" if x is None or (isinstance(x, float) and x != x) else f"{x:.3f}"

    rows = []
    for name, m in _with_nested_rows(results):
        if "error" in m:
            rows.append((name, "", "", "error: " + m["error"][:80], "", "", "", "", "", ""))
            continue
        nt = m.get("no_text", {})
        f1, precision = f(m["f1"]), f(m["precision"])
        if "seeds" in m:  # a mean over seeds: how many, and the spread when there are two or more
            counted = f"{m['seeds']} of {m['seeds'] + m['failed_seeds']}" if m.get("failed_seeds") else m["seeds"]
            f1 += (f" ± {m['f1_sd']:.3f}" if "f1_sd" in m else "") + f" ({counted} seeds)"
            if "precision_seeds" in m:  # seeds that emitted nothing have no precision to average
                precision += f" ({m['precision_seeds']} of {m['seeds']} seeds emitted)"
        rows.append(
            (
                name,
                f(m.get("gold_gap_at_20")),
                f(m.get("gold_f1_at_promise")),
                f(m["coverage"]),
                precision,
                f(m["recall"]),
                f1,
                f(m.get("gap_at_20")),
                f(nt.get("coverage")),
                f(nt.get("f1")),
            )
        )
    head = [first, "gold GAP@20 (choose on this)", "gold F1 at the promise", "coverage", "precision", "recall"]
    head += ["F1", "GAP@20"]
    return rows, [*head, "no-text coverage", "no-text F1"]
