"""The label budget (``vidcat eval-visual --label-budget 1.0,0.3,0.1``): the seed's thesis measured.

In production a few thousand human labels face millions of videos, which is why pseudo-labels exist.
For each budget the editor-labelled videos are subsampled by a hash of their id (nested: the 10%
are inside the 30%), the teacher is retrained on the kept ones, it pseudo-labels every other
trainable video with text (the dropped editor videos included, their labels hidden), and the
student is trained with and without those pseudo-labels, each scored on the locked test as
``ml/evaluation/student.py`` scores it. The demo catalog itself is unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ml.catalog.holdout import HeldOutLeak
from ml.catalog.store import Catalog
from ml.errors import InvalidInput
from ml.evaluation.student import (
    EvalContext,
    baseline_row,
    guard_of,
    mean_figures,
    student_config,
    train_and_score,
)

BUDGET_SALT = "vidcat-label-budget-v1"


def budget_position(video_id: str) -> float:
    digest = hashlib.sha256(f"{BUDGET_SALT}\x00{video_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _over_seeds(run, seeds: int) -> dict[str, Any]:
    """``run(seed)`` for each seed: every figure the mean over the seeds that trained, F1's spread beside it.

    A seed that could not train (its result holds ``error``) is counted out, never copied into the row:
    ``seeds`` says how many seeds the means are over, ``failed_seeds`` how many were left out. Only
    when every seed failed is the row the first error. Figures one run cannot average (the failing
    categories of a single seed) are dropped when more than one seed counts, so nothing printed beside
    a mean comes from seed 0 alone. A spread needs two seeds: with one left there is no ``f1_sd``
    (a 0.000 would read as a stable result).
    """
    results = [run(seed) for seed in range(seeds)]
    ok = [r for r in results if "error" not in r]
    if not ok:
        return dict(results[0])
    out = mean_figures(ok)
    if seeds > 1:
        f1 = np.array([r["f1"] for r in ok], dtype=np.float64)
        if len(f1) > 1:
            out["f1_sd"] = float(f1.std(ddof=1))
        out["seeds"] = len(ok)
        if len(ok) < seeds:
            out["failed_seeds"] = seeds - len(ok)
    return out


def _student_runs(
    ctx: EvalContext, kept, pseudo, policy, config, seeds: int, text_probs=None, abstentions: list | None = None
) -> dict[str, Any]:
    """The student trained with each seed, its figures averaged; each run's out-of-distribution abstentions
    appended to ``abstentions`` (the baselines' certified rows are silent where the student was)."""

    def run(seed: int) -> dict[str, Any]:
        result = train_and_score(ctx, kept, pseudo, policy, replace(config, seed=seed), text_probs)
        flagged = result.pop("abstained", None)
        if abstentions is not None and flagged is not None:
            abstentions.append(flagged)
        return result

    return _over_seeds(run, seeds)


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

    With ``seeds`` > 1 each student is trained that many times (seeds 0..n-1) and every figure is the
    mean over the seeds that trained, with the F1's standard deviation: on a few dozen labelled videos
    one run's luck is as large as the effect being measured.
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
            raise InvalidInput(f"a label budget is a share of the editor labels in (0, 1], got {b}")
        kept = {v: t for v, t in ctx.editor.items() if budget_position(v) < b}
        entry: dict[str, Any] = {"editor_videos": len(kept)}
        say(f"budget {b:g}: {len(kept)} editor-labelled videos")
        text_ids = [v for v in kept if v in text_of]
        pseudo: tuple[dict, dict] = ({}, {})
        text_probs: dict[str, np.ndarray] = {}
        # Only the comparison's per-category heads need a minimum; the teacher (prior head) covers all.
        text_min = max(2, round(settings.text_min_positives * b))
        try:
            guard_of(ctx)(text_ids, f"the label-budget teacher at {b:g}")
            teacher = train_text_model(
                [text_of[v] for v in text_ids],
                np.stack([kept[v] for v in text_ids]),
                ctx.categories,
                encoder=encoder,
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
        config = student_config(settings)
        # The teacher (prior head) takes no minimum: ``text_min`` applies to its comparison head only.
        entry["min_positives"] = {"teacher without prior": text_min, "student": scaled.visual_min_positives}
        entry["editor only"] = _student_runs(ctx_b, kept, ({}, {}), replace(policy, pseudo_labels=False), config, seeds)
        abstentions: list[list[str]] = []
        entry["editor + pseudo-labels"] = _student_runs(
            ctx_b, kept, pseudo, replace(policy, pseudo_labels=True), config, seeds, text_probs, abstentions
        )
        entry["baseline"] = baseline_row(ctx, kept, abstentions)
        if pool_truth:  # what perfect pseudo-labels would give the same regression: the ceiling
            index = {c: j for j, c in enumerate(ctx.categories)}
            oracle = dict(kept)
            for v, labels in pool_truth.items():
                if v not in ctx.held_out and v not in oracle:
                    y = np.zeros(len(ctx.categories), np.float32)
                    y[[index[c] for c in labels if c in index]] = 1.0
                    oracle[v] = y
            entry["baseline, pool's true labels"] = baseline_row(ctx, oracle, abstentions)
        out["budgets"][f"{b:g}"] = entry
    return out
