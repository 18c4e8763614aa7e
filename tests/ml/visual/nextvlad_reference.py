"""NeXtVLAD and its classifier head in plain NumPy, written from the paper's equations.

An independent second implementation for ``tests/ml/visual/test_nextvlad.py``: the residual form
y_jk = sum_i sum_g a_g(x_i) a_gk(x_i) (x~_ijg - c_kj) is summed group by group and cluster by
cluster, instead of the matmul-minus-centroid-term form of ``ml/visual/nextvlad.py`` and the reference
TensorFlow code. Inference only (BatchNorm with running statistics, dropout off), float64.

Weights come as a dict of arrays under the paper's names (see ``nextvlad`` and ``head``); the test
maps the torch state_dict onto them.
"""

from __future__ import annotations

import numpy as np

BN_EPS = 1e-3
L2_EPS = 1e-12


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def softmax(z: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def batch_norm(z: np.ndarray, bn: dict[str, np.ndarray]) -> np.ndarray:
    """Inference BatchNorm: gamma (z - running mean) / sqrt(running var + eps) + beta, per channel."""
    return bn["gamma"] * (z - bn["mean"]) / np.sqrt(bn["var"] + BN_EPS) + bn["beta"]


def nextvlad(x: np.ndarray, mask: np.ndarray, p: dict, groups: int, clusters: int) -> np.ndarray:
    """x (B, M, N), mask (B, M) of 0/1 -> (B, K * λN/G).

    p: W_e (λN, N), b_e (λN)       expansion           x_dot_i = W_e x_i + b_e
       W_g (G, λN), b_g (G)        group attention     a_g(x_i) = sigmoid(w_g . x_dot_i + b_g) * mask_i
       W_c (G*K, λN)               cluster logits      z_igk = w_gk . x_dot_i, row g*K + k
       bn_c {gamma, beta, mean, var} over the G*K logits
       C (λN/G, K)                 centroids           c_k = C[:, k]
       bn_v {...} over the flattened VLAD (index j*K + k)
    """
    x = np.where(mask[..., None] > 0, x, 0.0)
    batch, frames, _ = x.shape
    x_dot = np.einsum("bmn,en->bme", x, p["W_e"]) + p["b_e"]
    expanded = x_dot.shape[-1]
    group_dim = expanded // groups

    attention = sigmoid(np.einsum("bme,ge->bmg", x_dot, p["W_g"]) + p["b_g"]) * mask[..., None]

    w_c = p["W_c"].reshape(groups, clusters, expanded)
    logits = np.einsum("bme,gke->bmgk", x_dot, w_c)
    bn_c = {name: value.reshape(groups, clusters) for name, value in p["bn_c"].items()}
    assignment = softmax(batch_norm(logits, bn_c), axis=-1)  # a_gk(x_i), softmax over k

    # x~_ig: the g-th slice of length λN/G of the expanded frame.
    x_tilde = x_dot.reshape(batch, frames, groups, group_dim)
    y = np.zeros((batch, group_dim, clusters))
    for g in range(groups):
        for k in range(clusters):
            weight = attention[:, :, g] * assignment[:, :, g, k]  # (B, M)
            residual = x_tilde[:, :, g, :] - p["C"][:, k]  # (B, M, λN/G)
            y[:, :, k] += np.einsum("bm,bmj->bj", weight, residual)

    # Intra-normalisation: each cluster's residual vector to unit L2 norm.
    for k in range(clusters):
        norm = np.sqrt(np.maximum((y[:, :, k] ** 2).sum(axis=1, keepdims=True), L2_EPS))
        y[:, :, k] = y[:, :, k] / norm

    flat = np.empty((batch, group_dim * clusters))
    for j in range(group_dim):
        for k in range(clusters):
            flat[:, j * clusters + k] = y[:, j, k]
    return batch_norm(flat, p["bn_v"])


def head(v: np.ndarray, p: dict, meta: np.ndarray | None = None) -> np.ndarray:
    """Video vector (B, D) -> logits (B, C).

    p: W_h (H, D) no bias, bn_h; W_1 (H/r, H) no bias, bn_1; W_2 (H, H/r) no bias;
       W_out (C, H [+ meta]), b_out (C).
    h = BN(W_h v); gate = sigmoid(W_2 relu(BN(W_1 h))); logits = W_out [h * gate ; meta] + b_out.
    """
    h = batch_norm(v @ p["W_h"].T, p["bn_h"])
    bottleneck = np.maximum(batch_norm(h @ p["W_1"].T, p["bn_1"]), 0.0)
    gated = h * sigmoid(bottleneck @ p["W_2"].T)
    if meta is not None:
        gated = np.concatenate([gated, meta], axis=1)
    return gated @ p["W_out"].T + p["b_out"]


def masked_mean(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    total = np.zeros((x.shape[0], x.shape[2]))
    for b in range(x.shape[0]):
        rows = [x[b, m] for m in range(x.shape[1]) if mask[b, m] > 0]
        if rows:
            total[b] = np.mean(rows, axis=0)
    return total
