"""The one evaluation everybody trusts: the locked test, which nothing trains, tunes or chooses on.

Protocol (docs/fusion.md):
- production: a fixed, hashed share of the gold set (``vidcat import-gold --test-share``), recorded
  in ``locked_test``; thresholds, the stacker and the rule choice are fitted on the rest of gold only;
- demo: the videos nobody labelled, against the synthetic ground truth (their labels never enter
  the catalog, so nothing can fit on them).
Neither the teacher, its pseudo-label cuts, the student nor its self-training sees these videos
(``ml/catalog/holdout.py`` enforces it).

The report scores the same stored source scores the batch path fuses, with the same decisions:
text alone under its thresholds, the visual source alone under its own, and the chosen rule, beside
the strong simple baseline (``ml/visual/baseline.py``) computed in the same run. Every figure says
which videos it comes from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.catalog.holdout import HoldoutGuard, held_out_ids, student_targets, student_trained_on
from ml.catalog.labels import certification_gold, label_matrix
from ml.catalog.scores import failed_results, gold_locked_rows
from ml.catalog.store import Catalog
from ml.fusion.hierarchy import closure, information
from ml.fusion.rules import per_category_precision, rule_metrics
from ml.fusion.score_matrix import load_scores, ood_flags, text_lengths, visual_scores
from ml.fusion.stage import LoadedFusion
from ml.metrics import gap_at_k, micro_f1
from ml.thresholds import (
    ThresholdPolicy,
    out_of_fold_emitted,
    precision_interval,
    select_thresholds,
    threshold_vector,
)

SYSTEMS = ("text only", "visual only", "chosen rule", "baseline")


@dataclass
class LockedTest:
    video_ids: list[str]
    labels: dict[str, list[str]]  # video -> its true categories
    kinds: dict[str, str]  # video -> kind of text (none, full, misleading, ...)
    source: str  # where the labels come from, said in every report


def gold_locked_test(catalog: Catalog) -> LockedTest:
    """Production: the gold videos of the locked test, labelled by their gold answers."""
    rows = gold_locked_rows(catalog)
    return LockedTest(
        [r[0] for r in rows],
        {r[0]: r[1] for r in rows},
        {r[0]: "text" if r[2] else "none" for r in rows},
        "gold answers of the locked share of gold",
    )


def locked_labels(test: LockedTest, categories: list[str]) -> tuple[list[str], np.ndarray]:
    """Labels over ``categories`` plus one column per true category no model covers (always missed).

    Every locked-test figure (this report, ``vidcat eval-visual``) counts those misses: a system is not
    measured only where it chose to look.
    """
    extra = sorted({c for v in test.video_ids for c in test.labels[v]} - set(categories))
    cols = list(categories) + extra
    index = {c: j for j, c in enumerate(cols)}
    y = np.zeros((len(test.video_ids), len(cols)), bool)
    for i, v in enumerate(test.video_ids):
        for c in test.labels[v]:
            y[i, index[c]] = True
    return cols, y


def pad_columns(a: np.ndarray, width: int, fill: float | bool = False) -> np.ndarray:
    """``a`` widened to ``width`` columns with ``fill``: the columns of the categories no model covers."""
    out = np.full((a.shape[0], width), fill, dtype=a.dtype)
    out[:, : a.shape[1]] = a
    return out


def evaluate_locked_test(
    catalog: Catalog,
    fusion: LoadedFusion,
    test: LockedTest,
    shards: Sequence[Any] = (),
    min_emitted: int = 10,
    policy: ThresholdPolicy | None = None,
) -> dict[str, Any]:
    """Every system on the locked test: overall, per kind of text, and the chosen rule per category.

    ``policy`` (default: the one the fusion recorded, else the defaults) is the promise audited and the
    one the regressions' own cuts are certified under on gold, so that they are also compared with the
    product at its operating point.

    Locked videos the fusion's student learnt from (gold imported after it trained) are left out and
    counted (``student_trained_on``): its scores there are not held out.
    """
    policy = policy or fusion.policy or ThresholdPolicy()
    promise, confidence = policy.target_precision, policy.confidence
    leaked = set(test.video_ids) - held_out_ids(catalog)
    if leaked:
        raise ValueError(
            f"{len(leaked)} locked-test video(s) are not recorded as held out (e.g. {sorted(leaked)[:3]}); "
            "lock them before training, or the figures are not held out"
        )
    locked = set(test.video_ids)
    trained = student_trained_on(catalog, fusion.visual_version)
    left_out = len(locked & trained)
    if left_out:
        test = LockedTest([v for v in test.video_ids if v not in trained], test.labels, test.kinds, test.source)
    ids = list(test.video_ids)
    cats = list(fusion.categories)
    t = load_scores(catalog, "text_predictions", fusion.text_version, fusion.text_categories, ids, cats)
    v, ood = visual_scores(catalog, fusion.visual_version, fusion.visual_categories, ids, cats)
    scored = np.isfinite(
        load_scores(catalog, "visual_predictions", fusion.visual_version, fusion.visual_categories, ids, cats)
    ).any(axis=1)
    chars = text_lengths(catalog, fusion.text_version, ids)
    d = fusion.model.decide(t, v, chars)
    failed = failed_results(catalog, fusion.version, ids)
    served = np.array([vid not in failed for vid in ids])[:, None]
    cols, y = locked_labels(test, cats)
    emitted = {
        "text only": pad_columns(d.text_fired & served, len(cols)),
        "visual only": pad_columns(d.visual_fired & served, len(cols)),
        "chosen rule": pad_columns(d.emitted & served, len(cols)),
    }
    scores = {"text only": t, "visual only": fusion.model.calibrate_visual(v), "chosen rule": d.score}
    report: dict[str, Any] = {
        "labels": test.source,
        "videos": len(ids),
        "student_trained_on": left_out,
        "rule": fusion.model.rule,
        "fusion_version": fusion.version,
        "out_of_distribution": {
            "flagged": int(ood.sum()),
            "scored": int(scored.sum()),
            "share": float(ood.sum() / scored.sum()) if scored.sum() else 0.0,
        },
    }
    baseline_note = None
    if shards:
        from ml.visual.baseline import baseline_scores

        train = _baseline_training_labels(catalog, cats)
        guard = HoldoutGuard(catalog)
        # Gold is scored beside the test: the ranking there is what a choice between the student and a
        # regression may be made on (the locked test only reports).
        gold_ids, gold_y, _ = certification_gold(catalog, cats, fusion.visual_version)
        gold = GoldRanking(gold_ids, gold_y, catalog, fusion, cats)
        probs, n_train = baseline_scores(list(shards), train, cats, ids + gold_ids, guard=guard)
        if probs:
            b = np.stack([probs.get(vid, np.zeros(len(cats))) for vid in ids])
            emitted["baseline"] = pad_columns((b >= 0.5) & served, len(cols))
            scores["baseline"] = b
            gold.add("baseline", probs)
            baseline_note = f"trained on {n_train} editor-labelled videos (no held-out video), cut 0.5"
            judged = served & ~ood[:, None]  # at the promise, abstaining where the student abstains
            _add_certified(emitted, scores, "baseline", b, gold.certified_cuts("baseline", policy), judged, cols)
            pool = _student_pool_targets(catalog, fusion.visual_version, cats)
            if pool:
                both = {**{v: t for v, t in pool.items() if v not in train}, **train}
                probs, n_both = baseline_scores(list(shards), both, cats, ids + gold_ids, guard=guard)
                b = np.stack([probs.get(vid, np.zeros(len(cats))) for vid in ids])
                emitted["baseline + pseudo-labels"] = pad_columns((b >= 0.5) & served, len(cols))
                scores["baseline + pseudo-labels"] = b
                gold.add("baseline + pseudo-labels", probs)
                cuts = gold.certified_cuts("baseline + pseudo-labels", policy)
                _add_certified(emitted, scores, "baseline + pseudo-labels", b, cuts, judged, cols)
                report["baseline_pseudo"] = (
                    f"the same regression on the {n_train} editor videos and the student's {n_both - n_train} "
                    "pool targets (cut at 0.5): the student's data without its architecture"
                )
        report["gold_ranking"] = gold.figures
        report["gold_at_promise"] = gold.at_the_promise(policy)
    report["baseline"] = baseline_note

    kinds = [test.kinds.get(vid, "?") for vid in ids]
    systems: dict[str, Any] = {}
    for name, e in emitted.items():
        s = np.full(e.shape, np.nan)
        s[:, : len(cats)] = scores[name]
        entry = {"all": rule_metrics(e, s, y, promise=promise, min_emitted=min_emitted, categories=cols)}
        for k in sorted(set(kinds)):
            ix = [i for i, kk in enumerate(kinds) if kk == k]
            entry[k] = {"videos": len(ix), **rule_metrics(e[ix], s[ix], y[ix])}
        systems[name] = entry
    report["systems"] = systems

    audited: dict[str, tuple] = {
        "text": (emitted["text only"], [t.enabled for t in fusion.model.text_thresholds]),
        "visual": (emitted["visual only"], [t.enabled for t in fusion.model.visual_thresholds]),
    }
    if d.fused_fired is not None and fusion.model.fused_thresholds is not None:
        # The fused thresholds are certified too (a source of the promise): audited on what they decide.
        fused = pad_columns(d.fused_fired & served, len(cols))
        audited["fused"] = (fused, [x.enabled for x in fusion.model.fused_thresholds])
    backoff = fusion.model.backoff
    if backoff is not None and d.nodes is not None:
        tree = backoff.tree
        truth = pad_columns(closure(y[:, : len(cats)], tree), len(cols)) | y
        nodes = np.zeros((len(ids), len(cols)), bool)
        enabled = [False] * len(cols)
        for k, col in enumerate(tree.node_columns):
            nodes[:, col] = d.nodes[:, k] & served[:, 0]
            enabled[col] = backoff.thresholds[k].enabled
        audited["backoff"] = (nodes, enabled, truth)
        no_text = np.array([kk == "none" for kk in kinds])
        leaves, said = d.emitted & served, d.said() & served
        report["hierarchy"] = {
            "combiner": backoff.combiner,
            "certified_nodes": int(sum(enabled)),
            "rows": {
                name: {
                    "all": information(m, y[:, : len(cats)], tree),
                    "no text": information(m[no_text], y[no_text, : len(cats)], tree),
                }
                for name, m in (("leaves only", leaves), ("leaves + back-off", said))
            },
        }
    report["audit"] = promise_audit(audited, y, cols, promise, confidence)
    n, tp, prec = per_category_precision(emitted["chosen rule"], y)
    report["per_category"] = [
        {
            "category_id": c,
            "positives": int(y[:, j].sum()),
            "emitted": int(n[j]),
            "true_positives": int(tp[j]),
            "precision": None if n[j] == 0 else float(prec[j]),
            "interval_95": None if n[j] == 0 else list(precision_interval(int(tp[j]), int(n[j]), 0.95)),
            "recall": float(tp[j] / y[:, j].sum()) if y[:, j].sum() else None,
        }
        for j, c in enumerate(cols)
    ]
    return report


def promise_audit(
    sources: dict[str, tuple[np.ndarray, list[bool]] | tuple[np.ndarray, list[bool], np.ndarray]],
    y: np.ndarray,
    categories: list[str],
    promise: float,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """The promise checked on videos it never saw: per source and certified category, the precision
    with its one-sided Clopper-Pearson bounds, and how many certified categories fell below ``promise``
    against how many ``confidence`` allows. A source may bring its own truth as a third item (back-off
    parents are right when the truth holds them or a descendant).

    Each certified (category, source) holds with probability at least ``confidence``; so among K of
    them, up to the ``confidence`` quantile of Binomial(K, 1 - confidence) may truly miss. A miss is
    counted two ways: the precision measured here below the promise (noisy on a few emissions), and
    the upper bound below it (evidence of a miss).
    """
    from scipy.stats import binom

    from ml.thresholds import clopper_pearson_lower

    rows, certified, below, evidence = [], 0, 0, 0
    for source, item in sources.items():
        emitted, enabled = item[0], item[1]
        n, tp, prec = per_category_precision(emitted, item[2] if len(item) > 2 else y)
        for j, ok in enumerate(enabled):
            if not ok:
                continue
            certified += 1
            if n[j] == 0:
                rows.append({"source": source, "category_id": categories[j], "emitted": 0})
                continue
            low = clopper_pearson_lower(int(tp[j]), int(n[j]), confidence)
            high = 1.0 - clopper_pearson_lower(int(n[j] - tp[j]), int(n[j]), confidence)
            below += int(prec[j] < promise)
            evidence += int(high < promise)
            rows.append(
                {
                    "source": source,
                    "category_id": categories[j],
                    "emitted": int(n[j]),
                    "true_positives": int(tp[j]),
                    "precision": float(prec[j]),
                    "lower_bound": float(low),
                    "upper_bound": float(high),
                }
            )
    allowed = int(binom.ppf(confidence, certified, 1 - confidence)) if certified else 0
    return {
        "promise": promise,
        "confidence": confidence,
        "certified": certified,
        "below_promise": below,
        "evidence_below_promise": evidence,
        "allowed": allowed,
        "holds": evidence <= allowed,
        "rows": rows,
    }


class GoldRanking:
    """GAP@20 on the certification gold of the student and of each regression, over the gold videos the
    student scored: the figure a choice between them is made on (the locked test only reports).

    All three over the fusion's categories: a category the student has no head for counts against it, as
    it does in what the product emits (the training's own gold figure covers the student's heads only).
    """

    def __init__(self, gold_ids: list[str], gold_y: np.ndarray, catalog: Catalog, fusion: LoadedFusion, cats) -> None:
        student = load_scores(
            catalog, "visual_predictions", fusion.visual_version, fusion.visual_categories, gold_ids, cats
        )
        self.keep = np.isfinite(student).any(axis=1)
        self.ids = [g for g, k in zip(gold_ids, self.keep, strict=True) if k]
        self.y = gold_y[self.keep]
        self.figures: dict[str, float] = {}
        self.scores: dict[str, np.ndarray] = {}
        # At the operating point every scorer abstains where the student's out-of-distribution detector
        # does, as the product does: the comparison is then over the videos the student judged.
        self.abstain = ood_flags(catalog, fusion.visual_version, self.ids)[0] if fusion.visual_version else None
        if self.ids:
            self.scores["student"] = student[self.keep]
            self.figures["student"] = gap_at_k(np.nan_to_num(student[self.keep]), self.y)

    def add(self, name: str, probs: dict[str, np.ndarray]) -> None:
        if self.ids and all(g in probs for g in self.ids):
            self.scores[name] = np.stack([probs[g] for g in self.ids])
            self.figures[name] = gap_at_k(self.scores[name], self.y)

    def at_the_promise(self, policy: ThresholdPolicy | None) -> dict[str, float]:
        """Micro F1 of each scorer under cuts certified out of fold on this gold (``out_of_fold_emitted``):
        the comparison at the product's operating point that a choice may be made on."""
        if policy is None:
            return {}
        return {name: micro_f1(out_of_fold_emitted(self._judged(name), self.y, policy), self.y) for name in self.scores}

    def certified_cuts(self, name: str, policy: ThresholdPolicy | None) -> np.ndarray | None:
        """Per-category cuts for ``name``'s scores certified on these gold videos under ``policy``, the way
        the student's are (+inf where no cut holds): the regression at the product's operating point."""
        if policy is None or name not in self.scores:
            return None
        return threshold_vector(select_thresholds(self._judged(name), self.y, policy))

    def _judged(self, name: str) -> np.ndarray:
        """``name``'s gold scores, blank where the student abstained."""
        s = np.array(self.scores[name], dtype=np.float64)
        if self.abstain is not None:
            s[self.abstain] = np.nan
        return s


