"""NeXtVLAD frame aggregation and the video-level classifier head (Lin, Xiao and Fan, 2018).

The visual student sees a video as up to 300 frame embeddings and must turn them into one vector.
NeXtVLAD does that with a fraction of NetVLAD's parameters: frames are expanded, cut into G groups
with their own attention, and each group is soft-assigned to K shared clusters. The computation
follows the authors' TensorFlow code (github.com/linrongc/youtube-8m, ``nextvlad.py``: class
``NeXtVLAD.forward`` and ``NeXtVLADModel.create_model``) step for step, including the flatten order
and BatchNorm epsilon 1e-3, so published settings transfer; ``docs/nextvlad.md`` maps each line to
the paper's equations and lists the two deliberate deviations (padding never enters BatchNorm
statistics, and a faster BatchNorm momentum).

torch is imported at module level: only training and inference code imports this module.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

# slim.batch_norm's default epsilon, used by every BatchNorm of the reference model.
BN_EPS = 1e-3
# The reference keeps slim's decay 0.999 (torch momentum 0.001) over ~700k steps; our training runs
# are a few thousand steps, where 0.001 would leave the running statistics near their initial values.
BN_MOMENTUM = 0.01
# tf.nn.l2_normalize's floor on the squared norm, so an all-zero cluster stays zero instead of NaN.
L2_EPS = 1e-12


def _variance_scaling_(weight: torch.Tensor, fan_in: int) -> None:
    """Initialise like slim.variance_scaling_initializer(), the reference's choice for every weight.

    TF draws a normal truncated at two standard deviations and widens it by sqrt(1.3) so that the
    truncated distribution keeps the He variance 2 / fan_in.
    """
    std = math.sqrt(1.3 * 2.0 / fan_in)
    if weight.is_meta:  # shape-only modules (parameter counting) have no values to draw
        return
    # Rejection sampling: exact, and far faster on CPU than nn.init.trunc_normal_'s erfinv.
    with torch.no_grad():
        flat = weight.view(-1)
        flat.normal_(0.0, std)
        redraw = torch.nonzero(flat.abs() > 2.0 * std).squeeze(1)
        while redraw.numel():
            flat[redraw] = torch.randn(redraw.numel(), dtype=flat.dtype, device=flat.device) * std
            redraw = redraw[flat[redraw].abs() > 2.0 * std]


def _batch_norm(num_features: int, momentum: float) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(num_features, eps=BN_EPS, momentum=momentum)


def _valid_frames(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Boolean (B, M) mask of real frames; None means every frame is real."""
    if x.dim() != 3:
        raise ValueError(f"frames must be (batch, frames, features), got shape {tuple(x.shape)}")
    if mask is None:
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    if mask.shape != x.shape[:2]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match frames {tuple(x.shape[:2])}")
    return mask.to(torch.bool)


