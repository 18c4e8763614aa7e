"""The image encoder: ONNX equals eager torch, the head is the model's own, the cache is keyed and atomic."""

from __future__ import annotations

import numpy as np
import pytest

from ml.frames.image_encoder import (
    ImageEncoder,
    TorchEncoder,
    encoder_from_settings,
    get_spec,
    load_encoder,
    onnx_path,
)
from tests.conftest import REAL_CLIPS, needs_real_clips
from tests.videogen import shared_data_root, shared_encoder

# |onnx - torch| on features of magnitude up to ~6: float32 reassociation in fused convolutions gives
# ~1e-5; an export that lost a layer or the normalisation is off by 1e-1 or more.
TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def torch_encoder():
    return TorchEncoder("efficientnet-lite0")


def frames(n: int, seed: int = 0, size: int = 224) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # smooth images with structure, not white noise: closer to what the encoder sees
    base = rng.integers(0, 256, size=(n, -(-size // 16), -(-size // 16), 3)).astype(np.uint8)
    return np.ascontiguousarray(base.repeat(16, axis=1).repeat(16, axis=2)[:, :size, :size])


def test_onnx_matches_eager_torch(torch_encoder):
    onnx = shared_encoder()
    assert isinstance(onnx, ImageEncoder) and onnx.dim == 1280
    x = frames(5)
    a, b = torch_encoder.encode(x), onnx.encode(x)
    assert a.shape == b.shape == (5, 1280) and b.dtype == np.float32
    assert np.abs(a - b).max() <= TOLERANCE
    assert onnx.export_check["max_abs_diff_vs_torch"] <= TOLERANCE


def test_batch_axis_is_dynamic_and_batches_are_independent():
    onnx = shared_encoder()
    x = frames(19, seed=1)  # more than one batch of 16, and a ragged last batch
    together = onnx.encode(x)
    alone = np.concatenate([onnx.encode(x[i : i + 1]) for i in range(len(x))])
    assert np.abs(together - alone).max() <= 1e-4
    assert onnx.encode(x[:0]).shape == (0, 1280)


def test_classify_pooled_is_the_models_own_head(torch_encoder):
    import torch

    x = frames(2, seed=2)
    with torch.inference_mode():
        t = torch.from_numpy(x).permute(0, 3, 1, 2).float().sub(127).div(128)
        logits = torch_encoder.model(t).numpy()  # the package's forward: pool, flatten, dropout, _fc
    onnx = shared_encoder()
    assert np.abs(onnx.classify_pooled(onnx.encode(x)) - logits).max() <= 1e-2
    assert onnx.classify_pooled(onnx.encode(x)).shape == (2, 1000)


def test_export_is_cached_under_the_weights_hash():
    onnx = shared_encoder()
    models = shared_data_root() / "models"
    path = onnx_path(models, "efficientnet-lite0")
    assert onnx.model_path == path and path.name.startswith("efficientnet-lite0-") and len(path.stem) == 31
    mtime = path.stat().st_mtime_ns
    again = load_encoder("efficientnet-lite0", models)
    assert path.stat().st_mtime_ns == mtime and again.model_path == path  # no second export
    assert not [p for p in path.parent.iterdir() if ".tmp" in p.name]


def test_an_export_of_another_revision_is_redone(monkeypatch):
    import json

    import ml.frames.image_encoder as ie

    models = shared_data_root() / "models"
    path = onnx_path(models, "efficientnet-lite0")
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["export_revision"] == ie.EXPORT_REVISION
    assert ie._export_is_current(path)
    monkeypatch.setattr(ie, "EXPORT_REVISION", ie.EXPORT_REVISION + 1)
    assert not ie._export_is_current(path)  # load_encoder would export again


def test_encoder_from_settings_uses_the_model_store(settings):
    s = settings.with_overrides(data_root=shared_data_root())
    assert encoder_from_settings(s).model_path.parent == s.models_dir / "encoders"


def test_wrong_input_and_config_are_clear():
    with pytest.raises(ValueError, match="uint8 frames"):
        shared_encoder().encode(np.zeros((1, 224, 224, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="frame_size = 260"):
        get_spec("efficientnet-lite2", frame_size=224)
    with pytest.raises(ValueError, match="known"):
        get_spec("resnet-50")


@pytest.mark.slow
def test_lite2_is_a_settings_change(settings):
    s = settings.with_overrides(data_root=shared_data_root(), image_encoder="efficientnet-lite2", frame_size=260)
    encoder = encoder_from_settings(s)
    assert (encoder.name, encoder.dim, encoder.input_size) == ("efficientnet-lite2", 1280, 260)
    x = frames(2, size=260)
    assert np.abs(encoder.encode(x) - TorchEncoder("efficientnet-lite2").encode(x)).max() <= TOLERANCE


@pytest.mark.slow
@needs_real_clips
def test_onnx_matches_torch_on_real_frames(torch_encoder):
    from ml.frames.sampler import sample_frames

    x = sample_frames(REAL_CLIPS / "Video-LLaMA__boat.mp4").frames
    a, b = torch_encoder.encode(x), shared_encoder().encode(x)
    assert np.abs(a - b).max() <= TOLERANCE
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() >= 0.99999


def test_encode_distinct_encodes_a_held_frame_once_and_gives_it_to_every_grid_point():
    from ml.frames.stage import encode_distinct

    onnx = shared_encoder()
    distinct = frames(4, seed=3)
    # grid points 0-5 on frames at t = 0, 0, 2, 2, 3, 5 s (a keyframe standing in, a held frame)
    times = np.array([0, 0, 2, 2, 3, 5], dtype=np.float32)
    held = distinct[[0, 0, 1, 1, 2, 3]]
    got = encode_distinct(onnx, held, times)
    expected = onnx.encode(held)
    assert got.shape == (6, 1280)
    assert np.abs(got - expected).max() <= 1e-4
    assert np.array_equal(got[0], got[1]) and np.array_equal(got[2], got[3])

    class Counting:  # the real encoder, counting the frames it is given
        def __init__(self, inner):
            self.inner, self.seen = inner, 0

        def encode(self, x):
            self.seen += len(x)
            return self.inner.encode(x)

    counting = Counting(onnx)
    encode_distinct(counting, held, times)
    assert counting.seen == 4
    encode_distinct(counting, distinct, np.arange(4, dtype=np.float32))
    assert counting.seen == 8  # nothing held: every frame encoded, as before
