"""ml.visual.nextvlad against an independent NumPy implementation, the frame mask, and parameter counts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from ml.visual.nextvlad import (
    ClassifierHead,
    ContextGating,
    MeanPoolClassifier,
    NeXtVLAD,
    NeXtVLADClassifier,
    head_param_count,
    nextvlad_layer_param_count,
    nextvlad_param_count,
    paper_param_estimate,
)

# Loaded by path so the test works whether or not tests/ml is a package.
_spec = importlib.util.spec_from_file_location("nextvlad_reference", Path(__file__).with_name("nextvlad_reference.py"))
assert _spec is not None and _spec.loader is not None
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)


def _randomize_batch_norms(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial running statistics and affine parameters, so eval-mode BatchNorm is really tested."""
    gen = torch.Generator().manual_seed(seed)
    for bn in module.modules():
        if isinstance(bn, torch.nn.BatchNorm1d):
            n = bn.num_features
            bn.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
            bn.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
            with torch.no_grad():
                bn.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                bn.bias.copy_(torch.randn(n, generator=gen) * 0.3)


def _np(sd: dict[str, torch.Tensor], name: str) -> np.ndarray:
    return sd[name].detach().double().numpy()


def _bn(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, np.ndarray]:
    return {
        "gamma": _np(sd, f"{prefix}.weight"),
        "beta": _np(sd, f"{prefix}.bias"),
        "mean": _np(sd, f"{prefix}.running_mean"),
        "var": _np(sd, f"{prefix}.running_var"),
    }


def _layer_weights(sd: dict[str, torch.Tensor], prefix: str = "") -> dict:
    return {
        "W_e": _np(sd, f"{prefix}expansion_fc.weight"),
        "b_e": _np(sd, f"{prefix}expansion_fc.bias"),
        "W_g": _np(sd, f"{prefix}attention_fc.weight"),
        "b_g": _np(sd, f"{prefix}attention_fc.bias"),
        "W_c": _np(sd, f"{prefix}cluster_fc.weight"),
        "bn_c": _bn(sd, f"{prefix}cluster_bn"),
        "C": _np(sd, f"{prefix}centroids"),
        "bn_v": _bn(sd, f"{prefix}vlad_bn"),
    }


def _head_weights(sd: dict[str, torch.Tensor], prefix: str = "head.") -> dict:
    return {
        "W_h": _np(sd, f"{prefix}hidden.weight"),
        "bn_h": _bn(sd, f"{prefix}hidden_bn"),
        "W_1": _np(sd, f"{prefix}gating.squeeze.weight"),
        "bn_1": _bn(sd, f"{prefix}gating.bn"),
        "W_2": _np(sd, f"{prefix}gating.excite.weight"),
        "W_out": _np(sd, f"{prefix}classifier.weight"),
        "b_out": _np(sd, f"{prefix}classifier.bias"),
    }


