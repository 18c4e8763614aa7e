"""The text teacher: per-category heads over multilingual sentence embeddings, calibrated.

Editor labels are partial (an editor judges some categories of a video, not all 200), so every head
learns only from the videos whose label for its category is known: the label matrix holds 1, 0 and
NaN (unknown). A category with too few known positives gets no head rather than a noisy one, and the
model lists what it covers, so downstream stages never read a score the model cannot back.

Held-out scores come from K-fold cross-fitting: each video is scored by heads that did not see it and
calibrated by a calibrator fitted on the other folds. Those scores are honest, and the pseudo-label
thresholds are chosen on them (ml/text/pseudo_labels.py). The deployed heads and calibrators are then
refitted on all the data.

A saved model is JSON + npz only (no pickles): it loads with numpy, needs no torch or sklearn to
predict, and cannot execute code when opened.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ml.text.calibration import (
    Calibrator,
    calibrator_from_dict,
    expected_calibration_error,
    fit_calibrator,
    resolve_method,
)
from ml.text.features import (
    DEFAULT_MAX_CHARS,
    MIN_LETTERS,
    TextEncoder,
    get_encoder,
    prepare_records,
    segments,
)

MODEL_NAME = "text_model"
FORMAT_VERSION = 1
HEADS = ("logreg", "mlp", "prior")
DEFAULT_HEAD = "prior"  # the taxonomy prior refined by editor labels (ml/text/prior.py); chosen in docs/text-model.md
DEFAULT_MIN_POSITIVES = 10
DEFAULT_MIN_NEGATIVES = 10
DEFAULT_FOLDS = 5

Progress = Callable[[str, int, int], None]


def _noop(stage: str, done: int, total: int) -> None:
    return None


@dataclass
class TextModel:
    version: str
    categories: list[str]  # the categories with a head: the order of every score vector
    encoder_name: str
    dim: int
    head: str
    weights: dict[str, np.ndarray]
    calibrators: list[Calibrator]
    uncovered: dict[str, str] = field(default_factory=dict)  # category -> why it has no head
    params: dict[str, Any] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    # Cross-fitted calibrated probabilities (n, C), row i = training input i; NaN where the label is
    # unknown. The pseudo-label thresholds are chosen on these (ml/pseudo_labels.select_thresholds).
    heldout_scores: np.ndarray | None = None
    heldout_labels: np.ndarray | None = None  # (n, C) 1 / 0 / NaN, aligned with heldout_scores
    encoder: TextEncoder | None = field(default=None, repr=False)

    @property
    def max_chars(self) -> int:
        return int(self.params.get("max_chars", DEFAULT_MAX_CHARS))

    def covers(self, category_id: str) -> bool:
        return category_id in self.categories

    def get_encoder(self) -> TextEncoder:
        if self.encoder is None:
            self.encoder = get_encoder(self.encoder_name)
        return self.encoder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.get_encoder().encode(list(texts))

    @property
    def segment_max(self) -> bool:
        return bool(self.params.get("segment_max", False))

    def decision_function(self, x: np.ndarray | Sequence[str]) -> np.ndarray:
        """Raw per-category logits (before calibration).

        With ``segment_max`` (a model trained on texts), each category's logit is the larger of the
        whole text's and the best of its segments' (``ml.text.features.segments``): a title listing
        three topics scores each of them as if it stood alone. Embeddings in give whole-text logits.
        """
        emb = self._embeddings(x)
        logits = _head_logits(self.head, self.weights, emb)
        if self.segment_max and not (isinstance(x, np.ndarray) and x.dtype.kind == "f"):
            pieces = [segments(str(t)) for t in x]
            flat = [piece for ps in pieces for piece in ps]
            if flat:
                owner = np.repeat(np.arange(len(pieces)), [len(ps) for ps in pieces])
                seg_logits = _head_logits(self.head, self.weights, self.embed(flat))
                logits = _max_per_owner(logits, seg_logits, owner)
        return logits

    def predict_proba(self, x: np.ndarray | Sequence[str]) -> np.ndarray:
        """Calibrated probabilities (n, len(categories)) from embeddings or prepared texts.

        Texts must already be prepared (PreparedText.text, cleaned within ``max_chars``): raw catalog
        rows go through predict_records, which also sets has_text and the language.
        """
        logits = self.decision_function(x)
        out = np.empty_like(logits, dtype=np.float32)
        for j, cal in enumerate(self.calibrators):
            out[:, j] = cal.transform(logits[:, j])
        return out

    def _embeddings(self, x: np.ndarray | Sequence[str]) -> np.ndarray:
        if isinstance(x, np.ndarray) and x.dtype.kind == "f":
            emb = x.astype(np.float32, copy=False)
        else:
            emb = self.embed([str(t) for t in x])
        if emb.ndim != 2 or emb.shape[1] != self.dim:
            raise ValueError(f"embeddings must be (n, {self.dim}) from {self.encoder_name}, got {emb.shape}")
        return emb

    def manifest(self) -> dict[str, Any]:
        return {
            "model_name": MODEL_NAME,
            "format_version": FORMAT_VERSION,
            "version": self.version,
            "created_at": self.created_at,
            "encoder": self.encoder_name,
            "dim": self.dim,
            "head": self.head,
            "categories": self.categories,
            "uncovered": self.uncovered,
            "params": self.params,
            "training_data": self.training_data,
            "metrics": self.metrics,
        }

    def save(self, directory: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write the model into ``directory`` (normally models_dir/text_model/<version>), atomically.

        Files are written to a temporary sibling and renamed into place, so a crash leaves either no
        directory or a complete one. Versions are immutable: an existing directory is an error
        unless ``overwrite``.
        """
        target = Path(directory)
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; model versions are immutable (pass overwrite=True)")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            np.savez(tmp / "weights.npz", **self.weights)
            (tmp / "calibrators.json").write_text(json.dumps([c.to_dict() for c in self.calibrators]))
            if self.heldout_scores is not None and self.heldout_labels is not None:
                np.savez_compressed(
                    tmp / "heldout.npz",
                    scores=self.heldout_scores.astype(np.float32),
                    labels=self.heldout_labels.astype(np.float32),
                )
            (tmp / "manifest.json").write_text(json.dumps(self.manifest(), indent=2, sort_keys=True))
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target


