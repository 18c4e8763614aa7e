"""Fusing the text and visual sources into final categories, and the comparison of the ways to do it.

Rules, all sharing one interface (`fit` on gold data, `decide` on any videos):
- ``text`` / ``visual``: one source alone, under its own 80%-precision thresholds;
- ``union``: a category is emitted when either source passes its own threshold (the seed design);
- ``max``: the larger of the two calibrated scores, under a threshold chosen on that fused score;
- ``stacked``: per category, a logistic regression on both calibrated logits, their product, a
  no-text and a no-visual flag and the text length, trained on gold labels; threshold chosen the same
  way on out-of-fold stacker scores. Categories with too few gold positives share one pooled model.
  The cut is certified for the cross-fitted stackers (each fitted on two thirds of the gold videos
  both sources judged) on the third it did not see; the stacker served is refit on all of them, so
  its own scores were not what was certified (docs/fusion.md says what the fused promise covers).
Scores are NaN where a source did not score a video (no usable text, frames failed to decode):
missing is a state the rules see, not a zero.

`compare_rules` measures every rule by cross-validation over the gold set (thresholds and stackers
fitted on the other folds), which is what "held-out gold data" means when the gold set is small.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ml.fusion.hierarchy import Backoff
from ml.thresholds import (
    DEFAULT_POLICY,
    Threshold,
    ThresholdPolicy,
    cv_splits,
    min_emitted,
    select_thresholds,
    threshold_vector,
)

RULES = ("text", "visual", "union", "max", "stacked")
EPS = 1e-4
MIN_POSITIVES_PER_CATEGORY_MODEL = 6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _present(x: np.ndarray) -> np.ndarray:
    return np.isfinite(x)


def _ge(scores: np.ndarray, thr: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(scores), scores >= thr[None, :], False)


@dataclass
class Decisions:
    emitted: np.ndarray  # bool (n, C)
    score: np.ndarray  # float (n, C), NaN where no source scored
    text_fired: np.ndarray  # bool (n, C): text alone passes its own threshold
    visual_fired: np.ndarray  # bool (n, C)
    # Back-off (ml/fusion/hierarchy.py), when the model has one: nodes said (n, nodes) and their scores.
    nodes: np.ndarray | None = None
    node_score: np.ndarray | None = None
    backoff_columns: list[int] | None = None  # the column of each node among the categories
    # bool (n, C): the fused score passed its own certified cut on a video both sources judged, the only
    # emissions the fused thresholds decide (what the locked-test audit holds them to); None without them.
    fused_fired: np.ndarray | None = None

    # said() and source() are read once per video by `said_categories`: computed once per batch.
    _memo: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def said(self) -> np.ndarray:
        """(n, C) leaves and back-off nodes together; the leaves alone when there is no back-off."""
        if self.nodes is None or self.backoff_columns is None:
            return self.emitted
        if "said" not in self._memo:
            out = self.emitted.copy()
            for k, col in enumerate(self.backoff_columns):
                out[:, col] |= self.nodes[:, k]
            self._memo["said"] = out
        return self._memo["said"]

    def source(self) -> np.ndarray:
        """Provenance of each category said: text, visual, both, fused (only together), or backoff (a parent)."""
        if "source" in self._memo:
            return self._memo["source"]
        out = np.full(self.emitted.shape, "", dtype=object)
        out[self.said() & ~self.emitted] = "backoff"
        out[self.emitted & self.text_fired & self.visual_fired] = "both"
        out[self.emitted & self.text_fired & ~self.visual_fired] = "text"
        out[self.emitted & ~self.text_fired & self.visual_fired] = "visual"
        out[self.emitted & ~self.text_fired & ~self.visual_fired] = "fused"
        self._memo["source"] = out
        return out


@dataclass
class FusionModel:
    rule: str
    text_thresholds: list[Threshold]
    visual_thresholds: list[Threshold]
    fused_thresholds: list[Threshold] | None = None
    visual_calibration: tuple[float, float] = (1.0, 0.0)  # a, b of sigmoid(a * logit + b), pooled over categories
    stackers: list[dict] = field(default_factory=list)  # per category: {"w": [...], "b": float} (or pooled)
    impute: list[list[float]] = field(default_factory=list)  # per category: typical (text, visual) logit
    # Per category: may frames alone give it (decided from gold by the thresholds stage)? Empty: all may.
    is_visual: list[bool] = field(default_factory=list)
    backoff: Backoff | None = None  # parent categories certified where the leaves say nothing

    def calibrate_visual(self, visual: np.ndarray) -> np.ndarray:
        a, b = self.visual_calibration
        with np.errstate(invalid="ignore"):
            return np.where(np.isfinite(visual), 1 / (1 + np.exp(-(a * _logit(np.nan_to_num(visual)) + b))), np.nan)

    def visual_fired(self, visual: np.ndarray) -> np.ndarray:
        """Bool (n, C): frames alone give the category (raw student scores in, NaN where none).

        The calibrated score passes the visual threshold, and the thresholds stage found the category
        visual (frames alone never give one it did not). One rule for fusion's visual source and for
        anything that judges a video on its frames alone, e.g. the copied-video baseline of
        `vidcat eval-segments`.
        """
        fired = _ge(self.calibrate_visual(visual), threshold_vector(self.visual_thresholds))
        if self.is_visual:
            fired &= np.asarray(self.is_visual, dtype=bool)[None, :]
        return fired

    def fused_score(self, text: np.ndarray, visual: np.ndarray, text_chars: np.ndarray) -> np.ndarray:
        v = self.calibrate_visual(visual)
        if self.rule in ("text", "visual", "union", "max"):
            if self.rule == "text":
                return text
            if self.rule == "visual":
                return v
            return np.fmax(text, v)
        return _stack_predict(self.stackers, _features(text, v, text_chars, np.asarray(self.impute)))

    def decide(self, text: np.ndarray, visual: np.ndarray, text_chars: np.ndarray) -> Decisions:
        v = self.calibrate_visual(visual)
        text_fired, visual_fired = _ge(text, threshold_vector(self.text_thresholds)), self.visual_fired(visual)
        score = self.fused_score(text, visual, text_chars)
        fused_fired = None
        if self.rule == "text":
            emitted = text_fired.copy()
        elif self.rule == "visual":
            emitted = visual_fired.copy()
        elif self.rule == "union":
            emitted = text_fired | visual_fired
        else:
            # A combined score only where both sources judged the video; where one abstained (no usable
            # text, frames unlike the training data, no frames) the other decides under its own
            # thresholds, each certified on gold for that source alone.
            assert self.fused_thresholds is not None
            has_t, has_v = _present(text).any(axis=1), _present(v).any(axis=1)
            both = (has_t & has_v)[:, None]
            fused_fired = _ge(score, threshold_vector(self.fused_thresholds)) & both
            emitted = np.where(both, fused_fired, np.where(has_t[:, None], text_fired, visual_fired))
            score = np.where(both, score, np.where(has_t[:, None], text, v))
        if self.backoff is None:
            return Decisions(emitted, score, text_fired, visual_fired, fused_fired=fused_fired)
        leaves, fired, node_score = self.backoff.decide(score, emitted)
        return Decisions(
            leaves, score, text_fired, visual_fired, fired, node_score, self.backoff.tree.node_columns, fused_fired
        )

    def to_json(self) -> dict:
        return {
            "rule": self.rule,
            "visual_calibration": list(self.visual_calibration),
            "stackers": self.stackers,
            "impute": self.impute,
            "is_visual": self.is_visual,
            "text_thresholds": [t.as_dict() for t in self.text_thresholds],
            "visual_thresholds": [t.as_dict() for t in self.visual_thresholds],
            "fused_thresholds": None if self.fused_thresholds is None else [t.as_dict() for t in self.fused_thresholds],
            "backoff": None if self.backoff is None else self.backoff.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict) -> FusionModel:
        def ts(items):
            return None if items is None else [Threshold(**t) for t in items]

        return cls(
            rule=data["rule"],
            text_thresholds=ts(data["text_thresholds"]),
            visual_thresholds=ts(data["visual_thresholds"]),
            fused_thresholds=ts(data["fused_thresholds"]),
            visual_calibration=tuple(data["visual_calibration"]),
            stackers=data["stackers"],
            impute=data["impute"],
            is_visual=data["is_visual"],
            backoff=Backoff.from_json(data["backoff"]) if data.get("backoff") else None,
        )


def fit_visual_calibration(visual: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Pooled Platt scaling of the student's scores on gold labels.

    The student learnt from pseudo-labels, so its probabilities estimate agreement with the teacher,
    not truth. One (a, b) over all categories: per-category Platt on a few gold positives would overfit.
    """
    from sklearn.linear_model import LogisticRegression

    mask = np.isfinite(visual)
    x, y = _logit(visual[mask]).reshape(-1, 1), labels[mask].astype(int)
    if not len(y) or y.min() == y.max():  # no visual scores (no student yet) or one class only
        return 1.0, 0.0
    lr = LogisticRegression(C=10.0).fit(x, y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def impute_values(text: np.ndarray, visual_cal: np.ndarray) -> np.ndarray:
    """(C, 2): per category, the mean text and visual logit over the videos that have them.

    A missing source is replaced by its typical value, not by logit 0 (probability 0.5): most
    categories are absent from most videos, so 0.5 would read as strong evidence, and a combiner
    that never saw a missing source in training (the gold set may have no video without frames)
    would then emit on nothing.
    """
    out = np.empty((text.shape[1], 2))
    for k, scores in enumerate((text, visual_cal)):
        present = np.isfinite(scores)
        logits = np.where(present, _logit(np.nan_to_num(scores, nan=0.5)), 0.0)
        counts = present.sum(axis=0)
        fallback = logits.sum() / present.sum() if present.any() else float(_logit(np.array([0.01]))[0])
        # A category no video has this source for (a model that does not cover it) takes the overall mean.
        out[:, k] = np.where(counts > 0, logits.sum(axis=0) / np.maximum(counts, 1), fallback)
    return out


def _features(text: np.ndarray, visual_cal: np.ndarray, text_chars: np.ndarray, impute: np.ndarray) -> np.ndarray:
    """(n, C, 6): text logit, visual logit, product, no-text, no-visual, log text length."""
    has_t, has_v = _present(text), _present(visual_cal)
    t = np.where(has_t, _logit(np.nan_to_num(text, nan=0.5)), impute[None, :, 0])
    v = np.where(has_v, _logit(np.nan_to_num(visual_cal, nan=0.5)), impute[None, :, 1])
    length = np.broadcast_to(np.log1p(np.asarray(text_chars, dtype=np.float64))[:, None] / 5.0, t.shape)
    return np.stack([t, v, t * v / 5.0, (~has_t).astype(float), (~has_v).astype(float), length], axis=-1)


def _fit_lr(x: np.ndarray, y: np.ndarray) -> dict:
    from sklearn.linear_model import LogisticRegression

    if y.size == 0 or y.min() == y.max():  # no rows (a fold of a tiny gold set) or one class: a constant
        base = y.mean() if y.size else 0.0
        return {"w": [0.0] * x.shape[1], "b": float(_logit(np.array([max(base, EPS)]))[0])}
    lr = LogisticRegression(C=1.0, max_iter=500).fit(x, y)
    return {"w": lr.coef_[0].tolist(), "b": float(lr.intercept_[0])}


def _stack_fit(features: np.ndarray, labels: np.ndarray) -> list[dict]:
    n, c, d = features.shape
    pooled = _fit_lr(features.reshape(-1, d), labels.reshape(-1).astype(int))
    pooled["pooled"] = True
    out = []
    for j in range(c):
        y = labels[:, j].astype(int)
        if y.sum() >= MIN_POSITIVES_PER_CATEGORY_MODEL and (n - y.sum()) >= MIN_POSITIVES_PER_CATEGORY_MODEL:
            out.append(_fit_lr(features[:, j, :], y))
        else:
            out.append(pooled)
    return out


def _stack_predict(stackers: list[dict], features: np.ndarray) -> np.ndarray:
    w = np.array([s["w"] for s in stackers])  # (C, d)
    b = np.array([s["b"] for s in stackers])  # (C,)
    z = np.einsum("ncd,cd->nc", features, w) + b[None, :]
    return 1 / (1 + np.exp(-z))


def fit_rule(
    rule: str,
    text: np.ndarray,
    visual: np.ndarray,
    text_chars: np.ndarray,
    labels: np.ndarray,
    policy: ThresholdPolicy = DEFAULT_POLICY,
    seed: int = 0,
) -> FusionModel:
    """Fit one rule on gold data: (n, C) scores with NaN for unscored, (n, C) 0/1 labels."""
    if rule not in RULES:
        raise ValueError(f"unknown fusion rule {rule!r}; choose from {RULES}")
    calib = fit_visual_calibration(visual, labels)
    model = FusionModel(rule, select_thresholds(text, labels, policy), [], visual_calibration=calib)
    v = model.calibrate_visual(visual)
    model.visual_thresholds = select_thresholds(v, labels, policy)
    # Combined scores decide only where both sources judged a video (``decide``): fit them there.
    both = _present(text).any(axis=1) & _present(v).any(axis=1)
    if rule == "max":
        fused = np.where(both[:, None], np.fmax(text, v), np.nan)
        model.fused_thresholds = select_thresholds(fused, labels, policy)
    elif rule == "stacked":
        impute = impute_values(text, v)
        model.impute = impute.tolist()
        feats = _features(text, v, text_chars, impute)
        rows = np.flatnonzero(both)
        n_min = min_emitted(policy)
        if len(rows) < n_min:
            # No cut could be certified on so few videos, and cross-fitting them would leave folds with
            # nothing to learn from: fused emissions are off, and the reason says why.
            model.stackers = _stack_fit(feats[rows], labels[rows])
            reason = (
                f"{len(rows)} gold video(s) scored by both sources: a fused cut needs {n_min} verified "
                "videos above it, so the stacker is not certified"
            )
            model.fused_thresholds = [
                Threshold(None, None, None, 0, 0, int(labels[rows, j].sum()), None, False, reason, 0)
                for j in range(labels.shape[1])
            ]
            return model
        # Thresholds on out-of-fold stacker scores: in-sample scores would set them too low.
        oof = np.full(labels.shape, np.nan)
        for train, test in cv_splits(len(rows), 3, seed):
            tr, te = rows[train], rows[test]
            oof[te] = _stack_predict(_stack_fit(feats[tr], labels[tr]), feats[te])
        model.stackers = _stack_fit(feats[rows], labels[rows])
        model.fused_thresholds = select_thresholds(oof, labels, policy)
    return model


def per_category_precision(emitted: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(emitted, true positives, precision) per category; precision NaN where nothing was emitted."""
    y = labels.astype(bool)
    n = emitted.sum(axis=0)
    tp = (emitted & y).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n > 0, tp / np.maximum(n, 1), np.nan)
    return n, tp, precision


def rule_metrics(
    emitted: np.ndarray,
    score: np.ndarray,
    labels: np.ndarray,
    *,
    promise: float | None = None,
    min_emitted: int = 10,
    categories: list[str] | None = None,
    confidence: float = 0.95,
    bound: str = "clopper-pearson",
) -> dict[str, float]:
    """Pooled figures and the per-category promise: macro precision, the worst category emitted at least
    ``min_emitted`` times, and (with ``promise``) the categories that miss it.

    Held out of fold, a category **misses the promise** when its precision is below it, however few
    times it was emitted (7 right out of 10 misses 0.80); beside each, the one-sided lower bound of the
    policy (``bound`` at ``confidence``: the bound that certifies thresholds). The pooled precision must
    reach the promise by that lower bound. Why the point estimate per category and not the bound: the
    95% promise is carried by the certification on all of gold (ml/thresholds.py); this check chooses
    between rules and must not pass a rule that measurably misses, while a bound on 10 held-out
    emissions could never pass any rule.
    """
    from ml.metrics import categories_per_video, coverage, gap_at_k

    y = labels.astype(bool)
    tp = int((emitted & y).sum())
    fp = int((emitted & ~y).sum())
    fn = int((~emitted & y).sum())
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    ranked = np.where(np.isfinite(score), score, -1.0)
    n, tp_c, prec_c = per_category_precision(emitted, labels)
    counted = n >= min_emitted
    out: dict[str, Any] = {
        "coverage": coverage(emitted),
        "categories_per_video": categories_per_video(emitted),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "gap": gap_at_k(ranked, y, k=20),
        "emitted": int(emitted.sum()),
        "macro_precision": float(np.nanmean(prec_c)) if (n > 0).any() else float("nan"),
        "worst_category_precision": float(prec_c[counted].min()) if counted.any() else float("nan"),
        "categories_counted": int(counted.sum()),
    }
    if promise is not None:
        from ml.thresholds import ThresholdPolicy, lower_bound

        policy = ThresholdPolicy(target_precision=promise, bound=bound, confidence=confidence)
        names = categories or [str(j) for j in range(labels.shape[1])]
        out["pooled_lower_bound"] = lower_bound(tp, tp + fp, policy) if tp + fp else float("nan")
        out["failing_categories"] = [
            {
                "category_id": names[j],
                "emitted": int(n[j]),
                "precision": float(prec_c[j]),
                "lower_bound": float(lower_bound(int(tp_c[j]), int(n[j]), policy)),
            }
            for j in np.flatnonzero((n > 0) & (np.nan_to_num(prec_c, nan=1.0) < promise))
        ]
    return out


def compare_rules(
    text: np.ndarray,
    visual: np.ndarray,
    text_chars: np.ndarray,
    labels: np.ndarray,
    policy: ThresholdPolicy = DEFAULT_POLICY,
    folds: int = 5,
    seed: int = 0,
    rules: tuple[str, ...] = RULES,
    categories: list[str] | None = None,
    min_emitted: int = 10,
) -> dict[str, dict[str, Any]]:
    """Every rule measured out of fold on the gold set; the table that picks the default rule.

    Each fold's thresholds (and stacker) are fitted on the other folds only, so every figure, the
    per-category precision included, is held out from the fitting it judges.
    """
    n = len(labels)
    folds = max(2, min(folds, n // 4))
    out: dict[str, dict[str, Any]] = {}
    for rule in rules:
        emitted = np.zeros(labels.shape, bool)
        score = np.full(labels.shape, np.nan)
        for i, (train, test) in enumerate(cv_splits(n, folds, seed)):
            model = fit_rule(rule, text[train], visual[train], text_chars[train], labels[train], policy, seed + i)
            d = model.decide(text[test], visual[test], text_chars[test])
            emitted[test], score[test] = d.emitted, d.score
        out[rule] = rule_metrics(
            emitted,
            score,
            labels,
            promise=policy.target_precision,
            min_emitted=min_emitted,
            categories=categories,
            confidence=policy.confidence,
            bound=policy.bound,
        )
    return out


@dataclass(frozen=True)
class RuleChoice:
    rule: str
    holds: bool  # every category the rule emits often enough holds the promise on held-out folds
    failing: list[dict]  # the categories that do not, when it does not hold
    reason: str


def choose_rule(table: dict[str, dict[str, Any]], promise: float = 0.8) -> RuleChoice:
    """The best F1 among rules whose held-out precision holds the promise, per category and pooled.

    A rule holds when the lower bound of its pooled held-out precision reaches ``promise`` and no
    category it emitted falls below it (``rule_metrics``). When none holds, the rule with the
    fewest failing categories (then the best F1) is chosen and the choice says so: the
    ``category_thresholds`` check turns that into a warning naming the categories.
    """

    def failing(m: dict[str, Any]) -> list[dict]:
        return list(m.get("failing_categories", []))

    def pooled_ok(m: dict[str, Any]) -> bool:
        value = m.get("pooled_lower_bound", m["precision"])
        return bool(np.isfinite(value) and value >= promise)

    holding = {r: m for r, m in table.items() if pooled_ok(m) and not failing(m) and m["emitted"] > 0}
    if holding:
        rule = max(holding, key=lambda r: (holding[r]["f1"], holding[r]["coverage"]))
        return RuleChoice(rule, True, [], f"best held-out F1 among rules holding {promise:.0%} per category")
    rule = min(table, key=lambda r: (not pooled_ok(table[r]), len(failing(table[r])), -table[r]["f1"]))
    return RuleChoice(
        rule,
        False,
        failing(table[rule]),
        f"no rule holds {promise:.0%} in every category on held-out folds; {rule} fails the fewest",
    )


def best_rule(table: dict[str, dict[str, Any]], min_precision: float = 0.8) -> str:
    return choose_rule(table, min_precision).rule