def _inputs(batch: int, frames: int, features: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random frames with a mask of varied lengths: full, partial, and (for batch >= 3) empty videos."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, frames, features, generator=gen, dtype=torch.float64)
    lengths = torch.randint(1, frames + 1, (batch,), generator=gen)
    lengths[0] = frames
    if batch >= 3:
        lengths[-1] = 0
    mask = torch.arange(frames)[None, :] < lengths[:, None]
    return x, mask


# (batch, frames, N, K, G, λ, H, classes, meta_dim)
SHAPES = [
    (3, 7, 12, 4, 4, 2, 16, 5, 0),
    (2, 5, 16, 8, 8, 2, 32, 7, 3),
    (4, 3, 10, 3, 5, 1, 8, 2, 0),
    (3, 9, 6, 5, 2, 3, 24, 4, 2),
]


@pytest.mark.parametrize(("batch", "frames", "n", "k", "g", "lam", "h", "c", "meta_dim"), SHAPES)
def test_classifier_matches_numpy_reference(
    batch: int, frames: int, n: int, k: int, g: int, lam: int, h: int, c: int, meta_dim: int
) -> None:
    torch.manual_seed(0)
    model = NeXtVLADClassifier(
        n, c, cluster_size=k, hidden_size=h, expansion=lam, groups=g, gating_reduction=4, meta_dim=meta_dim
    )
    _randomize_batch_norms(model, seed=1)
    model.double().eval()
    x, mask = _inputs(batch, frames, n, seed=2)
    meta = torch.randn(batch, meta_dim, dtype=torch.float64) if meta_dim else None
    sd = model.state_dict()

    with torch.no_grad():
        vlad = model.nextvlad(x, mask).numpy()
        logits = model(x, mask, meta).numpy()

    x_np, mask_np = x.numpy(), mask.numpy().astype(np.float64)
    vlad_ref = ref.nextvlad(x_np, mask_np, _layer_weights(sd, "nextvlad."), g, k)
    logits_ref = ref.head(vlad_ref, _head_weights(sd), None if meta is None else meta.numpy())

    assert vlad.shape == (batch, k * lam * n // g) == (batch, model.nextvlad.output_dim)
    np.testing.assert_allclose(vlad, vlad_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logits, logits_ref, rtol=1e-5, atol=1e-5)


def test_float32_stays_close_to_reference() -> None:
    """The production dtype: same equations, float32 rounding stays far below 1e-5."""
    torch.manual_seed(3)
    model = NeXtVLADClassifier(32, 6, cluster_size=8, hidden_size=32, groups=8)
    _randomize_batch_norms(model, seed=4)
    model.eval()
    x, mask = _inputs(4, 11, 32, seed=5)
    with torch.no_grad():
        logits = model(x.float(), mask).double().numpy()
    sd = model.state_dict()
    vlad_ref = ref.nextvlad(x.numpy(), mask.numpy().astype(np.float64), _layer_weights(sd, "nextvlad."), 8, 8)
    np.testing.assert_allclose(logits, ref.head(vlad_ref, _head_weights(sd)), rtol=1e-5, atol=1e-5)


def test_mean_pool_matches_numpy_reference() -> None:
    torch.manual_seed(6)
    model = MeanPoolClassifier(10, 4, hidden_size=16, gating_reduction=4, meta_dim=2)
    _randomize_batch_norms(model, seed=7)
    model.double().eval()
    x, mask = _inputs(3, 6, 10, seed=8)
    meta = torch.randn(3, 2, dtype=torch.float64)
    with torch.no_grad():
        logits = model(x, mask, meta).numpy()
    pooled = ref.masked_mean(x.numpy(), mask.numpy())
    expected = ref.head(pooled, _head_weights(model.state_dict()), meta.numpy())
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("garbage", [1e4, float("nan")])
def test_padding_beyond_the_mask_does_not_change_eval_output(garbage: float) -> None:
    torch.manual_seed(9)
    model = NeXtVLADClassifier(12, 5, cluster_size=4, hidden_size=16, groups=4)
    _randomize_batch_norms(model, seed=10)
    model.eval()
    x, mask = _inputs(3, 6, 12, seed=11)
    x = x.float()
    x_masked = x.masked_fill(~mask.unsqueeze(-1), garbage)
    padded = torch.cat([x_masked, torch.full((3, 9, 12), garbage)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(3, 9, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        expected = model(x, mask)
        got = model(padded, padded_mask)
        got_float_mask = model(padded, padded_mask.float())
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_float_mask, expected, rtol=1e-5, atol=1e-5)


def test_training_statistics_ignore_padding() -> None:
    """In training, cluster BatchNorm statistics come from real frames: padding length is invisible."""
    x, mask = _inputs(4, 5, 8, seed=12)
    x = x.float()
    padded = torch.cat([x, torch.randn(4, 7, 8) * 50], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(4, 7, dtype=torch.bool)], dim=1)

    def run(inputs: torch.Tensor, frame_mask: torch.Tensor, on_padding: bool) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(13)
        layer = NeXtVLAD(8, None, cluster_size=4, expansion=2, groups=4, bn_stats_on_padding=on_padding)
        layer.train()
        out = layer(inputs, frame_mask)
        return out.detach(), layer.cluster_bn.running_mean.clone()

    out_short, stats_short = run(x, mask, on_padding=False)
    out_long, stats_long = run(padded, padded_mask, on_padding=False)
    torch.testing.assert_close(out_long, out_short, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(stats_long, stats_short)

    # The reference behaviour lets padded frames into the statistics.
    _, stats_reference = run(padded, padded_mask, on_padding=True)
    assert not torch.allclose(stats_reference, stats_short)


def test_training_step_with_nan_padding_and_soft_targets() -> None:
    """Gradients stay finite with NaN padding, and BCE on soft (teacher) targets fits a tiny set."""
    torch.manual_seed(14)
    x, mask = _inputs(16, 6, 12, seed=15)
    x = x.float().masked_fill(~mask.unsqueeze(-1), float("nan"))
    mask[-1, 0] = True  # every video keeps at least one real frame
    x[-1, 0] = torch.randn(12)
    targets = torch.rand(16, 3)
    model = NeXtVLADClassifier(12, 3, cluster_size=4, hidden_size=16, groups=4, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(60):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x, mask), targets)
        optimizer.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        optimizer.step()
        losses.append(loss.item())
    # The floor of BCE on soft targets is their entropy, not zero.
    floor = torch.nn.functional.binary_cross_entropy(targets, targets).item()
    assert losses[-1] - floor < 0.5 * (losses[0] - floor)


def test_context_gating_is_the_reference_se_block() -> None:
    gating = ContextGating(16, reduction=4).double().eval()
    _randomize_batch_norms(gating, seed=16)
    h = torch.randn(5, 16, dtype=torch.float64)
    with torch.no_grad():
        got = gating(h).numpy()
    sd = {k: v.double().numpy() for k, v in gating.state_dict().items()}
    bn = {
        "gamma": sd["bn.weight"],
        "beta": sd["bn.bias"],
        "mean": sd["bn.running_mean"],
        "var": sd["bn.running_var"],
    }
    bottleneck = np.maximum(ref.batch_norm(h.numpy() @ sd["squeeze.weight"].T, bn), 0.0)
    np.testing.assert_allclose(got, h.numpy() * ref.sigmoid(bottleneck @ sd["excite.weight"].T), rtol=1e-10)
    assert gating.squeeze.bias is None and gating.excite.bias is None


def test_embed_is_independent_of_metadata() -> None:
    torch.manual_seed(17)
    model = NeXtVLADClassifier(8, 3, cluster_size=4, hidden_size=16, groups=4, meta_dim=5).eval()
    x, mask = _inputs(2, 4, 8, seed=18)
    with torch.no_grad():
        assert model.embed(x.float(), mask).shape == (2, 16)
        a = model(x.float(), mask, torch.zeros(2, 5))
        b = model(x.float(), mask, torch.ones(2, 5))
    assert not torch.allclose(a, b)


def test_invalid_arguments_fail_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="groups=3 must divide"):
        NeXtVLAD(10, None, cluster_size=4, expansion=2, groups=3)
    with pytest.raises(ValueError, match="gating reduction"):
        ContextGating(20, reduction=8)
    layer = NeXtVLAD(8, 4, cluster_size=2, groups=4).eval()
    with pytest.raises(ValueError, match="exceed max_frames=4"):
        layer(torch.zeros(1, 5, 8))
    with pytest.raises(ValueError, match="mask shape"):
        layer(torch.zeros(2, 3, 8), torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"frames must be \(batch, frames, features\)"):
        layer(torch.zeros(3, 8))
    head = ClassifierHead(6, 16, 2, meta_dim=3).eval()
    with pytest.raises(ValueError, match="meta must be"):
        head(torch.zeros(2, 6))
    with pytest.raises(ValueError, match="meta_dim=0"):
        ClassifierHead(6, 16, 2).eval()(torch.zeros(2, 6), torch.zeros(2, 3))


def _trainable(*modules: torch.nn.Module) -> int:
    return sum(p.numel() for module in modules for p in module.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    ("n", "k", "g", "lam", "h", "c", "r", "meta_dim"),
    [
        (12, 4, 4, 2, 16, 5, 4, 0),
        (1280, 64, 8, 2, 1024, 200, 8, 0),
        (1280, 64, 8, 2, 512, 200, 8, 384),
        (128, 64, 4, 2, 2048, 3862, 8, 0),
    ],
)
def test_parameter_formula_matches_the_module(
    n: int, k: int, g: int, lam: int, h: int, c: int, r: int, meta_dim: int
) -> None:
    with torch.device("meta"):
        model = NeXtVLADClassifier(
            n,
            c,
            cluster_size=k,
            hidden_size=h,
            expansion=lam,
            groups=g,
            gating_reduction=r,
            meta_dim=meta_dim,
        )
    assert _trainable(model) == nextvlad_param_count(n, k, g, lam, h, c, r, meta_dim)
    assert _trainable(model.nextvlad) == nextvlad_layer_param_count(n, k, lam, g)


def test_paper_configuration_parameter_count() -> None:
    """The paper's single model: rgb 1024-d (K=128, G=8) + audio 128-d (K=64, G=4), λ=2, H=2048, 3862 classes.

    The reference halves K and G for audio (NeXtVLADModel.create_model). The paper's abstract says
    "less than 80M parameters" and its formula λN(N + G + K(G + (H+1)/G)) gives 79.8M; the full model
    with biases, BatchNorm, SE gating and the logistic classifier has 88.9M (the "89M" figure).
    """
    with torch.device("meta"):
        video = NeXtVLAD(1024, 300, cluster_size=128, expansion=2, groups=8)
        audio = NeXtVLAD(128, 300, cluster_size=64, expansion=2, groups=4)
        head = ClassifierHead(video.output_dim + audio.output_dim, 2048, 3862, gating_reduction=8)
    assert (video.output_dim, audio.output_dim) == (32768, 4096)

    formula = (
        nextvlad_layer_param_count(1024, 128, 2, 8)
        + nextvlad_layer_param_count(128, 64, 2, 4)
        + head_param_count(32768 + 4096, 2048, 3862, 8)
    )
    assert _trainable(video, audio, head) == formula == 88_889_378
    assert abs(formula - 89e6) / 89e6 < 0.01

    estimate = paper_param_estimate(1024, 128, 8, 2, 2048) + paper_param_estimate(128, 64, 4, 2, 2048)
    assert estimate == 79_844_352
    assert estimate < 80e6
    # The estimate is exactly the module's share of weights it names: expansion, attention, cluster
    # and centroid weights and the hidden FC, without biases, BatchNorm, gating or classifier.
    named = (
        sum(
            p.numel()
            for layer in (video, audio)
            for p in (
                layer.expansion_fc.weight,
                layer.attention_fc.weight,
                layer.cluster_fc.weight,
                layer.centroids,
            )
        )
        + head.hidden.weight.numel()
    )
    assert estimate == named