def _add_certified(
    emitted: dict[str, np.ndarray],
    scores: dict[str, np.ndarray],
    name: str,
    probs: np.ndarray,
    cuts: np.ndarray | None,
    served: np.ndarray,
    cols: list[str],
) -> None:
    """A regression's row under the promise: its own cuts certified on the gold the student's were, and
    silent on the videos ``served`` leaves out (the student's abstentions too), so that it is compared
    with the product at the same held precision and on the same videos, not only at a cut of 0.5."""
    if cuts is None:
        return
    emitted[f"{name}, certified"] = pad_columns((probs >= cuts) & served, len(cols))
    scores[f"{name}, certified"] = probs


def _student_pool_targets(catalog: Catalog, visual_version: str, categories: list[str]) -> dict[str, np.ndarray]:
    """The pool targets (pseudo and self) the student learnt from, hardened at 0.5, over ``categories``."""
    learnt = student_targets(catalog, visual_version)
    if learnt is None:
        return {}
    held_out = held_out_ids(catalog)
    pool = [
        i
        for i, (v, src) in enumerate(zip(learnt.video_ids, learnt.sources, strict=True))
        if src != "editor" and v not in held_out
    ]
    return hardened_targets(
        [learnt.video_ids[i] for i in pool], [learnt.targets[i] for i in pool], learnt.categories, categories
    )


