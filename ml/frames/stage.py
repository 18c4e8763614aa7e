"""The frame stage of one batch: probe every file, then decode (worker processes) -> encode (ONNX) -> one
Parquet shard, each step recording its failures in the catalog in one short transaction.

Streaming end to end: the sampler pool decodes the next videos while this process encodes the
current one, and the shard writer flushes every few dozen videos, so memory holds one video's frames
(at most 300 x 224 x 224 x 3 bytes), never a batch. A video that cannot give frames becomes a
Failure and the others go on.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ml.catalog.batching import batch_videos, probed_videos
from ml.catalog.failures import Failure, record_stage_outcome
from ml.catalog.store import Catalog, delete_where_in, insert_rows
from ml.frames.embedding_store import VideoEmbeddings, shard_path, write_shard
from ml.frames.probe import ProbeResult, probe_many

PROBE_COLUMNS = (
    "container",
    "video_codec",
    "pix_fmt",
    "width",
    "height",
    "rotation",
    "fps",
    "vfr",
    "duration_s",
    "duration_source",
    "n_frames",
    "bit_rate",
    "size_bytes",
    "has_audio",
    "audio_codec",
)


@dataclass
class ProbeBatchResult:
    videos: int
    probed: list[tuple[str, ProbeResult]]
    failures: list[Failure]


def probe_batch(catalog: Catalog, batch_id: str, settings: Any, probe_fn=None) -> ProbeBatchResult:
    """Probe every video of the batch and replace its ``video_probe`` rows and probe failures in one transaction.

    Each file is probed in a worker process under a hard deadline (``probe_many``): a decoder stuck
    inside FFmpeg or one that crashes costs its own video a failure row, never the run.
    """
    videos = batch_videos(catalog, batch_id)
    ok, failed = probe_many(
        videos, timeout_s=settings.decode_timeout_s, max_pixels=settings.max_pixels, probe_fn=probe_fn
    )
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = [(vid, batch_id, *[getattr(r, c) for c in PROBE_COLUMNS], now) for vid, r in ok]
    with catalog.transaction() as con:
        delete_where_in(con, "video_probe", "video_id", [v for v, _ in videos])
        insert_rows(con, "video_probe", ["video_id", "batch_id", *PROBE_COLUMNS, "probed_at"], rows)
        record_stage_outcome(con, "probe", batch_id, [v for v, _ in ok], failed)
    return ProbeBatchResult(len(videos), ok, failed)


class FrameEngine(Protocol):
    """What the frame stage needs of an engine (ml/engines: local or Ray)."""

    def embed_batch(self, batch_id: str, videos: list[tuple[str, str]], settings: Any) -> FrameStageResult: ...


@dataclass
class FrameStageResult:
    shard: Path
    videos: int = 0
    embedded: int = 0
    frames: int = 0
    shard_bytes: int = 0
    decode_encode_s: float = 0.0
    decode_cpu_s: float = 0.0  # the decode workers' CPU, as they report it
    encode_cpu_s: float = 0.0  # this process's CPU while encoding (the encoder's threads included)
    max_grid_error_s: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    nodes: dict[str, int] = field(default_factory=dict)  # Ray node id -> videos decoded there (Ray engine)

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


def remove_stale_temporaries(shard: Path) -> list[Path]:
    """Delete what killed writers of this batch's shard left behind (``.<batch>.*.parquet.tmp``).

    A batch's shard is written by one run at a time (a partition is never in two runs), so any
    temporary file of it that exists when the stage starts belongs to a writer that died.
    """
    stale = sorted(shard.parent.glob(f".{shard.stem}.*.parquet.tmp")) if shard.parent.is_dir() else []
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def shard_metadata(batch_id: str, options: Any) -> dict[str, Any]:
    """What a shard records of how its frames were sampled: embeddings made otherwise are not comparable."""
    return {
        "batch_id": batch_id,
        "sampling": {
            "fps": options.fps,
            "max_frames": options.max_frames,
            "keyframe_window_s": options.keyframe_window_s,
        },
    }


def encode_distinct(encoder: Any, frames: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Encode each distinct frame once: a frame held over several grid points (a still, a variable frame
    rate, a keyframe standing in for its neighbours) shares one timestamp and one feature vector."""
    times = np.asarray(timestamps)
    first = np.flatnonzero(np.r_[True, times[1:] != times[:-1]])
    if len(first) == len(times):
        return encoder.encode(frames)
    features = encoder.encode(frames[first])
    return features[np.searchsorted(first, np.arange(len(times)), side="right") - 1]


def embed_batch(batch_id: str, videos: list[tuple[str, str]], settings, encoder=None, pool=None) -> FrameStageResult:
    """Embed ``(video_id, path)`` pairs into the batch's shard (replacing it atomically)."""
    from ml.frames.errors import VideoError
    from ml.frames.image_encoder import encoder_from_settings
    from ml.frames.sampler import SampleOptions, SamplerPool

    encoder = encoder or encoder_from_settings(settings, beside_decoders=True)
    path = shard_path(settings.embeddings_dir, encoder.name, batch_id)
    result = FrameStageResult(shard=path, videos=len(videos))
    started = time.monotonic()
    own_pool = pool is None
    pool = pool or SamplerPool(SampleOptions.from_settings(settings))

    def records() -> Iterator[VideoEmbeddings]:
        for video_id, sampled in pool.imap(videos):
            if isinstance(sampled, VideoError):
                result.failures.append(Failure.from_exception(video_id, "frames", sampled))
                continue
            if len(sampled) == 0:
                result.failures.append(Failure(video_id, "frames", "NoFrames", "the video decoded to no frames"))
                continue
            result.decode_cpu_s += float(sampled.info.get("decode_cpu_s") or 0.0)
            cpu = time.process_time()
            embeddings = encode_distinct(encoder, sampled.frames, sampled.timestamps)
            result.encode_cpu_s += time.process_time() - cpu
            failure = non_finite_failure(video_id, embeddings)
            if failure is not None:
                result.failures.append(failure)
                continue
            result.embedded += 1
            result.frames += len(sampled)
            result.max_grid_error_s = max(result.max_grid_error_s, sampled.grid_error_s)
            yield VideoEmbeddings(video_id, sampled.timestamps, embeddings)

    try:
        summary = write_shard(path, records(), encoder=encoder.name, metadata=shard_metadata(batch_id, pool.options))
    finally:
        if own_pool:
            pool.close()
    result.shard_bytes = int(summary["bytes"])
    result.decode_encode_s = time.monotonic() - started
    return result


def frames_for_batch(catalog: Catalog, batch_id: str, settings: Any, engine: FrameEngine) -> FrameStageResult:
    """Embed the batch's probed videos with ``engine`` and record the frame stage's outcome."""
    videos = probed_videos(catalog, batch_id)
    remove_stale_temporaries(shard_path(settings.embeddings_dir, settings.image_encoder, batch_id))
    result = engine.embed_batch(batch_id, videos, settings)
    failed_ids = {f.video_id for f in result.failures}
    with catalog.transaction() as con:
        record_stage_outcome(con, "frames", batch_id, [v for v, _ in videos if v not in failed_ids], result.failures)
    return result
