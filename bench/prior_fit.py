"""What nested shrinkage selection costs the prior-head teacher at the demo's scale.

54 editor texts over 18 categories (the demo's editor set), 384-d embeddings (e5-small's width) from
a deterministic bag-of-words hash, so the figure needs no model download; texts carry segments as
titles do. Reported, best of three after a warm-up: CPU seconds of one ``train_text_model(head="prior")``
with nested selection (each outer fold's lambda chosen on its training part alone) and with a
single-level one swapped in (one cross-validation per lambda, the winner's out-of-fold scores
reused), and the number of head fits each makes.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench.hash_encoder import HashEncoder

N_TEXTS, N_CATEGORIES, DIM, REPEATS = 54, 18, 384, 3


class _HashEncoder(HashEncoder):
    name, dim = "hash-384", DIM


def _problem() -> tuple[list[str], np.ndarray, list[list[str]]]:
    rng = np.random.default_rng(0)
    vocab = [[f"w{c}_{k}" for k in range(8)] for c in range(N_CATEGORIES)]
    texts, y = [], np.zeros((N_TEXTS, N_CATEGORIES), np.float32)
    for i in range(N_TEXTS):
        parts = []
        for c in rng.choice(N_CATEGORIES, size=rng.integers(1, 3), replace=False):
            y[i, c] = 1
            parts.append(" ".join(rng.choice(vocab[c], 3)) + " video")
        texts.append(" | ".join(parts))
    y[rng.random(y.shape) < 0.2] = np.nan
    return texts, y, [[f"w{c}_0 w{c}_1", f"w{c}_2"] for c in range(N_CATEGORIES)]


def _best_cpu(fn) -> float:
    fn()  # warm-up: imports, first torch calls
    best = float("inf")
    for _ in range(REPEATS):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def run() -> dict[str, Any]:
    import ml.text.prior as prior
    from ml.text import model as tm

    texts, y, phrases = _problem()
    enc = _HashEncoder()
    cats = [f"c{c}" for c in range(N_CATEGORIES)]
    fits = [0]
    real_fit = prior.fit_prior_head

    def counted(*args: Any, **kwargs: Any) -> dict[str, np.ndarray]:
        fits[0] += 1
        return real_fit(*args, **kwargs)

    real_nested = prior.nested_cross_fit

    def single_level(
        x: np.ndarray,
        y: np.ndarray,
        protos: np.ndarray,
        fold: np.ndarray,
        seg_emb: np.ndarray | None = None,
        seg_owner: np.ndarray | None = None,
        grid: tuple[float, ...] = prior.LAMBDAS,
        on_fold: Any = None,
    ) -> tuple[np.ndarray, float, dict[str, float], list[float]]:
        """The alternative: the winner's own out-of-fold scores reused (no refit, mildly optimistic)."""
        oof = {lam: prior.cross_fit(x, y, protos, lam, fold, seg_emb, seg_owner) for lam in grid}
        table = {f"{lam:g}": round(prior.gap_known(oof[lam], y), 4) for lam in grid}
        best = float(max(grid, key=lambda lam: (table[f"{lam:g}"], lam)))
        return oof[best], best, table, [best] * len(set(fold.tolist()))

    def fit() -> None:
        tm.train_text_model(texts, y, cats, encoder=enc, head="prior", phrases=phrases)

    prior.fit_prior_head = counted
    try:
        out: dict[str, Any] = {}
        for name, selection in (("nested", real_nested), ("single_level", single_level)):
            prior.nested_cross_fit = selection
            fits[0] = 0
            out[f"{name}_cpu_s"] = round(_best_cpu(fit), 2)
            out[f"{name}_fits"] = fits[0] // (REPEATS + 1)
    finally:
        prior.fit_prior_head = real_fit
        prior.nested_cross_fit = real_nested
    out["cpu_ratio"] = round(out["nested_cpu_s"] / out["single_level_cpu_s"], 2)
    return out