def hardened_targets(
    video_ids: Sequence[str], rows: Sequence[np.ndarray], learnt: Sequence[str], categories: Sequence[str]
) -> dict[str, np.ndarray]:
    """A student's targets (``rows`` over its ``learnt`` categories) as 0/1 over ``categories``, cut at 0.5:
    what the regression learns from. Unknown (NaN) and a category the student did not learn read as 0."""
    index = {c: j for j, c in enumerate(learnt)}
    pick = [index.get(c) for c in categories]
    return {
        v: np.array([0.0 if j is None else float(row[j] >= 0.5) for j in pick], np.float32)
        for v, row in zip(video_ids, rows, strict=True)
    }


def _baseline_training_labels(catalog: Catalog, categories: list[str]) -> dict[str, np.ndarray]:
    """Editor labels of exhaustively labelled, trainable videos: what the baseline may learn from."""
    ids, y = label_matrix(catalog, "editor", categories, exclude=set(held_out_ids(catalog)))
    return {v: y[i] for i, v in enumerate(ids)}


def format_report(report: dict[str, Any], names: dict[str, str] | None = None) -> str:
    """Markdown tables: systems overall and by kind of text, then the chosen rule per category."""
    from ml.catalog.summary import md_table

    def f(x: Any) -> str:
        return "n/a" if x is None or (isinstance(x, float) and x != x) else f"{x:.3f}"

    rows = []
    for name, entry in report["systems"].items():
        label = f"{name} ({report['rule']})" if name == "chosen rule" else name
        for kind, m in entry.items():
            videos = report["videos"] if kind == "all" else m["videos"]
            rows.append(
                (
                    label if kind == "all" else "",
                    kind,
                    videos,
                    f(m["coverage"]),
                    f"{m['categories_per_video']:.2f}",
                    f(m["precision"]),
                    f(m["recall"]),
                    f(m["f1"]),
                )
            )
    ood = report["out_of_distribution"]
    lines = [
        f"Locked test: {report['videos']} videos, labels from {report['labels']}; never used for training, "
        f"thresholds or the rule choice. Out of distribution: {ood['flagged']} of {ood['scored']} "
        f"({ood['share']:.1%})."
        + (
            f" {report['student_trained_on']} locked video(s) left out: the visual model learnt from them "
            "(gold imported after it trained; retrain the student to score them)."
            if report.get("student_trained_on")
            else ""
        ),
        md_table(rows, ["system", "text", "videos", "coverage", "categories/video", "precision", "recall", "F1"]),
    ]
    if report.get("baseline"):
        lines.append(f"baseline: one-vs-rest logistic regression on mean+max pooled frames, {report['baseline']}")
    if report.get("baseline_pseudo"):
        lines.append(f"baseline + pseudo-labels: {report['baseline_pseudo']}")
    if report.get("gold_ranking"):
        ranked = ", ".join(f"{name} {gap:.3f}" for name, gap in report["gold_ranking"].items())
        lines.append(f"ranking on the certification gold (GAP@20; the aggregator is chosen on this): {ranked}")
    if report.get("gold_at_promise"):
        held = ", ".join(f"{name} {f1:.3f}" for name, f1 in report["gold_at_promise"].items())
        lines.append(f"F1 on the certification gold under cuts certified on the other folds (5 folds): {held}")
    hierarchy = report.get("hierarchy")
    if hierarchy:
        lines += ["", format_hierarchy(hierarchy)]
    audit = report.get("audit")
    if audit:
        lines += ["", format_audit(audit, names)]
    cat_rows = []
    for r in report["per_category"]:
        if not (r["positives"] or r["emitted"]):  # a working-set category the test has nothing about
            continue
        name = (names or {}).get(r["category_id"], r["category_id"])
        interval = r["interval_95"]
        cat_rows.append(
            (
                r["category_id"],
                name,
                r["positives"],
                r["emitted"],
                f(r["precision"]),
                "" if interval is None else f"[{interval[0]:.2f}, {interval[1]:.2f}]",
                f(r["recall"]),
            )
        )
    lines += [
        "",
        "Chosen rule per category on the locked test, categories it has or emits (precision with its 95% "
        "Wilson interval):",
        md_table(cat_rows, ["id", "category", "positives", "emitted", "precision", "95% interval", "recall"]),
    ]
    return "\n".join(lines)


