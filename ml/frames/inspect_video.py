"""What vidcat sees in one video: sampled timestamps, embedding shape, and ImageNet classes.

The classes come from the image encoder's own ImageNet head applied to the mean of the frame
embeddings. The head is linear, so this equals the mean of the per-frame logits: the video-level
guess of a classifier that never saw the video as a whole. It is a sanity check that decoding,
resizing, colour and normalisation are right (a wrong colour order or scale gives nonsense classes),
not a category prediction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ml.frames.errors import VideoError
from ml.frames.sampler import SampledFrames, SampleOptions, SamplerPool, sample_frames


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def inspect_video(
    path: str | Path, settings: Any, *, encoder: Any = None, top_k: int = 5, isolated: bool = True
) -> dict[str, Any]:
    """Facts about ``path`` as a JSON-ready dict; raises a ``VideoError`` subclass if it has no frames.

    ``isolated`` decodes in a worker process under the hard time limit (a CLI must not hang on a bad
    file); the in-process path is for tests and notebooks.
    """
    from ml.frames.image_encoder import encoder_from_settings
    from ml.frames.imagenet_classes import imagenet_classes

    options = SampleOptions.from_settings(settings)
    if isolated:
        with SamplerPool(options, workers=1) as pool:
            _, result = next(pool.imap([(0, path)]))
        if isinstance(result, VideoError):
            raise result
    else:
        result = sample_frames(path, options)
    assert isinstance(result, SampledFrames)
    encoder = encoder or encoder_from_settings(settings)
    embeddings = encoder.encode(result.frames)
    probs = _softmax(encoder.classify_pooled(embeddings.mean(0, keepdims=True))[0].astype(np.float64))
    per_frame = encoder.classify_pooled(embeddings).argmax(1)
    classes = imagenet_classes()
    top = np.argsort(-probs)[:top_k]
    return {
        "path": str(path),
        "encoder": encoder.name,
        "n_frames": len(result),
        "timestamps": [round(float(t), 3) for t in result.timestamps],
        "embedding_shape": list(embeddings.shape),
        "grid_error_s": round(result.grid_error_s, 3),
        "sampling": {
            k: result.info.get(k)
            for k in (
                "strategy",
                "codec",
                "pix_fmt",
                "width",
                "height",
                "rotation",
                "start_s",
                "duration_s",
                "frames_decoded",
                "packets",
                "held",
                "decode_s",
            )
        },
        "top_classes": [
            {
                "id": int(i),
                "name": classes[i].name,
                "synonyms": classes[i].synonyms,
                "probability": round(float(probs[i]), 4),
            }
            for i in top
        ],
        "frame_top1": [
            {"t": round(float(t), 3), "id": int(c), "name": classes[c].name}
            for t, c in zip(result.timestamps, per_frame, strict=True)
        ],
    }
