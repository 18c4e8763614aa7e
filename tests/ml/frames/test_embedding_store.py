"""Embedding shards: quantization fidelity, atomic streaming writes, DuckDB readability, streaming reads."""

from __future__ import annotations

import numpy as np
import pytest

from ml.frames.embedding_store import (
    Quantization,
    VideoEmbeddings,
    dequantize,
    iter_videos,
    list_shards,
    quantize,
    read_metadata,
    read_video,
    shard_path,
    write_shard,
)
from tests.conftest import REAL_CLIPS, needs_real_clips
from tests.videogen import shared_encoder


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def relu6_pooled_like(n: int, dim: int = 1280, seed: int = 0) -> np.ndarray:
    """Non-negative, mostly small, heavy-tailed: the shape of EfficientNet-Lite pooled features."""
    rng = np.random.default_rng(seed)
    return np.minimum(rng.gamma(0.5, 0.45, size=(n, dim)), 6.0).astype(np.float32)


def videos(n: int, frames: int = 5, dim: int = 1280):
    for i in range(n):
        yield VideoEmbeddings(
            f"v{i:03d}", np.arange(frames, dtype=np.float32) + 0.01 * i, relu6_pooled_like(frames, dim, seed=i)
        )


def test_quantization_round_trip_keeps_direction():
    x = relu6_pooled_like(200)
    codes = quantize(x)
    assert codes.dtype == np.uint8 and codes.shape == x.shape
    c = cosine(x, dequantize(codes))
    assert c.mean() >= 0.999 and c.min() >= 0.99


def test_quantization_matches_the_yt8m_dequantization_formula():
    q = Quantization(transform="identity", min=-2.0, max=2.0)
    codes = np.arange(256, dtype=np.uint8)
    expected = codes * (4.0 / 255) + (-2.0 + 4.0 / 512)
    np.testing.assert_allclose(dequantize(codes, q), expected, rtol=0, atol=1e-6)
    # the quantizer picks the nearest reconstruction level, and clips outside the range
    np.testing.assert_array_equal(quantize(expected.astype(np.float32), q), codes)
    assert quantize(np.array([-9.0, 9.0], dtype=np.float32), q).tolist() == [0, 255]


def test_shard_write_read_and_stream(tmp_path):
    path = shard_path(tmp_path / "embeddings", "efficientnet-lite0", "b0001")
    summary = write_shard(
        path, videos(10), encoder="efficientnet-lite0", row_group_videos=4, metadata={"sampler": {"fps": 1.0}}
    )
    assert summary["videos"] == 10 and summary["frames"] == 50
    assert list_shards(tmp_path / "embeddings", "efficientnet-lite0") == [path]
    meta = read_metadata(path)
    assert meta["encoder"] == "efficientnet-lite0" and meta["sampler"] == {"fps": 1.0}
    assert meta["quantization"]["transform"] == "sqrt"

    originals = {v.video_id: v for v in videos(10)}
    streamed = list(iter_videos([path]))
    assert [v.video_id for v in streamed] == sorted(originals)
    for v in streamed:
        np.testing.assert_allclose(v.timestamps, originals[v.video_id].timestamps)
        assert v.embeddings.shape == (5, 1280) and v.embeddings.dtype == np.float32
        assert cosine(v.embeddings, originals[v.video_id].embeddings).min() >= 0.99

    one = read_video(path, "v007")
    assert one is not None and one.n_frames == 5
    np.testing.assert_array_equal(one.embeddings, streamed[7].embeddings)
    assert read_video(path, "absent") is None
    assert [v.video_id for v in iter_videos(path, video_ids=["v001", "v009"])] == ["v001", "v009"]
    codes = read_video(path, "v001", dequantized=False)
    assert codes is not None and codes.embeddings.dtype == np.uint8


def test_duckdb_reads_a_shard(tmp_path):
    import duckdb

    path = tmp_path / "b.parquet"
    write_shard(path, videos(3, frames=4), encoder="efficientnet-lite0")
    con = duckdb.connect()
    rows = con.execute(f"SELECT * FROM '{path}' ORDER BY video_id").fetchall()
    assert [r[0] for r in rows] == ["v000", "v001", "v002"]
    assert con.execute(
        f"SELECT sum(n_frames), min(len(timestamps)), min(octet_length(embeddings) = n_frames * dim) FROM '{path}'"
    ).fetchall() == [(12, 4, True)]


def test_write_streams_a_generator_and_is_atomic(tmp_path):
    path = tmp_path / "b.parquet"
    write_shard(path, videos(3), encoder="e")
    before = path.read_bytes()

    def broken():
        yield from videos(2)
        raise RuntimeError("decoder died mid-batch")

    with pytest.raises(RuntimeError):
        write_shard(path, broken(), encoder="e")
    assert path.read_bytes() == before  # the previous shard is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.parquet"]  # no temp file left behind


def test_bad_records_are_refused(tmp_path):
    dup = [("a", [0.0], np.ones((1, 8))), ("a", [0.0], np.ones((1, 8)))]
    with pytest.raises(ValueError, match="twice"):
        write_shard(tmp_path / "x.parquet", dup, encoder="e")
    with pytest.raises(ValueError, match="timestamps"):
        write_shard(tmp_path / "x.parquet", [("a", [0.0, 1.0], np.ones((1, 8)))], encoder="e")
    with pytest.raises(ValueError):
        shard_path(tmp_path, "e", "../escape")


def test_an_empty_batch_still_writes_a_readable_shard(tmp_path):
    path = tmp_path / "empty.parquet"
    assert write_shard(path, [], encoder="e")["videos"] == 0
    assert list(iter_videos(path)) == []


@pytest.mark.slow
@needs_real_clips
def test_quantization_on_real_frames():
    from ml.frames.sampler import sample_frames

    encoder = shared_encoder()
    names = [
        "Video-LLaMA__birthday.mp4",
        "moviepy__smpte-2997.mp4",
        "PLLaVA__1917.mp4",
        "sample-videos__store-aisle-detection.gif",
        "moviepy__no_duration.webm",
    ]
    feats = np.concatenate([encoder.encode(sample_frames(REAL_CLIPS / n).frames) for n in names])
    assert feats.min() >= 0 and feats.max() <= 6  # ReLU6 bound: the fixed range never clips
    c = cosine(feats, dequantize(quantize(feats)))
    assert c.mean() >= 0.99 and c.min() >= 0.99
