"""Where the heavy per-batch stages run: in this process (default) or on a Ray cluster.

Two stages dominate the cost of a batch: frames (decode + sample + encode into the batch's shard)
and visual scoring (the student over the shard). Both go through an ``Engine`` so that an asset asks
for the work, not for a place to do it. ``LocalEngine`` is the existing in-process code
(``ml.frames.stage.embed_batch`` with its ``SamplerPool``, ``VisualPredictor``) and is what tests and
the demo use; ``RayEngine`` (``ml.engines.ray_engine``) runs the same functions on a cluster. Both write the
shard on the calling machine with ``write_shard`` and produce the same embeddings, failures and
scores: an engine changes where the work runs, never what it computes.

An engine holds loaded models and worker processes between batches, so one is opened per asset
execution and closed at its end (``with engine_from_settings(settings) as engine: ...``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from ml.frames.stage import FrameStageResult
    from ml.visual.predictor import VisualPredictor, VisualScore

# Values of ``Settings.ray_address`` (env VIDCAT_RAY_ADDRESS) that mean "no Ray".
LOCAL_ADDRESSES = ("", "none", "off", "inprocess")


@runtime_checkable
class Engine(Protocol):
    """The per-batch heavy work of the pipeline; every method is safe to call batch after batch."""

    name: str

    def embed_batch(self, batch_id: str, videos: Sequence[tuple[str, str]], settings: Any) -> FrameStageResult:
        """Frames of ``(video_id, path)`` pairs into the batch's shard (replaced atomically); failures listed."""
        ...

    def score_visual(
        self,
        batch_id: str,
        model_dir: Path,
        shard_paths: Sequence[Path],
        meta: Mapping[str, np.ndarray] | None,
    ) -> list[VisualScore]:
        """One score vector per video of the shards (order not guaranteed: key by ``video_id``)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Engine: ...

    def __exit__(self, *exc: object) -> None: ...


class LocalEngine:
    """The in-process stages, with their decoder pool, encoder and predictors kept warm across batches.

    The pool and encoder are keyed by the settings that shape them, so a call with other sampling or
    encoder settings gets fresh ones instead of silently reusing stale ones.
    """

    name = "local"

    def __init__(self, predictors: int = 2) -> None:
        self._frames_key: tuple[Any, ...] | None = None
        self._encoder: Any = None
        self._pool: Any = None
        self._predictors: dict[str, VisualPredictor] = {}
        self._max_predictors = max(1, predictors)

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _frame_tools(self, settings: Any) -> tuple[Any, Any]:
        from ml.frames.image_encoder import encoder_from_settings
        from ml.frames.sampler import SampleOptions, SamplerPool

        options = SampleOptions.from_settings(settings)
        key = (options, settings.image_encoder, str(settings.models_dir), settings.frame_size)
        if key != self._frames_key:
            self._close_pool()
            self._encoder = encoder_from_settings(settings, beside_decoders=True)
            self._pool = SamplerPool(options)
            self._frames_key = key
        return self._encoder, self._pool

    def embed_batch(self, batch_id: str, videos: Sequence[tuple[str, str]], settings: Any) -> FrameStageResult:
        from ml.frames.stage import embed_batch

        encoder, pool = self._frame_tools(settings)
        return embed_batch(batch_id, list(videos), settings, encoder=encoder, pool=pool)

    def predictor(self, model_dir: Path) -> VisualPredictor:
        from ml.visual.predictor import VisualPredictor

        key = str(Path(model_dir).resolve())
        if key not in self._predictors:
            if len(self._predictors) >= self._max_predictors:
                self._predictors.pop(next(iter(self._predictors)))
            self._predictors[key] = VisualPredictor(Path(key))
        return self._predictors[key]

    def score_visual(
        self,
        batch_id: str,
        model_dir: Path,
        shard_paths: Sequence[Path],
        meta: Mapping[str, np.ndarray] | None,
    ) -> list[VisualScore]:
        return list(self.predictor(model_dir).predict_shards([Path(p) for p in shard_paths], meta))

    def _close_pool(self) -> None:
        if self._pool is not None:
            self._pool.close()
        self._pool = self._encoder = self._frames_key = None

    def close(self) -> None:
        self._close_pool()
        self._predictors.clear()


def ray_address_of(settings: Any) -> str | None:
    """The configured Ray address, or None where the stages run in process."""
    address = (getattr(settings, "ray_address", None) or "").strip()
    return None if address.lower() in LOCAL_ADDRESSES else address


def engine_from_settings(settings: Any, **ray_options: Any) -> Engine:
    """``RayEngine`` when ``ray_address`` is set (``local``, ``auto`` or ``ray://host:port``), else ``LocalEngine``.

    Ray options come from ``[extra.ray]`` in vidcat.toml (see ``RayEngine``), overridden by keywords.
    """
    address = ray_address_of(settings)
    if address is None:
        return LocalEngine()
    from ml.engines.ray_engine import RayEngine

    extra = dict((getattr(settings, "extra", None) or {}).get("ray", {}))
    extra.update(ray_options)
    return RayEngine(address, **extra)
