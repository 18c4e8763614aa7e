"""The deployed visual artefact: an ONNX graph of the eval-mode student, proven equal to eager torch.

The graph outputs probabilities (dynamic batch and frame axes) and is checked against the eager model
on other shapes than its trace sample before it is kept. Scoring then needs only onnxruntime, and a
model cannot execute code when opened; it is not faster than eager torch on CPU
(``bench/visual_inference.py``: within 10%, both spend their time in the same few large matrix
products). The checkpoint stays beside it for eager use and fine-tuning.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ml.visual.predictor import (
    _feed,
    _session,
)

ONNX_OPSET = 17
EXPORT_TOLERANCE = 1e-4
ONNX_NAME = "model.onnx"


class _Scorer(nn.Module):
    """What is exported: the eval-mode classifier with sigmoid, so the artefact outputs probabilities."""

    def __init__(self, network: nn.Module, meta_dim: int) -> None:
        super().__init__()
        self.network = network
        self.meta_dim = meta_dim

    def forward(self, frames: torch.Tensor, mask: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.network(frames, mask, meta if self.meta_dim else None))


def _export_check_inputs(feature_dim: int, meta_dim: int, seed: int = 0) -> list[tuple[np.ndarray, ...]]:
    """Random batches of other shapes than the trace sample, with videos of very different lengths."""
    rng = np.random.default_rng(seed)
    cases = []
    for batch, frames in ((3, 13), (1, 1), (5, 40)):
        x = rng.gamma(1.0, 0.5, (batch, frames, feature_dim)).astype(np.float32)
        mask = np.zeros((batch, frames), dtype=bool)
        for i in range(batch):
            mask[i, : max(1, frames - 7 * i)] = True
        x[~mask] = 0.0
        cases.append((x, mask, rng.normal(size=(batch, meta_dim)).astype(np.float32)))
    return cases


def export_onnx(network: nn.Module, path: Path, feature_dim: int, meta_dim: int) -> dict[str, Any]:
    """Export the eval-mode network (atomically) and prove the graph matches eager torch; returns the check.

    The legacy TorchScript-based exporter (``dynamo=False``) is used: it handles the masked NeXtVLAD
    with dynamic batch and frame axes, and the dynamo exporter needs onnxscript, which is not
    installed. Tracing turns the layer's shape checks into constants (the warnings are silenced);
    the check below runs other batch sizes and lengths than the trace sample, so a shape frozen by
    the trace would be caught here, not in production.
    """
    network = network.eval().cpu()
    scorer = _Scorer(network, meta_dim).eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sample = _export_check_inputs(feature_dim, meta_dim, seed=1)[0]
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # legacy-exporter deprecation and tracer notes about shape checks
            torch.onnx.export(
                scorer,
                tuple(torch.from_numpy(a) for a in sample),
                tmp,
                dynamo=False,
                opset_version=ONNX_OPSET,
                input_names=["frames", "mask", "meta"],
                output_names=["probabilities"],
                dynamic_axes={
                    "frames": {0: "batch", 1: "frames"},
                    "mask": {0: "batch", 1: "frames"},
                    "meta": {0: "batch"},
                    "probabilities": {0: "batch"},
                },
            )
        session = _session(Path(tmp), threads=1)
        worst = 0.0
        for frames, mask, meta in _export_check_inputs(feature_dim, meta_dim):
            with torch.inference_mode():
                expected = scorer(torch.from_numpy(frames), torch.from_numpy(mask), torch.from_numpy(meta)).numpy()
            got = session.run(None, _feed(session, frames, mask, meta))[0]
            worst = max(worst, float(np.abs(got - expected).max()))
        if not worst <= EXPORT_TOLERANCE:
            raise RuntimeError(f"ONNX export differs from eager torch by {worst:.2e} (> {EXPORT_TOLERANCE}); not kept")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {
        "format": "onnx",
        "opset": ONNX_OPSET,
        "exporter": "torch.onnx.export(dynamo=False)",
        "torch": torch.__version__,
        "max_abs_diff_vs_torch": worst,
    }