class NeXtVLAD(nn.Module):
    """Aggregates (B, M, N) frame features into one (B, K·λN/G) vector per video.

    ``forward(x, mask)``: ``mask`` (B, M), true/1 for real frames. Padded frames never contribute:
    their input is zeroed (so NaN padding cannot leak through 0·NaN) and their attention is 0, which
    removes them from both the residual sum and the centroid term. In training mode the cluster
    BatchNorm takes its batch statistics from real frames only, so the output of a video does not
    depend on how much padding its batch carries; ``bn_stats_on_padding=True`` restores the
    reference behaviour, where the (zero-input) padded frames enter those statistics too.
    """

    def __init__(
        self,
        feature_size: int,
        max_frames: int | None = None,
        cluster_size: int = 64,
        expansion: int = 2,
        groups: int = 8,
        *,
        bn_momentum: float = BN_MOMENTUM,
        bn_stats_on_padding: bool = False,
    ) -> None:
        super().__init__()
        expanded = expansion * feature_size
        if expanded % groups:
            raise ValueError(f"groups={groups} must divide expansion*feature_size={expanded}")
        self.feature_size = feature_size
        self.max_frames = max_frames
        self.cluster_size = cluster_size
        self.expansion = expansion
        self.groups = groups
        self.group_dim = expanded // groups
        self.bn_stats_on_padding = bn_stats_on_padding

        # Expansion x_dot = W_e x + b_e (slim.fully_connected: with bias, no activation).
        self.expansion_fc = nn.Linear(feature_size, expanded)
        # Group attention sigma(w_g^T x_dot + b_g): computed from the *expanded* features.
        self.attention_fc = nn.Linear(expanded, groups)
        # cluster_weights: one matmul gives every group's K logits; column g*K + k is (group g, cluster k).
        self.cluster_fc = nn.Linear(expanded, groups * cluster_size, bias=False)
        self.cluster_bn = _batch_norm(groups * cluster_size, bn_momentum)
        # cluster_weights2: the centroids c_k, shared by all groups, stored (λN/G, K) as in the reference.
        self.centroids = nn.Parameter(torch.empty(self.group_dim, cluster_size))
        self.vlad_bn = _batch_norm(self.output_dim, bn_momentum)

        _variance_scaling_(self.expansion_fc.weight, feature_size)
        _variance_scaling_(self.attention_fc.weight, expanded)
        _variance_scaling_(self.cluster_fc.weight, expanded)
        _variance_scaling_(self.centroids, self.group_dim)
        nn.init.zeros_(self.expansion_fc.bias)
        nn.init.zeros_(self.attention_fc.bias)

    @property
    def output_dim(self) -> int:
        return self.cluster_size * self.group_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        valid = _valid_frames(x, mask)
        batch, frames, _ = x.shape
        if self.max_frames is not None and frames > self.max_frames:
            raise ValueError(f"{frames} frames exceed max_frames={self.max_frames}: cap them before batching")
        groups, clusters, group_dim = self.groups, self.cluster_size, self.group_dim

        x = x.masked_fill(~valid.unsqueeze(-1), 0.0)
        expanded = self.expansion_fc(x)  # (B, M, λN)
        attention = torch.sigmoid(self.attention_fc(expanded)) * valid.unsqueeze(-1).to(x.dtype)
        attention = attention.reshape(batch, frames * groups, 1)

        logits = self._cluster_bn(self.cluster_fc(expanded), valid)  # (B, M, G*K)
        assignment = torch.softmax(logits.reshape(batch, frames * groups, clusters), dim=-1) * attention

        # Centroid term: sum_i,g of the weighted assignments times c_k, i.e. a_sum * cluster_weights2.
        a = assignment.sum(dim=1, keepdim=True) * self.centroids  # (B, λN/G, K)
        grouped = expanded.reshape(batch, frames * groups, group_dim)  # x_tilde
        vlad = torch.bmm(assignment.transpose(1, 2), grouped).transpose(1, 2) - a  # (B, λN/G, K)

        # Intra-normalisation: L2 per cluster over the feature axis, as tf.nn.l2_normalize(vlad, 1).
        vlad = vlad * torch.rsqrt(vlad.pow(2).sum(dim=1, keepdim=True).clamp_min(L2_EPS))
        # Feature-major flatten (index j*K + k), the reference's reshape, so weights stay portable.
        return self.vlad_bn(vlad.reshape(batch, group_dim * clusters))

    def _cluster_bn(self, logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """BatchNorm over the G*K channels; in training, statistics come from real frames only."""
        batch, frames, channels = logits.shape
        flat = logits.reshape(batch * frames, channels)
        keep = valid.reshape(batch * frames)
        if not self.training or self.bn_stats_on_padding or bool(keep.all()):
            return self.cluster_bn(flat).reshape(batch, frames, channels)
        out = flat.new_zeros(flat.shape)  # padded rows: any finite value, their attention is 0
        if bool(keep.any()):
            out[keep] = self.cluster_bn(flat[keep])
        return out.reshape(batch, frames, channels)


class ContextGating(nn.Module):
    """SE context gating of the reference head: h * sigmoid(W2 relu(BN(W1 h))).

    The gate lets the classifier re-weight hidden units by the whole video's context (the paper's
    "SE context gating", ``gating_weights_1``/``gating_bn``/``gating_weights_2``): no bias on either
    matmul, BatchNorm and ReLU only on the bottleneck, no BatchNorm after the second matmul.
    """

    def __init__(self, dim: int, reduction: int = 8, *, bn_momentum: float = BN_MOMENTUM) -> None:
        super().__init__()
        if dim % reduction:
            raise ValueError(f"gating reduction {reduction} must divide the hidden size {dim}")
        self.squeeze = nn.Linear(dim, dim // reduction, bias=False)
        self.bn = _batch_norm(dim // reduction, bn_momentum)
        self.excite = nn.Linear(dim // reduction, dim, bias=False)
        _variance_scaling_(self.squeeze.weight, dim)
        _variance_scaling_(self.excite.weight, dim // reduction)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h * torch.sigmoid(self.excite(F.relu(self.bn(self.squeeze(h)))))


class ClassifierHead(nn.Module):
    """Video vector -> logits: dropout, FC to H (no bias), BatchNorm, SE gating, [meta], classifier.

    The optional metadata vector is concatenated after the gating, right before the classifier FC
    (DESIGN: "concatenated before the classifier"). That keeps the visual path identical to the
    reference and independent of metadata, so ``embed`` is the same vector whether or not a video has
    metadata, and the classifier becomes a late fusion ``W_v h + W_m meta + b``. Returns logits: the
    caller applies sigmoid or BCEWithLogits (soft targets work, BCE takes floats).
    """

    def __init__(
        self,
        input_dim: int,
        hidden_size: int,
        num_classes: int,
        *,
        gating_reduction: int = 8,
        dropout: float = 0.5,
        meta_dim: int = 0,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        self.meta_dim = meta_dim
        self.dropout = nn.Dropout(dropout)
        self.hidden = nn.Linear(input_dim, hidden_size, bias=False)
        self.hidden_bn = _batch_norm(hidden_size, bn_momentum)
        self.gating = ContextGating(hidden_size, gating_reduction, bn_momentum=bn_momentum)
        # The reference's LogisticModel: one linear layer with bias.
        self.classifier = nn.Linear(hidden_size + meta_dim, num_classes)
        _variance_scaling_(self.hidden.weight, input_dim)
        nn.init.xavier_uniform_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """The gated hidden vector (B, H): the visual representation before metadata joins."""
        return self.gating(self.hidden_bn(self.hidden(self.dropout(features))))

    def forward(self, features: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        h = self.embed(features)
        if self.meta_dim:
            if meta is None or meta.shape != (h.shape[0], self.meta_dim):
                got = None if meta is None else tuple(meta.shape)
                raise ValueError(f"meta must be ({h.shape[0]}, {self.meta_dim}), got {got}")
            h = torch.cat([h, meta.to(h.dtype)], dim=1)
        elif meta is not None:
            raise ValueError("this head was built with meta_dim=0 but a meta tensor was given")
        return self.classifier(h)


class NeXtVLADClassifier(nn.Module):
    """Frames (B, M, N) + mask (+ metadata) -> category logits (B, C): NeXtVLAD then ClassifierHead."""

    def __init__(
        self,
        feature_size: int,
        num_classes: int,
        *,
        cluster_size: int = 64,
        hidden_size: int = 1024,
        expansion: int = 2,
        groups: int = 8,
        max_frames: int | None = None,
        dropout: float = 0.5,
        gating_reduction: int = 8,
        meta_dim: int = 0,
        bn_momentum: float = BN_MOMENTUM,
        bn_stats_on_padding: bool = False,
    ) -> None:
        super().__init__()
        self.nextvlad = NeXtVLAD(
            feature_size,
            max_frames,
            cluster_size,
            expansion,
            groups,
            bn_momentum=bn_momentum,
            bn_stats_on_padding=bn_stats_on_padding,
        )
        self.head = ClassifierHead(
            self.nextvlad.output_dim,
            hidden_size,
            num_classes,
            gating_reduction=gating_reduction,
            dropout=dropout,
            meta_dim=meta_dim,
            bn_momentum=bn_momentum,
        )

    def embed(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head.embed(self.nextvlad(x, mask))

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, meta: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.head(self.nextvlad(x, mask), meta)


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of the real frames (B, N); a video without frames gets zeros rather than NaN."""
    valid = _valid_frames(x, mask).unsqueeze(-1)
    total = x.masked_fill(~valid, 0.0).sum(dim=1)
    return total / valid.sum(dim=1).clamp_min(1).to(x.dtype)


class MeanPoolClassifier(nn.Module):
    """Baseline: masked mean of the frames, then the same head as NeXtVLADClassifier.

    Kept so every NeXtVLAD result can be compared against the simplest aggregation with an
    identical head, optimiser and data.
    """

    def __init__(
        self,
        feature_size: int,
        num_classes: int,
        *,
        hidden_size: int = 1024,
        dropout: float = 0.5,
        gating_reduction: int = 8,
        meta_dim: int = 0,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        self.head = ClassifierHead(
            feature_size,
            hidden_size,
            num_classes,
            gating_reduction=gating_reduction,
            dropout=dropout,
            meta_dim=meta_dim,
            bn_momentum=bn_momentum,
        )

    def embed(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head.embed(masked_mean(x, mask))

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, meta: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.head(masked_mean(x, mask), meta)


# ----------------------------------------------------------------------------------------------
# Parameter counts: trainable parameters (BatchNorm running statistics are buffers, not counted).


def nextvlad_layer_param_count(feature_size: int, cluster_size: int, expansion: int = 2, groups: int = 8) -> int:
    """Trainable parameters of one NeXtVLAD layer, including biases and BatchNorm scale/shift."""
    expanded = expansion * feature_size
    group_dim = expanded // groups
    expansion_fc = expanded * feature_size + expanded
    attention_fc = expanded * groups + groups
    cluster_fc = expanded * groups * cluster_size  # no bias
    cluster_bn = 2 * groups * cluster_size
    centroids = group_dim * cluster_size
    vlad_bn = 2 * group_dim * cluster_size
    return expansion_fc + attention_fc + cluster_fc + cluster_bn + centroids + vlad_bn


def head_param_count(
    input_dim: int, hidden_size: int, num_classes: int, gating_reduction: int = 8, meta_dim: int = 0
) -> int:
    """Trainable parameters of ClassifierHead: hidden FC + BN, SE gating, classifier with bias."""
    bottleneck = hidden_size // gating_reduction
    hidden = input_dim * hidden_size + 2 * hidden_size  # FC without bias, BatchNorm
    gating = 2 * hidden_size * bottleneck + 2 * bottleneck  # two FCs without bias, BatchNorm
    classifier = (hidden_size + meta_dim) * num_classes + num_classes
    return hidden + gating + classifier


def nextvlad_param_count(
    feature_size: int,
    cluster_size: int,
    groups: int,
    expansion: int,
    hidden_size: int,
    num_classes: int,
    gating_reduction: int = 8,
    meta_dim: int = 0,
) -> int:
    """Exact trainable parameter count of ``NeXtVLADClassifier`` with these settings."""
    layer = nextvlad_layer_param_count(feature_size, cluster_size, expansion, groups)
    vlad_dim = cluster_size * expansion * feature_size // groups
    return layer + head_param_count(vlad_dim, hidden_size, num_classes, gating_reduction, meta_dim)


def paper_param_estimate(feature_size: int, cluster_size: int, groups: int, expansion: int, hidden_size: int) -> int:
    """The paper's count λN(N + G + K(G + (H+1)/G)) for NeXtVLAD plus the hidden FC.

    It counts the expansion, attention, cluster and centroid weights and the hidden FC, leaving out
    biases, BatchNorm, the SE gating and the classifier. For the paper's configuration it gives
    79.8M, matching the paper's "less than 80M parameters"; the whole model is 88.9M.
    """
    expanded = expansion * feature_size
    group_dim = expanded // groups
    aggregation = expanded * (feature_size + groups + groups * cluster_size)
    return aggregation + group_dim * cluster_size * (hidden_size + 1)