def load_text_model(directory: str | os.PathLike[str], encoder: TextEncoder | None = None) -> TextModel:
    """A model saved by TextModel.save; the encoder is created lazily on the first text input."""
    d = Path(directory)
    manifest_path = d / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{d} holds no text model (no manifest.json)")
    m = json.loads(manifest_path.read_text())
    if m.get("model_name") != MODEL_NAME or m.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{manifest_path}: not a {MODEL_NAME} of format {FORMAT_VERSION} "
            f"(got {m.get('model_name')!r}, format {m.get('format_version')!r})"
        )
    with np.load(d / "weights.npz", allow_pickle=False) as z:
        weights = {k: z[k] for k in z.files}
    calibrators = [calibrator_from_dict(c) for c in json.loads((d / "calibrators.json").read_text())]
    if len(calibrators) != len(m["categories"]):
        raise ValueError(f"{d}: {len(calibrators)} calibrators for {len(m['categories'])} categories")
    heldout_scores = heldout_labels = None
    if (d / "heldout.npz").is_file():
        with np.load(d / "heldout.npz", allow_pickle=False) as z:
            heldout_scores, heldout_labels = z["scores"], z["labels"]
    if encoder is not None and encoder.name != m["encoder"]:
        raise ValueError(f"model {m['version']} was trained on {m['encoder']!r}, not {encoder.name!r}")
    return TextModel(
        version=m["version"],
        categories=list(m["categories"]),
        encoder_name=m["encoder"],
        dim=int(m["dim"]),
        head=m["head"],
        weights=weights,
        calibrators=calibrators,
        uncovered=dict(m.get("uncovered", {})),
        params=m.get("params", {}),
        training_data=m.get("training_data", {}),
        metrics=m.get("metrics", {}),
        created_at=m.get("created_at", ""),
        heldout_scores=heldout_scores,
        heldout_labels=heldout_labels,
        encoder=encoder,
    )


