"""Small JPEG thumbnails of sampled frames, for review sheets and explanations (inline in HTML)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np


def sample_for_review(path: str | Path, settings) -> tuple[np.ndarray, np.ndarray] | None:
    """(timestamps, frames) on the same 1 fps grid as the pipeline, or None when the file gives none.

    Decoded in a worker under the time limit: a review tool must not hang on the file it is reviewing.
    """
    from ml.frames.errors import VideoError
    from ml.frames.sampler import SampleOptions, SamplerPool

    with SamplerPool(SampleOptions.from_settings(settings), workers=1) as pool:
        _, result = next(pool.imap([(0, str(path))]))
    if isinstance(result, VideoError) or len(result) == 0:
        return None
    return result.timestamps, result.frames


def jpeg_data_uri(frame: np.ndarray, size: int = 160, quality: int = 80) -> str:
    from PIL import Image

    img = Image.fromarray(frame)
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def evenly_spaced(n_frames: int, k: int) -> list[int]:
    if n_frames <= 0:
        return []
    return sorted(set(np.rint(np.linspace(0, n_frames - 1, num=min(k, n_frames))).astype(int).tolist()))
