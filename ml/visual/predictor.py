"""Scoring with a trained visual model: onnxruntime over numpy batches, no torch on this path.

The Dagster scoring step, the engines and `vidcat classify` load only this module; training and
export live in ml/visual/training.py and ml/visual/export.py (torch, Lightning); the torch backend
needs only ml/visual/network.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.frames.embedding_store import VideoEmbeddings, iter_videos
from ml.visual.batches import batch_videos, meta_dim_of
from ml.visual.meta import META_DIM, META_LAYOUT_VERSION, MISSING_META
from ml.visual.ood import load_detector, mean_pool

MODEL_NAME = "visual_model"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"


def _session(path: Path, threads: int | None = None) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.inter_op_num_threads = 1
    if threads:
        so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _feed(session: Any, frames: np.ndarray, mask: np.ndarray, meta: np.ndarray) -> dict[str, np.ndarray]:
    """Inputs by name; an unused ``meta`` (model without metadata) is pruned from the graph by the exporter."""
    given = {
        "frames": np.ascontiguousarray(frames, dtype=np.float32),
        "mask": np.ascontiguousarray(mask, dtype=bool),
        "meta": np.ascontiguousarray(meta, dtype=np.float32),
    }
    return {i.name: given[i.name] for i in session.get_inputs()}


@dataclass(frozen=True)
class VisualScore:
    video_id: str
    n_frames: int
    scores: np.ndarray  # float32 (C,), aligned with the model's categories
    ood_score: float = float("nan")  # distance to the training videos (ml/visual/ood.py); NaN: not measured
    out_of_distribution: bool = False  # too far for the visual source to judge the video


def load_manifest(model_dir: Path) -> dict[str, Any]:
    path = Path(model_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir} holds no visual model (no {MANIFEST_NAME})")
    m = json.loads(path.read_text())
    if m.get("model_name") != MODEL_NAME or m.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: not a {MODEL_NAME} of format {FORMAT_VERSION} "
            f"(got {m.get('model_name')!r}, format {m.get('format_version')!r})"
        )
    return m


class VisualPredictor:
    """Scores videos with a trained model; loads it once, then streams batches through it.

    ``backend="onnx"`` (default) runs the exported graph in onnxruntime; ``backend="torch"`` runs the
    best checkpoint eagerly (for comparison and debugging; it uses torch's own thread setting).
    Videos are batched by similar length (``batch_videos``), so results come out in length order
    within each window, not input order. ``threads`` is onnxruntime's intra-op thread count, one by
    default for the same reason as ``VisualTrainConfig.torch_threads`` (measured on the shared 2-core
    machine: 335 videos/s with one thread, 286 with two); None lets onnxruntime take every core.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        batch_size: int = 64,
        length_window: int = 8,
        threads: int | None = 1,
        backend: str = "onnx",
    ) -> None:
        self.model_dir = Path(model_dir)
        self.manifest = load_manifest(self.model_dir)
        self.version: str = self.manifest["version"]
        self.categories: list[str] = list(self.manifest["categories"])
        self.arch: str = self.manifest["arch"]
        self.feature_dim = int(self.manifest["feature_dim"])
        self.meta_dim = int(self.manifest["meta_dim"])
        self.max_frames = int(self.manifest["max_frames"])
        self.batch_size = batch_size
        self.length_window = length_window
        self.backend = backend
        layout_version = self.manifest.get("meta_layout_version")
        self.default_meta = (
            MISSING_META
            if layout_version == META_LAYOUT_VERSION and self.meta_dim == META_DIM
            else np.zeros(self.meta_dim, dtype=np.float32)
        )
        self.ood = load_detector(self.model_dir)
        if backend == "onnx":
            self._session = _session(self.model_dir / self.manifest["artifact"], threads=threads)
        elif backend == "torch":
            from ml.visual.network import load_network

            self._network, _ = load_network(self.model_dir / self.manifest["checkpoint"])
        else:
            raise ValueError(f"backend must be 'onnx' or 'torch', got {backend!r}")

    def score_arrays(self, frames: np.ndarray, mask: np.ndarray, meta: np.ndarray | None = None) -> np.ndarray:
        """Probabilities (B, C) of one padded batch."""
        if frames.ndim != 3 or frames.shape[2] != self.feature_dim:
            raise ValueError(
                f"frames must be (batch, frames, {self.feature_dim}) for model {self.version}, "
                f"got {frames.shape}: embeddings of another encoder?"
            )
        if meta is None:
            meta = np.broadcast_to(self.default_meta, (frames.shape[0], self.meta_dim))
        if self.backend == "onnx":
            return self._session.run(None, _feed(self._session, frames, mask, meta))[0]
        import torch

        with torch.inference_mode():
            m = torch.from_numpy(np.ascontiguousarray(meta, dtype=np.float32)) if self.meta_dim else None
            return torch.sigmoid(self._network(torch.from_numpy(frames), torch.from_numpy(mask), m)).numpy()

    def predict(
        self, videos: Iterable[VideoEmbeddings], meta: Mapping[str, np.ndarray] | None = None
    ) -> Iterator[VisualScore]:
        """One ``VisualScore`` per input video (frameless ones included: they get the model's prior)."""
        if meta and meta_dim_of(meta) != self.meta_dim:
            raise ValueError(
                f"metadata vectors have {meta_dim_of(meta)} values, model {self.version} expects {self.meta_dim}"
            )
        for b in batch_videos(
            videos,
            meta,
            meta_dim=self.meta_dim,
            default_meta=self.default_meta,
            batch_size=self.batch_size,
            max_frames=self.max_frames,
            length_window=self.length_window,
        ):
            scores = self.score_arrays(b.frames, b.mask, b.meta)
            ood = self.ood_scores(b.frames, b.mask, b.n_frames)
            for vid, n, s, o in zip(b.video_ids, b.n_frames, scores, ood, strict=True):
                flagged = bool(self.ood is not None and np.isfinite(o) and o > self.ood.threshold)
                yield VisualScore(vid, int(n), np.asarray(s, dtype=np.float32), float(o), flagged)

    def ood_scores(self, frames: np.ndarray, mask: np.ndarray, n_frames: np.ndarray) -> np.ndarray:
        """Out-of-distribution score per padded video; NaN without a detector or without frames."""
        out = np.full(len(frames), np.nan, np.float32)
        if self.ood is None:
            return out
        has = np.asarray(n_frames) > 0
        if has.any():
            out[has] = self.ood.scores(mean_pool(frames[has], mask[has]))
        return out

    def predict_shards(
        self,
        shards: Sequence[Path],
        meta: Mapping[str, np.ndarray] | None = None,
        video_ids: Iterable[str] | None = None,
    ) -> Iterator[VisualScore]:
        ids = None if video_ids is None else set(video_ids)
        return self.predict(iter_videos([Path(s) for s in shards], video_ids=ids), meta)