def latest_version_dir(root: str | os.PathLike[str]) -> Path | None:
    """Newest complete model under models_dir/text_model (versions start with a UTC timestamp)."""
    root = Path(root)
    if not root.is_dir():
        return None
    done = sorted(
        p for p in root.iterdir() if p.is_dir() and (p / "manifest.json").is_file() and not p.name.startswith(".")
    )
    return done[-1] if done else None


# ---------------------------------------------------------------------------------------------------
# Labels


def label_matrix_from_rows(
    video_ids: Sequence[str],
    categories: Sequence[str],
    labels: Iterable[tuple[str, str, bool]],
    exhaustive: Iterable[str] = (),
) -> tuple[np.ndarray, dict[str, int]]:
    """(n, C) matrix of 1 / 0 / NaN from ``human_labels`` rows (video_id, category_id, is_positive).

    A video in ``exhaustive`` (label_coverage.exhaustive) has every category judged, so its missing
    categories are 0; otherwise they are unknown. Labels outside ``categories`` are counted, not used:
    roll them up to the working set before calling.
    """
    row = {v: i for i, v in enumerate(video_ids)}
    col = {c: j for j, c in enumerate(categories)}
    y = np.full((len(row), len(col)), np.nan, dtype=np.float32)
    for v in exhaustive:
        if v in row:
            y[row[v]] = 0.0
    stats = {"used": 0, "unknown_video": 0, "unknown_category": 0}
    for video_id, category_id, is_positive in labels:
        if video_id not in row:
            stats["unknown_video"] += 1
        elif category_id not in col:
            stats["unknown_category"] += 1
        else:
            y[row[video_id], col[category_id]] = 1.0 if is_positive else 0.0
            stats["used"] += 1
    return y, stats


# ---------------------------------------------------------------------------------------------------
# Heads


