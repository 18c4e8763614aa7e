"""The frame stage of one batch: decode (worker processes) -> encode (ONNX) -> one Parquet shard.

Streaming end to end: the sampler pool decodes the next videos while this process encodes the
current one, and the shard writer flushes every few dozen videos, so memory holds one video's frames
(at most 300 x 224 x 224 x 3 bytes), never a batch. A video that cannot give frames becomes a
Failure and the others go on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml.embedding_store import VideoEmbeddings, shard_path, write_shard
from ml.failures import Failure


@dataclass
class FrameStageResult:
    shard: Path
    videos: int = 0
    embedded: int = 0
    frames: int = 0
    shard_bytes: int = 0
    decode_encode_s: float = 0.0
    max_grid_error_s: float = 0.0
    failures: list[Failure] = field(default_factory=list)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.decode_encode_s if self.decode_encode_s else 0.0


def non_finite_failure(video_id: str, embeddings: np.ndarray) -> Failure | None:
    """A video whose features hold NaN or inf fails here: 8-bit quantization would hide them as valid codes."""
    if np.isfinite(embeddings).all():
        return None
    bad = int((~np.isfinite(embeddings)).any(axis=1).sum())
    return Failure(
        video_id,
        "frames",
        "NonFiniteEmbedding",
        f"{bad} of {len(embeddings)} frames encoded to NaN or inf; the frames or the encoder are broken",
    )


def embed_batch(batch_id: str, videos: list[tuple[str, str]], settings, encoder=None, pool=None) -> FrameStageResult:
    """Embed ``(video_id, path)`` pairs into the batch's shard (replacing it atomically)."""
    from ml.image_encoder import encoder_from_settings
    from ml.sampler import FrameSamplingError, SampleOptions, SamplerPool

    encoder = encoder or encoder_from_settings(settings, beside_decoders=True)
    path = shard_path(settings.embeddings_dir, encoder.name, batch_id)
    result = FrameStageResult(shard=path, videos=len(videos))
    started = time.monotonic()
    own_pool = pool is None
    pool = pool or SamplerPool(SampleOptions.from_settings(settings))

    def records() -> Iterator[VideoEmbeddings]:
        for video_id, sampled in pool.imap(videos):
            if isinstance(sampled, FrameSamplingError):
                result.failures.append(Failure.from_exception(video_id, "frames", sampled))
                continue
            if len(sampled) == 0:
                result.failures.append(Failure(video_id, "frames", "NoFrames", "the video decoded to no frames"))
                continue
            embeddings = encoder.encode(sampled.frames)
            failure = non_finite_failure(video_id, embeddings)
            if failure is not None:
                result.failures.append(failure)
                continue
            result.embedded += 1
            result.frames += len(sampled)
            result.max_grid_error_s = max(result.max_grid_error_s, sampled.grid_error_s)
            yield VideoEmbeddings(video_id, sampled.timestamps, embeddings)

    try:
        summary = write_shard(path, records(), encoder=encoder.name, metadata={"batch_id": batch_id})
    finally:
        if own_pool:
            pool.close()
    result.shard_bytes = int(summary["bytes"])
    result.decode_encode_s = time.monotonic() - started
    return result
