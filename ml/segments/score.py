"""Each scene's category scores: the video student run over the scene's frames alone.

The student (NeXtVLAD over frame embeddings) was trained from video-level targets only; its pooling
is order-free and normalised per cluster, so a run of frames is a video to it, and its score of a
scene is its own aggregation over that scene. No frame- or scene-level attention was added: the
benchmark's figures (docs/segments.md) say where that would pay. Scenes of one video go through the
ONNX graph as one padded batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ml.segments.scenes import Scene
from ml.visual.batches import Example, pad


def score_scenes(
    predictor: Any, embeddings: np.ndarray, scenes: Sequence[Scene], meta: np.ndarray | None = None
) -> np.ndarray:
    """Scores ``(len(scenes), C)`` aligned with ``predictor.categories``.

    ``predictor`` is a ``ml.visual.predictor.VisualPredictor``; ``meta`` is the video's metadata
    vector (the file's facts hold for each of its scenes; None: the model's default for "unknown").
    A scene without frames (possible only past the frame cap) gets NaN: the student did not see it.
    """
    n_cat = len(predictor.categories)
    out = np.full((len(scenes), n_cat), np.nan, dtype=np.float32)
    seen = [i for i, s in enumerate(scenes) if s.n_frames > 0]
    if not seen:
        return out
    m = predictor.default_meta if meta is None else np.asarray(meta, dtype=np.float32)
    empty = np.zeros(0, dtype=np.float32)
    examples = [
        Example(str(i), np.asarray(embeddings[scenes[i].first_frame : scenes[i].end_frame], np.float32), empty, m)
        for i in seen
    ]
    batch = pad(examples, max_frames=predictor.max_frames)
    out[seen] = predictor.score_arrays(batch.frames, batch.mask, batch.meta)
    return out