def _max_per_owner(logits: np.ndarray, seg_logits: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Row-wise max of ``logits`` and the segment logits that belong to each row (``owner``: row of each segment)."""
    out = logits.copy()
    np.maximum.at(out, owner, seg_logits)
    return out


def _head_logits(head: str, w: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    if head == "prior":
        from ml.text.prior import prior_logits

        return prior_logits(dict(w), x)
    if head == "logreg":
        return (x @ w["W"].T + w["b"]).astype(np.float32)
    if head == "mlp":
        h = np.maximum(x @ w["W1"] + w["b1"], 0.0)
        return (h @ w["W2"] + w["b2"]).astype(np.float32)
    raise ValueError(f"unknown head {head!r}; known: {HEADS}")


def _fit_logreg(x: np.ndarray, y: np.ndarray, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """One binary logistic regression per category, each on the rows where its label is known."""
    from sklearn.linear_model import LogisticRegression

    n_cat = y.shape[1]
    w = np.zeros((n_cat, x.shape[1]), dtype=np.float32)
    b = np.zeros(n_cat, dtype=np.float32)
    for j in range(n_cat):
        known = ~np.isnan(y[:, j])
        yj = y[known, j]
        n_pos = int(yj.sum())
        if n_pos == 0 or n_pos == len(yj):  # a fold without one class: constant prior logit
            b[j] = float(np.log((n_pos + 0.5) / (len(yj) - n_pos + 0.5)))
            continue
        # liblinear: several times faster than lbfgs on binary problems of this size, same scores.
        clf = LogisticRegression(C=params["C"], class_weight="balanced", solver="liblinear", max_iter=1000)
        clf.fit(x[known], yj.astype(int))
        w[j], b[j] = clf.coef_[0], clf.intercept_[0]
    return {"W": w, "b": b}


def _fit_mlp(x: np.ndarray, y: np.ndarray, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Shared hidden layer, one sigmoid per category, BCE masked to known labels, positives weighted.

    The shared layer lets rare categories borrow features learned for frequent ones; the positive
    weight (negatives/positives, capped) is the class-weight counterpart of the linear heads.
    """
    import torch

    torch.manual_seed(int(params["seed"]))
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    known = ~np.isnan(y)
    yt = torch.from_numpy(np.nan_to_num(y, nan=0.0).astype(np.float32))
    mt = torch.from_numpy(known.astype(np.float32))
    n_pos = (np.nan_to_num(y, nan=0.0) * known).sum(0)
    n_neg = known.sum(0) - n_pos
    pos_weight = torch.from_numpy(np.clip(n_neg / np.maximum(n_pos, 1.0), 1.0, 50.0).astype(np.float32))
    hidden = int(params["hidden"])
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], hidden),
        torch.nn.ReLU(),
        torch.nn.Dropout(float(params["dropout"])),
        torch.nn.Linear(hidden, y.shape[1]),
    )
    opt = torch.optim.AdamW(net.parameters(), lr=float(params["lr"]), weight_decay=float(params["weight_decay"]))
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="none")
    gen = torch.Generator().manual_seed(int(params["seed"]))
    batch = int(params["batch_size"])
    net.train()
    for _ in range(int(params["epochs"])):
        order = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), batch):
            idx = order[i : i + batch]
            m = mt[idx]
            loss = (loss_fn(net(xt[idx]), yt[idx]) * m).sum() / m.sum().clamp(min=1.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    lin1, lin2 = net[0], net[3]
    return {
        "W1": lin1.weight.detach().numpy().T.copy(),
        "b1": lin1.bias.detach().numpy().copy(),
        "W2": lin2.weight.detach().numpy().T.copy(),
        "b2": lin2.bias.detach().numpy().copy(),
    }


def _fit_head(head: str, x: np.ndarray, y: np.ndarray, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    if head == "logreg":
        return _fit_logreg(x, y, params)
    if head == "mlp":
        return _fit_mlp(x, y, params)
    raise ValueError(f"unknown head {head!r}; known: {HEADS}")


def default_params(head: str = DEFAULT_HEAD) -> dict[str, Any]:
    if head == "logreg":
        return {"C": 1.0}
    if head == "prior":
        return {}
    if head == "mlp":
        return {"hidden": 256, "dropout": 0.2, "lr": 3e-3, "weight_decay": 1e-2, "epochs": 60, "batch_size": 64}
    raise ValueError(f"unknown head {head!r}; known: {HEADS}")


# ---------------------------------------------------------------------------------------------------
# Training


def _fold_ids(n: int, folds: int, seed: int, groups: Sequence[Any] | None) -> np.ndarray:
    """Fold of each row; rows sharing a group (a video seen twice) always share a fold."""
    rng = np.random.default_rng(seed)
    if groups is None:
        return rng.permutation(n) % folds
    uniq, inverse = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    return (rng.permutation(len(uniq)) % folds)[inverse]


def _data_hash(
    emb: np.ndarray, texts: Sequence[str] | None, y: np.ndarray, categories: Sequence[str], params: Mapping[str, Any]
) -> str:
    h = hashlib.sha256()
    if texts is not None:
        for t in texts:
            h.update(t.encode("utf-8", "replace") + b"\x00")
    else:
        h.update(np.ascontiguousarray(emb, dtype=np.float32).tobytes())
    h.update(np.nan_to_num(y, nan=-1.0).astype(np.int8).tobytes())
    h.update(json.dumps([list(categories), dict(params)], sort_keys=True, default=str).encode())
    return h.hexdigest()


def _category_metrics(scores: np.ndarray, raw: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    raw_p = 1 / (1 + np.exp(-np.clip(raw, -35, 35)))
    return {
        "n_pos": int(y.sum()),
        "n_neg": int(len(y) - y.sum()),
        "average_precision": float(average_precision_score(y, scores)),
        "roc_auc": float(roc_auc_score(y, scores)),
        "ece_uncalibrated": expected_calibration_error(raw_p, y),
        "ece_calibrated": expected_calibration_error(scores, y),
        "brier_uncalibrated": float(brier_score_loss(y, raw_p)),
        "brier_calibrated": float(brier_score_loss(y, scores)),
    }


def train_text_model(
    texts_or_embeddings: np.ndarray | Sequence[str],
    label_matrix: np.ndarray,
    categories: Sequence[str],
    *,
    encoder: TextEncoder | str = "multilingual-e5-small",
    head: str = DEFAULT_HEAD,
    params: Mapping[str, Any] | None = None,
    min_positives: int | None = None,
    min_negatives: int | None = None,
    folds: int = DEFAULT_FOLDS,
    calibration: str = "auto",
    groups: Sequence[Any] | None = None,
    seed: int = 0,
    max_chars: int = DEFAULT_MAX_CHARS,
    training_data: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
    segment_max: bool = True,
    phrases: Sequence[Sequence[str]] | None = None,
) -> TextModel:
    """Fit, cross-fit held-out scores, calibrate, refit on everything.

    ``texts_or_embeddings``: prepared texts (ml.text.features.prepare_records) or their embeddings by
    ``encoder``. ``label_matrix``: (n, len(categories)) of 1 / 0 / NaN (unknown); see
    label_matrix_from_rows. With a per-category head (``logreg``, ``mlp``) a category gets a head when
    it has ``min_positives`` known positives and ``min_negatives`` known negatives (None: 10 each).
    ``groups``: rows with the same group (copies of one upload)
    always land in the same fold, so held-out scores never come from a head that saw a copy.
    ``segment_max`` (texts only): heads learn from whole texts and score each segment too; held-out
    scores, calibration and pseudo-label cuts are computed the way the model will score.
    ``head="prior"`` (the default): every category has a head, starting from the taxonomy prior
    (ml/text/prior.py; ``phrases`` per category, by default the taxonomy's own words) and refined by
    whatever labels there are, zero included; one calibrator is fitted on all categories' held-out
    scores pooled, since a few labels per category cannot calibrate each. Minimum label counts would
    contradict that design, so passing ``min_positives`` or ``min_negatives`` with it is an error rather
    than a silently ignored setting.
    """
    progress = progress or _noop
    enc = get_encoder(encoder) if isinstance(encoder, str) else encoder
    texts: list[str] | None = None
    if isinstance(texts_or_embeddings, np.ndarray) and texts_or_embeddings.dtype.kind == "f":
        emb = texts_or_embeddings.astype(np.float32, copy=False)
    else:
        texts = [str(t) for t in texts_or_embeddings]
        progress("encode", 0, len(texts))
        emb = enc.encode(texts)
        progress("encode", len(texts), len(texts))
    y_all = np.asarray(label_matrix, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[1] != enc.dim:
        raise ValueError(f"embeddings must be (n, {enc.dim}) for {enc.name}, got {emb.shape}")
    if y_all.shape != (len(emb), len(categories)):
        raise ValueError(f"label_matrix must be ({len(emb)}, {len(categories)}), got {y_all.shape}")
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; known: {HEADS}")
    if folds < 2:
        raise ValueError("folds must be >= 2: calibration and thresholds need held-out scores")
    if head == "prior" and (min_positives is not None or min_negatives is not None):
        raise ValueError(
            "the prior head scores every category, those with few or no editor labels included (its "
            "per-category corrections shrink to the taxonomy prior), so min_positives / min_negatives do "
            "not apply to it; they are for the per-category heads (logreg, mlp)"
        )

    hp = {**default_params(head), **(params or {}), "seed": seed}
    known = ~np.isnan(y_all)
    pos = np.nansum(y_all, axis=0)
    neg = known.sum(0) - pos
    if head == "prior":
        keep = list(range(len(categories)))  # the manifest records no minimum (None): none applies
    else:
        min_positives = DEFAULT_MIN_POSITIVES if min_positives is None else min_positives
        min_negatives = DEFAULT_MIN_NEGATIVES if min_negatives is None else min_negatives
        keep = [j for j in range(len(categories)) if pos[j] >= min_positives and neg[j] >= min_negatives]
    uncovered = {
        categories[j]: f"{int(pos[j])} known positives, {int(neg[j])} known negatives "
        f"(needs {min_positives} and {min_negatives})"
        for j in range(len(categories))
        if j not in set(keep)
    }
    cats = [categories[j] for j in keep]
    y = y_all[:, keep]
    rows = np.flatnonzero(known[:, keep].any(axis=1)) if keep else np.arange(0)
    x, y = emb[rows], y[rows]

    segment_max = bool(segment_max and texts is not None)
    seg_emb = np.zeros((0, enc.dim), np.float32)
    seg_owner = np.zeros(0, np.int64)  # position in ``rows`` of each segment
    if segment_max and len(rows):
        pieces = [segments(texts[i]) for i in rows]
        flat = [piece for ps in pieces for piece in ps]
        seg_owner = np.repeat(np.arange(len(pieces)), [len(ps) for ps in pieces])
        seg_emb = enc.encode(flat) if flat else seg_emb

    fold = _fold_ids(len(x), folds, seed, None if groups is None else [groups[i] for i in rows])
    if head == "prior":
        weights, calibrators, heldout, per_category, prior_params = _train_prior(
            enc, categories, phrases, x, y, fold, seg_emb, seg_owner, folds, progress
        )
        hp.update(prior_params)
    else:
        weights, calibrators, heldout, per_category = _train_heads(
            head, hp, cats, x, y, fold, seg_emb, seg_owner, folds, calibration, progress
        )
    heldout_all = np.full((len(emb), len(cats)), np.nan, dtype=np.float32)  # aligned with the input rows
    heldout_all[rows] = heldout
    progress("cross-fit", folds + 1, folds + 1)
    return _assemble(
        emb,
        texts,
        y_all,
        categories,
        cats,
        keep,
        rows,
        known,
        enc,
        head,
        hp,
        weights,
        calibrators,
        heldout,
        heldout_all,
        per_category,
        uncovered,
        min_positives,
        min_negatives,
        folds,
        calibration,
        max_chars,
        segment_max,
        training_data,
        now,
    )


def _train_heads(
    head: str,
    hp: Mapping[str, Any],
    cats: list[str],
    x: np.ndarray,
    y: np.ndarray,
    fold: np.ndarray,
    seg_emb: np.ndarray,
    seg_owner: np.ndarray,
    folds: int,
    calibration: str,
    progress: Progress,
) -> tuple[dict[str, np.ndarray], list[Calibrator], np.ndarray, dict[str, Any]]:
    """Per-category heads: cross-fit, calibrate each category on its own held-out scores, refit."""
    raw_oof = np.zeros_like(y, dtype=np.float32)
    for k in range(folds):
        progress("cross-fit", k, folds + 1)
        tr, te = fold != k, fold == k
        if te.any() and cats:
            w_k = _fit_head(head, x[tr], y[tr], hp)
            if len(seg_emb):
                full = _head_logits(head, w_k, x)
                in_fold = te[seg_owner]
                full = _max_per_owner(full, _head_logits(head, w_k, seg_emb[in_fold]), seg_owner[in_fold])
                raw_oof[te] = full[te]
            else:
                raw_oof[te] = _head_logits(head, w_k, x[te])
    progress("cross-fit", folds, folds + 1)

    heldout = np.full_like(y, np.nan, dtype=np.float32)
    calibrators: list[Calibrator] = []
    per_category: dict[str, Any] = {}
    for j, cat in enumerate(cats):
        kj = ~np.isnan(y[:, j])
        method = resolve_method(y[kj, j], calibration)  # one method per category, folds included
        for k in range(folds):  # cross-fitted calibration: held-out scores stay held out
            fit_rows, apply_rows = kj & (fold != k), kj & (fold == k)
            if apply_rows.any():
                cal_k = fit_calibrator(raw_oof[fit_rows, j], y[fit_rows, j], method)
                heldout[apply_rows, j] = cal_k.transform(raw_oof[apply_rows, j])
        calibrators.append(fit_calibrator(raw_oof[kj, j], y[kj, j], method))
        per_category[cat] = {
            **_category_metrics(heldout[kj, j], raw_oof[kj, j], y[kj, j]),
            "calibration": calibrators[-1].method,
        }
    weights = _fit_head(head, x, y, hp) if cats else _empty_weights(head, x.shape[1])
    return weights, calibrators, heldout, per_category


def _train_prior(
    enc: TextEncoder,
    categories: Sequence[str],
    phrases: Sequence[Sequence[str]] | None,
    x: np.ndarray,
    y: np.ndarray,
    fold: np.ndarray,
    seg_emb: np.ndarray,
    seg_owner: np.ndarray,
    folds: int,
    progress: Progress,
) -> tuple[dict[str, np.ndarray], list[Calibrator], np.ndarray, dict[str, Any], dict[str, Any]]:
    """The prior head: shrinkage chosen by cross-validation, one pooled calibrator, cross-fitted.

    Held-out scores come from nested selection, so the pooled calibrator's held-out ECE, the AP and
    the pseudo-label cut chosen on them are measured on folds that did not pick the shrinkage.
    """
    from ml.text.calibration import PlattCalibrator
    from ml.text.prior import DEFAULT_LAMBDA, category_phrases, fit_prior_head, initial_weights, nested_cross_fit
    from ml.text.prior import prototypes as make_prototypes

    if phrases is None:
        from ml.taxonomy import Category, load_taxonomy

        taxonomy = load_taxonomy()  # a category outside it (a custom one) is described by its own id
        phrases = category_phrases([taxonomy[c] if c in taxonomy else Category(c, c, (c,), None) for c in categories])
    if len(phrases) != len(categories):
        raise ValueError(f"{len(phrases)} phrase lists for {len(categories)} categories")
    protos = make_prototypes(enc, phrases)
    seg = seg_emb if len(seg_emb) else None
    owner = seg_owner if seg is not None else None
    progress("cross-fit", 0, folds + 1)
    raw_oof = np.full_like(y, np.nan, dtype=np.float32)
    labelled = bool((~np.isnan(y)).any()) and len(x) >= folds
    lam, cv, fold_lambdas = DEFAULT_LAMBDA, {}, []
    if labelled:  # nested: the lambda scoring fold k was chosen without fold k (ml/text/prior.py)
        raw_oof, lam, cv, fold_lambdas = nested_cross_fit(
            x, y, protos, fold, seg, owner, on_fold=lambda i: progress("cross-fit", i + 1, folds + 1)
        )
    known = ~np.isnan(y) & ~np.isnan(raw_oof)
    heldout = np.full_like(y, np.nan, dtype=np.float32)
    pooled = PlattCalibrator()  # a = 1, b = 0: the head's own probabilities when nothing is known
    if known.any() and 0 < y[known].sum() < known.sum():
        for k in range(folds):  # cross-fitted: a held-out score's calibrator never saw its video
            fit_rows = known & (fold != k)[:, None]
            apply_rows = known & (fold == k)[:, None]
            if apply_rows.any() and 0 < y[fit_rows].sum() < fit_rows.sum():
                heldout[apply_rows] = (
                    PlattCalibrator().fit(raw_oof[fit_rows], y[fit_rows]).transform(raw_oof[apply_rows])
                )
        pooled = PlattCalibrator().fit(raw_oof[known], y[known])
    per_category: dict[str, Any] = {}
    for j, cat in enumerate(categories):
        kj = known[:, j] & ~np.isnan(heldout[:, j])
        if kj.any() and 0 < y[kj, j].sum() < kj.sum():
            per_category[cat] = {**_category_metrics(heldout[kj, j], raw_oof[kj, j], y[kj, j]), "calibration": "platt"}
    weights = fit_prior_head(x, y, protos, lam, seg, owner) if labelled else initial_weights(protos)
    calibrators: list[Calibrator] = [pooled] * len(categories)
    info = {
        "prior_lambda": lam,
        "prior_lambda_cv_gap": cv,
        "prior_lambda_per_fold": fold_lambdas,
        "pooled_calibration": True,
        "prior_phrases": sum(map(len, phrases)),
    }
    return weights, calibrators, heldout, per_category, info


def _assemble(
    emb,
    texts,
    y_all,
    categories,
    cats,
    keep,
    rows,
    known,
    enc,
    head,
    hp,
    weights,
    calibrators,
    heldout,
    heldout_all,
    per_category,
    uncovered,
    min_positives,
    min_negatives,
    folds,
    calibration,
    max_chars,
    segment_max,
    training_data,
    now,
) -> TextModel:
    y = y_all[rows][:, keep] if len(keep) else np.zeros((len(rows), 0), np.float32)
    now = now or dt.datetime.now(dt.UTC)
    params_out = {
        **hp,
        "min_positives": min_positives,
        "min_negatives": min_negatives,
        "folds": folds,
        "calibration": calibration,
        "max_chars": max_chars,
        "min_letters": MIN_LETTERS,
        "segment_max": segment_max,
    }
    data_hash = _data_hash(emb, texts, y_all, categories, {**params_out, "head": head, "encoder": enc.name})
    summary = {
        "n_videos": len(emb),
        "n_videos_with_labels": len(rows),
        "n_known_labels": int(known.sum()),
        "n_positive_labels": int(np.nansum(y_all)),
        "n_categories_requested": len(categories),
        "n_categories_covered": len(cats),
        "data_hash": data_hash,
        **dict(training_data or {}),
    }
    return TextModel(
        version=f"{now:%Y%m%dT%H%M%SZ}-{data_hash[:8]}",
        categories=cats,
        encoder_name=enc.name,
        dim=enc.dim,
        head=head,
        weights=weights,
        calibrators=calibrators,
        uncovered=uncovered,
        params=params_out,
        training_data=summary,
        metrics={**_summary_metrics(heldout, y, per_category), "per_category": per_category},
        created_at=now.isoformat(),
        heldout_scores=heldout_all,
        heldout_labels=y_all[:, keep],
        encoder=enc,
    )


def _empty_weights(head: str, dim: int) -> dict[str, np.ndarray]:
    if head == "logreg":
        return {"W": np.zeros((0, dim), np.float32), "b": np.zeros(0, np.float32)}
    return {
        "W1": np.zeros((dim, 1), np.float32),
        "b1": np.zeros(1, np.float32),
        "W2": np.zeros((1, 0), np.float32),
        "b2": np.zeros(0, np.float32),
    }


def _summary_metrics(scores: np.ndarray, y: np.ndarray, per_category: Mapping[str, Any]) -> dict[str, Any]:
    known = ~np.isnan(y)
    if not per_category or not known.any():
        return {"macro_average_precision": None, "micro_average_precision": None}
    from sklearn.metrics import average_precision_score

    return {
        "macro_average_precision": float(np.mean([m["average_precision"] for m in per_category.values()])),
        "micro_average_precision": float(average_precision_score(y[known], scores[known])),
        "macro_ece_uncalibrated": float(np.mean([m["ece_uncalibrated"] for m in per_category.values()])),
        "macro_ece_calibrated": float(np.mean([m["ece_calibrated"] for m in per_category.values()])),
    }


# ---------------------------------------------------------------------------------------------------
# Prediction over catalog rows


@dataclass(frozen=True)
class TextPrediction:
    """One row of ``text_predictions``: scores align with model.categories, None without text."""

    has_text: bool
    language: str | None
    text_chars: int
    scores: np.ndarray | None
    error: str | None = None


def predict_records(
    model: TextModel,
    records: Sequence[Mapping[str, Any]],
    batch_size: int = 256,
    progress: Progress | None = None,
) -> list[TextPrediction]:
    """Score catalog rows (title, description, tags, language); one result per record, in order.

    Videos without usable text get has_text=False and no scores. A failing encoder batch is retried
    one video at a time, so one poisonous text costs only its own prediction (with an error).
    """
    progress = progress or _noop
    prepared = prepare_records(records, max_chars=model.max_chars)
    scores: dict[int, np.ndarray] = {}
    errors: dict[int, str] = {}
    todo = [i for i, p in enumerate(prepared) if p.has_text]
    for start in range(0, len(todo), batch_size):
        idx = todo[start : start + batch_size]
        try:
            probs = model.predict_proba([prepared[i].text for i in idx])
            scores.update(zip(idx, probs, strict=True))
        except Exception:
            for i in idx:
                try:
                    scores[i] = model.predict_proba([prepared[i].text])[0]
                except Exception as exc:
                    errors[i] = f"{type(exc).__name__}: {exc}"
        progress("predict", min(start + batch_size, len(todo)), len(todo))
    return [
        TextPrediction(
            has_text=i in scores,
            language=p.language,
            text_chars=p.text_chars,
            scores=scores.get(i),
            error=p.error or errors.get(i),
        )
        for i, p in enumerate(prepared)
    ]
