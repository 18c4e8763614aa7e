"""Back-off to the parent category: say "Entertainment" when the evidence cannot tell Movies from Television.

IAB 3.1 is a tree and advertisers buy at every level. A leaf whose certified cut is not reached may
still have a parent whose is: frames that look like a film or a TV show are Entertainment either way.
The approach is Goren, Galil and El-Yaniv (NeurIPS 2024) in its simplest certified form: climb from
the leaves towards the root until a node's certified cut holds (Deng et al., CVPR 2012, "hedging your
bets": more information at a fixed error rate).

- **Node scores** (`node_scores`): a back-off node is a category of the fusion's list with at least
  one descendant in it. Its score combines the final scores of its subtree (its own column included
  where the working set gives it a head): ``max`` or ``noisy-or`` (1 - prod(1 - p)). Both are never
  below any score of the subtree, so a parent never scores below its emitted child. Which combiner
  is the default was chosen on certification gold by cross-validation (docs/fusion.md).
- **Certification** (`fit_backoff`): per node, the same threshold policy, hence the same promise, as
  the leaves; positives are the gold videos whose truth holds the node or a descendant, and only the
  gold videos on which nothing of the node's subtree is emitted take part, because those are the
  only videos on which the node is ever emitted.
- **Emission** (`decide_backoff`): deepest nodes first; a node is emitted when its certified cut
  holds and nothing in its subtree is. A video never gets a node and one of its ancestors: where the
  leaf decisions emit both a category and a descendant of it, or a node fires below a category the
  leaf rule said, the ancestor is dropped (`drop_ancestors`) and the more specific one stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.taxonomy import Taxonomy
from ml.thresholds import Threshold, ThresholdPolicy, select_threshold, threshold_vector

COMBINERS = ("max", "noisy-or")
DEFAULT_COMBINER = "noisy-or"


@dataclass(frozen=True)
class Tree:
    """The back-off nodes over a fixed list of category columns, deepest first."""

    categories: list[str]
    nodes: list[str]
    subtree: list[list[int]]  # per node: the columns of the categories in its subtree (itself included)
    tiers: list[int]  # tier of every category column (1 = top of IAB)
    paths: list[str]  # "Entertainment > Movies" of every category column

    @property
    def node_columns(self) -> list[int]:
        """The column of each node in ``categories``."""
        index = {c: j for j, c in enumerate(self.categories)}
        return [index[n] for n in self.nodes]

    def node_tiers(self) -> list[int]:
        return [self.tiers[j] for j in self.node_columns]

    def ancestors_mask(self) -> np.ndarray:
        """(C, C) bool: [a, d] is True when category a is a strict ancestor of category d."""
        c = len(self.categories)
        out = np.zeros((c, c), bool)
        for col, members in zip(self.node_columns, self.subtree, strict=True):
            for d in members:
                if d != col:
                    out[col, d] = True
        return out


def build_tree(categories: list[str], taxonomy: Taxonomy) -> Tree:
    """Back-off nodes: the categories of ``categories`` that are ancestors of another one in it."""
    cats = list(categories)
    index = {c: j for j, c in enumerate(cats)}
    members: dict[str, list[int]] = {}
    for j, c in enumerate(cats):
        if c not in taxonomy:
            continue
        for a in taxonomy.ancestors(c):
            if a in index:
                members.setdefault(a, [index[a]]).append(j)
    tiers = [taxonomy[c].tier if c in taxonomy else 1 for c in cats]
    paths = [taxonomy[c].full_name if c in taxonomy else c for c in cats]
    nodes = sorted(members, key=lambda n: (-tiers[index[n]], index[n]))
    return Tree(cats, nodes, [sorted(members[n]) for n in nodes], tiers, paths)


def node_scores(score: np.ndarray, tree: Tree, combiner: str = DEFAULT_COMBINER) -> np.ndarray:
    """(n, nodes) score of every back-off node from its subtree's scores; NaN where none was scored."""
    if combiner not in COMBINERS:
        raise ValueError(f"combiner must be one of {COMBINERS}, got {combiner!r}")
    out = np.full((score.shape[0], len(tree.nodes)), np.nan)
    for k, cols in enumerate(tree.subtree):
        s = score[:, cols]
        seen = np.isfinite(s).any(axis=1)
        if combiner == "max":
            combined = np.nanmax(np.where(np.isfinite(s), s, -np.inf), axis=1)
        else:
            p = np.clip(np.nan_to_num(s, nan=0.0), 0.0, 1.0)
            combined = 1.0 - np.prod(1.0 - p, axis=1)
        out[:, k] = np.where(seen, combined, np.nan)
    return out


