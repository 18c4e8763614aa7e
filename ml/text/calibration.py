"""Per-category probability calibration: Platt scaling and isotonic regression.

Heads are trained with balanced class weights, which inflates the scores of rare categories; the
pseudo-label and fusion thresholds need scores that mean what they say (0.9 -> right 9 times in 10).
Calibrators are fitted on out-of-fold scores (see ml/text/model.py) and stored as plain arrays, so a
saved model loads with numpy alone and does not depend on the pickling format of a library version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Isotonic regression needs many positives to avoid a staircase that overfits; Platt's two
# parameters are safe with few. "auto" switches at this many positives (and negatives).
ISOTONIC_MIN_CLASS = 50


def _as_1d(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(-1)


@dataclass
class PlattCalibrator:
    """p = sigmoid(a * s + b) on raw scores (logits), fitted with Platt's smoothed targets."""

    a: float = 1.0
    b: float = 0.0
    method: str = "platt"

    def fit(self, scores: Any, labels: Any, max_iter: int = 100) -> PlattCalibrator:
        s, y = _as_1d(scores), _as_1d(labels)
        n_pos, n_neg = float(y.sum()), float(len(y) - y.sum())
        # Platt (1999): targets shrunk towards the prior, so a separable fold does not give a = inf.
        t = np.where(y > 0.5, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
        a, b = 0.0, float(np.log((n_pos + 1) / (n_neg + 1)))

        def loss(a: float, b: float) -> float:
            z = a * s + b
            return float(np.sum(np.logaddexp(0, z) - t * z))

        current = loss(a, b)
        for _ in range(max_iter):  # damped Newton: the loss is convex, the halving guards overshoot
            p = 1 / (1 + np.exp(-np.clip(a * s + b, -35, 35)))
            w = np.maximum(p * (1 - p), 1e-12)
            g = np.array([np.dot(p - t, s), np.sum(p - t)])
            h = np.array([[np.dot(w * s, s) + 1e-9, np.dot(w, s)], [np.dot(w, s), np.sum(w) + 1e-9]])
            try:
                step = np.linalg.solve(h, g)
            except np.linalg.LinAlgError:
                break
            scale = 1.0
            while scale > 1e-6 and loss(a - scale * step[0], b - scale * step[1]) > current + 1e-12:
                scale /= 2
            a, b = a - scale * step[0], b - scale * step[1]
            new = loss(a, b)
            if abs(current - new) < 1e-10 * max(1.0, abs(current)):
                break
            current = new
        self.a, self.b = float(a), float(b)
        return self

    def transform(self, scores: Any) -> np.ndarray:
        z = np.clip(self.a * _as_1d(scores) + self.b, -35, 35)
        return 1 / (1 + np.exp(-z))

    def to_dict(self) -> dict:
        return {"method": "platt", "a": self.a, "b": self.b}


@dataclass
class IsotonicCalibrator:
    """Monotone step function from raw score to probability, linear between steps."""

    x: np.ndarray | None = None
    y: np.ndarray | None = None
    method: str = "isotonic"

    def fit(self, scores: Any, labels: Any) -> IsotonicCalibrator:
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        iso.fit(_as_1d(scores), _as_1d(labels))
        self.x = np.asarray(iso.X_thresholds_, dtype=np.float64)
        self.y = np.asarray(iso.y_thresholds_, dtype=np.float64)
        return self

    def transform(self, scores: Any) -> np.ndarray:
        if self.x is None or self.y is None:
            raise RuntimeError("IsotonicCalibrator used before fit")
        return np.interp(_as_1d(scores), self.x, self.y)

    def to_dict(self) -> dict:
        return {"method": "isotonic", "x": [float(v) for v in self.x], "y": [float(v) for v in self.y]}


Calibrator = PlattCalibrator | IsotonicCalibrator


def resolve_method(labels: Any, method: str = "auto") -> str:
    """'auto' becomes isotonic once both classes have ISOTONIC_MIN_CLASS examples, else Platt."""
    if method != "auto":
        return method
    y = _as_1d(labels)
    n_pos = int(y.sum())
    return "isotonic" if min(n_pos, len(y) - n_pos) >= ISOTONIC_MIN_CLASS else "platt"


def fit_calibrator(scores: Any, labels: Any, method: str = "auto") -> Calibrator:
    """Fit 'platt', 'isotonic' or 'auto' (see resolve_method) on raw scores and 0/1 labels."""
    y = _as_1d(labels)
    method = resolve_method(y, method)
    if method == "platt":
        return PlattCalibrator().fit(scores, y)
    if method == "isotonic":
        return IsotonicCalibrator().fit(scores, y)
    raise ValueError(f"unknown calibration method {method!r}; use 'platt', 'isotonic' or 'auto'")


def calibrator_from_dict(d: dict) -> Calibrator:
    if d.get("method") == "platt":
        return PlattCalibrator(a=float(d["a"]), b=float(d["b"]))
    if d.get("method") == "isotonic":
        return IsotonicCalibrator(x=np.asarray(d["x"], dtype=np.float64), y=np.asarray(d["y"], dtype=np.float64))
    raise ValueError(f"not a saved calibrator: {d!r}")


def reliability_curve(probs: Any, labels: Any, n_bins: int = 10) -> list[dict]:
    """Per equal-width bin: count, mean predicted probability, observed positive rate."""
    p, y = _as_1d(probs), _as_1d(labels)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1], right=True), 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        m = idx == b
        if m.any():
            out.append(
                {
                    "lo": float(edges[b]),
                    "hi": float(edges[b + 1]),
                    "n": int(m.sum()),
                    "mean_prob": float(p[m].mean()),
                    "positive_rate": float(y[m].mean()),
                }
            )
    return out


def expected_calibration_error(probs: Any, labels: Any, n_bins: int = 10) -> float:
    """Count-weighted mean |predicted - observed| over equal-width bins."""
    curve = reliability_curve(probs, labels, n_bins)
    n = sum(b["n"] for b in curve)
    if n == 0:
        return float("nan")
    return float(sum(b["n"] * abs(b["mean_prob"] - b["positive_rate"]) for b in curve) / n)
