"""Image encoder throughput: the exported ONNX model in onnxruntime against eager PyTorch.

Both encode the same 224 px frames (sampled from the real clips when present, else synthetic) with
every core, in alternating rounds (``VIDCAT_BENCH_REPEATS``, default 3); the best time of each is
kept. Also reported: the export check, the largest |onnx - torch| difference on these frames, and
onnxruntime alone on one thread without spinning (how the pipeline runs it beside decoders).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from bench.sampler_vs_ffmpeg import clips_dir, video_files

N_FRAMES = 64
ENCODER = "efficientnet-lite0"


def bench_frames(n: int = N_FRAMES) -> tuple[np.ndarray, str]:
    folder = clips_dir()
    if folder.is_dir():
        from ml.frames.errors import VideoError
        from ml.frames.sampler import sample_frames

        chunks, total = [], 0
        for path in video_files(folder):
            try:
                chunk = sample_frames(path).frames
            except VideoError:
                continue
            chunks.append(chunk)
            total += len(chunk)
            if total >= n:
                return np.concatenate(chunks)[:n], f"real clips ({folder.name})"
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(n, 14, 14, 3), dtype=np.uint8)
    return np.ascontiguousarray(base.repeat(16, axis=1).repeat(16, axis=2)), "synthetic"


def _best_fps(encode: Any, frames: np.ndarray, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        encode(frames)
        best = min(best, time.perf_counter() - started)
    return len(frames) / best


def run() -> dict[str, Any]:
    from ml.config import load_settings
    from ml.frames.image_encoder import OnnxEncoder, TorchEncoder, _export_is_current, load_encoder, onnx_path

    rounds = int(os.environ.get("VIDCAT_BENCH_REPEATS", "3"))
    frames, source = bench_frames()
    models_dir = load_settings().models_dir
    cached = _export_is_current(onnx_path(models_dir, ENCODER))
    started = time.perf_counter()
    onnx = load_encoder(ENCODER, models_dir)
    load_s = time.perf_counter() - started
    torch_enc = TorchEncoder(ENCODER)
    onnx.encode(frames[:16])
    torch_enc.encode(frames[:16])
    torch_fps, onnx_fps, ratios = 0.0, 0.0, []
    for _ in range(rounds):  # alternate, so load from other processes hits both alike
        t = _best_fps(torch_enc.encode, frames, 1)
        o = _best_fps(onnx.encode, frames, 1)
        ratios.append(round(o / t, 2))
        torch_fps, onnx_fps = max(torch_fps, t), max(onnx_fps, o)
    a, b = torch_enc.encode(frames), onnx.encode(frames)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    beside = OnnxEncoder(ENCODER, onnx.model_path, threads=1, spinning=False)
    beside.encode(frames[:16])
    import onnxruntime
    import torch

    return {
        "frames": len(frames),
        "frames_from": source,
        "cores": len(os.sched_getaffinity(0)),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "torch_threads": torch.get_num_threads(),
        "batch_size": onnx.batch_size,
        "torch_fps": round(torch_fps, 1),
        "onnx_fps": round(onnx_fps, 1),
        "fps_ratio_onnx_vs_torch": round(onnx_fps / torch_fps, 2),
        "fps_ratio_per_round": ratios,
        "onnx_1_thread_no_spin_fps": round(_best_fps(beside.encode, frames, rounds), 1),
        "max_abs_diff": float(np.abs(a - b).max()),
        "min_cosine": round(float(cos.min()), 7),
        "export_check_max_abs_diff": onnx.export_check.get("max_abs_diff_vs_torch"),
        "onnx_load_s" if cached else "onnx_export_and_load_s": round(load_s, 2),
    }