def node_labels(y: np.ndarray, tree: Tree) -> np.ndarray:
    """(n, nodes) truth closed upward: a video is positive for a node when it holds the node or a descendant."""
    y = np.asarray(y).astype(bool)
    if not tree.nodes:
        return np.zeros((len(y), 0), bool)
    return np.stack([y[:, cols].any(axis=1) for cols in tree.subtree], axis=1)


def drop_ancestors(emitted: np.ndarray, tree: Tree) -> np.ndarray:
    """Leaf decisions without any category whose descendant is also emitted (the more specific one stays)."""
    out = emitted.copy()
    for col, cols in zip(tree.node_columns, tree.subtree, strict=True):
        below = [d for d in cols if d != col]
        out[:, col] &= ~emitted[:, below].any(axis=1)
    return out


def _walk(
    emitted: np.ndarray, nscore: np.ndarray, tree: Tree, cut: list[float], fit: Any = None
) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Deepest nodes first: a node may fire only where nothing of its subtree (leaf or node) fired.

    A node's subtree does not hold its ancestors, so a node can fire on a video whose leaf rule said an
    ancestor of it (a parent with a head of its own). The node is certified on exactly those videos and
    says more, so the leaf-rule ancestor is dropped afterwards, as ``drop_ancestors`` does among leaves.
    Dropping it cannot change what fired: every node above it has the fired node in its subtree and
    was closed already. Returns the leaf decisions left, the nodes fired and the fitted cuts.
    """
    leaves = drop_ancestors(emitted, tree)
    n = leaves.shape[0]
    covered = leaves.copy()  # (n, C): category columns already said, by a leaf or a node
    fired = np.zeros((n, len(tree.nodes)), bool)
    fitted = []
    for k, (col, cols) in enumerate(zip(tree.node_columns, tree.subtree, strict=True)):
        open_ = ~covered[:, cols].any(axis=1)
        thr = cut[k]
        if fit is not None:
            th = fit(k, open_)
            fitted.append(th)
            thr = th.threshold if th.enabled and th.threshold is not None else np.inf
        with np.errstate(invalid="ignore"):
            fired[:, k] = open_ & np.isfinite(nscore[:, k]) & (nscore[:, k] >= thr)
        covered[:, col] |= fired[:, k]
    leaves = drop_ancestors(with_nodes(leaves, fired, tree), tree) & leaves
    return leaves, fired, fitted


def fit_backoff(
    score: np.ndarray, emitted: np.ndarray, y: np.ndarray, tree: Tree, policy: ThresholdPolicy, combiner: str
) -> list[Threshold]:
    """Certify every node on gold: labels closed upward, only the videos its subtree leaves unsaid."""
    nscore, ny = node_scores(score, tree, combiner), node_labels(y, tree)

    def fit(k: int, open_: np.ndarray) -> Threshold:
        s = np.where(open_, nscore[:, k], np.nan)  # NaN: not a video the node could be emitted on
        return select_threshold(s, ny[:, k], policy)

    _, _, fitted = _walk(emitted, nscore, tree, [np.inf] * len(tree.nodes), fit)
    return fitted


def decide_backoff(
    score: np.ndarray, emitted: np.ndarray, tree: Tree, thresholds: list[Threshold], combiner: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leaf decisions without ancestors, the nodes emitted (n, nodes), and the node scores."""
    nscore = node_scores(score, tree, combiner)
    leaves, fired, _ = _walk(emitted, nscore, tree, list(threshold_vector(thresholds)))
    return leaves, fired, nscore


def with_nodes(leaves: np.ndarray, fired: np.ndarray, tree: Tree) -> np.ndarray:
    """(n, C) everything said about each video: leaf categories and back-off nodes in one matrix."""
    out = leaves.copy()
    for k, col in enumerate(tree.node_columns):
        out[:, col] |= fired[:, k]
    return out


def closure(y: np.ndarray, tree: Tree) -> np.ndarray:
    """(n, C) truth with every ancestor column set: a node said is right when the truth holds it or below."""
    out = np.asarray(y).astype(bool)  # a copy: gold arrives as 0/1 numbers
    for col, cols in zip(tree.node_columns, tree.subtree, strict=True):
        out[:, col] |= out[:, cols].any(axis=1)
    return out