def format_hierarchy(hierarchy: dict[str, Any]) -> str:
    """Leaves only against leaves plus back-off: information at held precision, side by side."""
    from ml.catalog.summary import md_table

    rows = [
        (
            name if kind == "all" else "",
            kind,
            m["videos"],
            "n/a" if m["coverage"] != m["coverage"] else f"{m['coverage']:.3f}",
            "n/a" if m["node_precision"] != m["node_precision"] else f"{m['node_precision']:.3f}",
            m["said"],
            "n/a" if m["mean_tier"] != m["mean_tier"] else f"{m['mean_tier']:.2f}",
        )
        for name, entry in hierarchy["rows"].items()
        for kind, m in entry.items()
    ]
    head = (
        f"Back-off to parent categories ({hierarchy['certified_nodes']} parents certified on gold, node score "
        f"{hierarchy['combiner']}); a category said is right when the truth holds it or a descendant:"
    )
    return head + "\n" + md_table(rows, ["system", "text", "videos", "coverage", "node precision", "said", "mean tier"])


def format_audit(audit: dict[str, Any], names: dict[str, str] | None = None) -> str:
    """The promise audit as text: the verdict line, then one row per certified (category, source)."""
    from ml.catalog.summary import md_table
    from ml.thresholds import percent

    names = names or {}
    # Stated from the audit's own confidence: the fixture and other policies do not audit at 95%.
    conf, target = percent(audit["confidence"]), percent(audit["promise"])
    head = (
        f"Promise audit on the locked test: {audit['certified']} certified (category, source) pairs; "
        f"{audit['below_promise']} measured below {target}, {audit['evidence_below_promise']} "
        f"with their one-sided {conf} upper bound below it; {conf} confidence "
        f"allows {audit['allowed']}: {'holds' if audit['holds'] else 'DOES NOT HOLD'}"
    )
    rows = [
        (
            r["source"],
            r["category_id"],
            names.get(r["category_id"], ""),
            r["emitted"],
            "n/a" if "precision" not in r else f"{r['precision']:.3f}",
            "" if "precision" not in r else f"[{r['lower_bound']:.2f}, {r['upper_bound']:.2f}]",
        )
        for r in audit["rows"]
    ]
    bounds = f"one-sided {conf} Clopper-Pearson bounds"
    table = md_table(rows, ["source", "id", "category", "emitted", "precision", bounds])
    return head + "\n" + table