def information(said: np.ndarray, y: np.ndarray, tree: Tree) -> dict[str, float]:
    """Coverage, node precision (right when the truth holds the node or a descendant) and mean tier said."""
    truth = closure(y, tree)
    n_said = int(said.sum())
    right = int((said & truth).sum())
    tiers = np.asarray(tree.tiers)[None, :].repeat(len(said), axis=0)
    return {
        "videos": len(said),
        "coverage": float(said.any(axis=1).mean()) if len(said) else float("nan"),
        "node_precision": right / n_said if n_said else float("nan"),
        "said": n_said,
        "mean_tier": float(tiers[said].mean()) if n_said else float("nan"),
    }


@dataclass
class Backoff:
    """The fitted back-off: the tree over the fusion's categories, the combiner and a certified cut per node."""

    combiner: str
    tree: Tree
    thresholds: list[Threshold]
    comparison: dict[str, dict[str, float]]  # combiner -> held-out coverage and node precision on gold

    def decide(self, score: np.ndarray, emitted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return decide_backoff(score, emitted, self.tree, self.thresholds, self.combiner)

    def to_json(self) -> dict[str, Any]:
        return {
            "combiner": self.combiner,
            "nodes": self.tree.nodes,
            "subtree": self.tree.subtree,
            "tiers": self.tree.tiers,
            "paths": self.tree.paths,
            "categories": self.tree.categories,
            "thresholds": [t.as_dict() for t in self.thresholds],
            "comparison": self.comparison,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Backoff:
        tree = Tree(data["categories"], data["nodes"], data["subtree"], data["tiers"], data["paths"])
        return cls(data["combiner"], tree, [Threshold(**t) for t in data["thresholds"]], data.get("comparison", {}))


def _folds(n: int, k: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [order[i::k] for i in range(k)]


def compare_combiners(
    score: np.ndarray,
    emitted: np.ndarray,
    y: np.ndarray,
    tree: Tree,
    policy: ThresholdPolicy,
    folds: int = 5,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Held-out coverage and node precision of leaves plus back-off, per combiner, by cross-validation on gold.

    The node cuts are certified on the other folds and applied to the held-out one; the leaf decisions
    are the fitted rule's (its own held-out comparison is `compare_rules`).
    """
    out: dict[str, dict[str, float]] = {}
    n = len(score)
    for combiner in COMBINERS:
        said = np.zeros(emitted.shape, bool)
        for test in _folds(n, folds, seed):
            train = np.setdiff1d(np.arange(n), test)
            ths = fit_backoff(score[train], emitted[train], y[train], tree, policy, combiner)
            leaves, fired, _ = decide_backoff(score[test], emitted[test], tree, ths, combiner)
            said[test] = with_nodes(leaves, fired, tree)
        out[combiner] = information(said, y, tree)
    return out


def choose_combiner(comparison: dict[str, dict[str, float]], promise: float) -> str:
    """The combiner that says something about the most held-out gold videos at node precision >= the promise."""
    holding = [c for c in COMBINERS if comparison[c]["node_precision"] >= promise]
    if not holding:
        return DEFAULT_COMBINER
    return max(holding, key=lambda c: (round(comparison[c]["coverage"], 6), c == DEFAULT_COMBINER))


def fit_backoff_model(
    score: np.ndarray,
    emitted: np.ndarray,
    y: np.ndarray,
    tree: Tree,
    policy: ThresholdPolicy,
    combiner: str = "auto",
    seed: int = 0,
) -> Backoff:
    """Choose the combiner out of fold on gold (``auto``), then certify every node on all of gold."""
    comparison = compare_combiners(score, emitted, y, tree, policy, seed=seed) if tree.nodes else {}
    if combiner == "auto":
        combiner = choose_combiner(comparison, policy.target_precision) if comparison else DEFAULT_COMBINER
    return Backoff(combiner, tree, fit_backoff(score, emitted, y, tree, policy, combiner), comparison)


__all__ = [
    "COMBINERS",
    "DEFAULT_COMBINER",
    "Backoff",
    "Tree",
    "build_tree",
    "choose_combiner",
    "closure",
    "compare_combiners",
    "decide_backoff",
    "drop_ancestors",
    "fit_backoff",
    "fit_backoff_model",
    "information",
    "node_labels",
    "node_scores",
    "with_nodes",
]
