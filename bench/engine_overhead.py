"""The Ray engine against the local one on the same batch, and the per-video costs behind docs/deploy.md.

Three parts, on the real clips (``VIDCAT_BENCH_CLIPS``, default ``../shared/data/real_clips``):

* decode cost by resolution: CPU seconds of ``sample_frames`` (one FFmpeg thread, in this process) per
  clip, the best of two passes, grouped by picture size; the unit costs the cost model multiplies;
* engines: the clips as one batch through ``LocalEngine`` and through ``RayEngine`` on a local Ray
  started with every core, twice each (the first run includes starting workers and loading the
  encoder, the second is a warm batch, as every batch after the first of a run); the two shards are
  compared video by video (quantized bytes);
* text embedding (multilingual-e5-small, the teacher's encoder): CPU and wall time per video text
  built the production way (``build_text``, 1,500 characters at most) from real trending videos
  (``../shared/data/youtube_trending``, deduplicated), and per title alone;
* moving a video's frames (300 x 224 x 224 x 3 uint8 = 45 MB): through a pipe into a spawned process
  (the local pool's path) against the Ray object store (a task returns the frames, another task reads
  them by reference, as the encoder actor does);
* where CUDA is available: the encoder's PyTorch module on the GPU (fp32, fp16, bf16 at batch 256,
  and ``torch.compile`` with ``VIDCAT_BENCH_COMPILE=1``), its distance to the CPU features, and the
  host-to-device copy of one video's frames. ``gpu_encoder()`` runs alone where the rest cannot
  (a GPU machine without PyAV or Ray).
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.sampler_vs_ffmpeg import clips_dir, video_files

FRAMES_SHAPE = (300, 224, 224, 3)


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _resolution_class(width: int, height: int) -> str:
    pixels = width * height
    return "sd" if pixels < 500_000 else ("hd" if pixels < 1_500_000 else "fhd")


def decode_costs(files: list[Path]) -> dict[str, Any]:
    from ml.frames.sampler import SampleOptions, sample_frames

    options = SampleOptions(threads=1)
    groups: dict[str, dict[str, float]] = {}
    for path in files:
        best, sampled = float("inf"), None
        for _ in range(2):
            started = _cpu_s()
            try:
                sampled = sample_frames(path, options)
            except Exception:
                break
            best = min(best, _cpu_s() - started)
        if sampled is None or not len(sampled):
            continue
        info = sampled.info
        seconds = min(float(info.get("duration_s") or len(sampled)), options.max_frames / options.fps)
        g = groups.setdefault(
            _resolution_class(info["width"], info["height"]), {"clips": 0, "cpu_s": 0.0, "video_s": 0.0, "frames": 0}
        )
        g["clips"] += 1
        g["cpu_s"] += best
        g["video_s"] += seconds
        g["frames"] += len(sampled)
    out: dict[str, Any] = {}
    for name, g in sorted(groups.items()):
        out[f"decode_{name}_clips"] = int(g["clips"])
        out[f"decode_{name}_cpu_ms_per_frame"] = round(1000 * g["cpu_s"] / g["frames"], 2)
        out[f"decode_{name}_cpu_ms_per_video_s"] = round(1000 * g["cpu_s"] / g["video_s"], 2)
    return out


COUNTRIES = ("US", "FR", "DE", "BR", "IN")


def text_costs(folder: Path, countries: tuple[str, ...] = COUNTRIES, n: int = 96) -> dict[str, Any]:
    import csv
    import random

    from ml.text.features import E5Encoder, build_text

    rows: dict[str, dict[str, str]] = {}
    for country in countries:
        path = folder / f"{country}_youtube_trending_data.csv"
        if not path.is_file():
            continue
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.DictReader(f)
            try:
                for row in reader:
                    rows.setdefault(row.get("video_id") or str(len(rows)), row)
            except csv.Error:  # each file's last row is cut off
                pass
    if not rows:
        return {}
    sample = random.Random(0).sample(sorted(rows), min(n, len(rows)))
    texts = [build_text(rows[v].get("title"), rows[v].get("description"), rows[v].get("tags")) for v in sample]
    titles = [build_text(rows[v].get("title")) for v in sample]
    encoder = E5Encoder()
    encoder.encode(titles[:4])  # load the model
    out: dict[str, Any] = {"text_videos": len(texts), "text_mean_chars": round(statistics.mean(map(len, texts)))}
    for name, batch in (("text", texts), ("title", titles)):
        wall, cpu = time.perf_counter(), _cpu_s()
        encoder.encode(batch)
        out[f"{name}_cpu_ms_per_video"] = round(1000 * (_cpu_s() - cpu) / len(batch), 1)
        out[f"{name}_wall_ms_per_video"] = round(1000 * (time.perf_counter() - wall) / len(batch), 1)
    return out


def _shard_bytes(path: Path) -> dict[str, bytes]:
    from ml.frames.embedding_store import iter_videos

    return {v.video_id: v.embeddings.tobytes() for v in iter_videos(path, dequantized=False)}


def engines(files: list[Path], root: Path) -> tuple[dict[str, Any], Any]:
    """Local then Ray on the same batch; returns the figures and the still-open Ray engine."""
    from ml.config import load_settings
    from ml.engines.local import LocalEngine
    from ml.engines.ray_engine import RayEngine

    videos = [(p.name, str(p)) for p in files]
    out: dict[str, Any] = {"videos": len(videos)}
    shards = {}
    for name in ("local", "ray"):
        settings = load_settings(data_root=root / name).ensure_dirs()
        if name == "local":
            engine: Any = LocalEngine()
        else:
            (root / "ray" / "models").rmdir()
            (root / "ray" / "models").symlink_to(root / "local" / "models")  # export the encoder once
            started = time.perf_counter()
            engine = RayEngine("local", num_cpus=len(os.sched_getaffinity(0)))
            out["ray_init_s"] = round(time.perf_counter() - started, 2)
        for i, run in enumerate(("cold", "warm")):
            started = time.perf_counter()
            result = engine.embed_batch(f"b{i:08d}", videos, settings)
            out[f"{name}_{run}_wall_s"] = round(time.perf_counter() - started, 2)
        out[f"{name}_frames"] = result.frames
        out[f"{name}_failures"] = len(result.failures)
        shards[name] = _shard_bytes(result.shard)
        if name == "local":
            engine.close()
    same = sum(shards["ray"].get(v) == b for v, b in shards["local"].items())
    out["videos_identical"] = f"{same} of {len(shards['local'])}"
    out["ray_over_local_warm"] = round(out["ray_warm_wall_s"] / out["local_warm_wall_s"], 2)
    out["ray_extra_ms_per_video_warm"] = round(
        1000 * (out["ray_warm_wall_s"] - out["local_warm_wall_s"]) / max(1, len(videos)), 1
    )
    return out, engine


def _pipe_child(conn: Any) -> None:
    frames = np.full(FRAMES_SHAPE, 7, dtype=np.uint8)
    for _ in range(conn.recv()):
        conn.send(frames)
    conn.close()


def pipe_transfer(rounds: int = 5) -> dict[str, Any]:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_pipe_child, args=(child,))
    proc.start()
    parent.send(rounds + 1)
    parent.recv()  # the child's start-up is not a transfer
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        parent.recv()
        times.append(time.perf_counter() - started)
    proc.join()
    return {"pipe_45mb_ms": round(1000 * statistics.median(times), 1)}


def object_store_transfer(rounds: int = 5) -> dict[str, Any]:
    import ray

    @ray.remote
    def make() -> np.ndarray:
        return np.full(FRAMES_SHAPE, 7, dtype=np.uint8)

    @ray.remote
    def touch(frames: np.ndarray) -> int:
        return int(frames[::50, ::37, ::37].sum())

    ray.get(touch.remote(ray.get(make.remote())))  # warm both workers
    make_t, touch_t, put_t = [], [], []
    for _ in range(rounds):
        started = time.perf_counter()
        ref = make.remote()
        ray.wait([ref], fetch_local=False)
        make_t.append(time.perf_counter() - started)
        started = time.perf_counter()
        ray.get(touch.remote(ref))
        touch_t.append(time.perf_counter() - started)
        frames = np.full(FRAMES_SHAPE, 7, dtype=np.uint8)
        started = time.perf_counter()
        ray.put(frames)
        put_t.append(time.perf_counter() - started)
        del ref
    small = [touch.remote(np.zeros((1, 1, 1, 3), np.uint8)) for _ in range(200)]
    started = time.perf_counter()
    ray.get(small)
    per_task = (time.perf_counter() - started) / len(small)
    return {
        "ray_task_returns_45mb_ms": round(1000 * statistics.median(make_t), 1),
        "ray_task_reads_45mb_by_ref_ms": round(1000 * statistics.median(touch_t), 1),
        "ray_put_45mb_ms": round(1000 * statistics.median(put_t), 1),
        "ray_small_task_ms": round(1000 * per_task, 2),
    }


def _structured_frames(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(n, 14, 14, 3)).astype(np.uint8)
    return np.ascontiguousarray(base.repeat(16, axis=1).repeat(16, axis=2))


def gpu_encoder(batch: int = 256, reps: int = 20) -> dict[str, Any]:
    import torch

    from ml.frames.image_encoder import _features_module, load_torch_model

    if not torch.cuda.is_available():
        return {}
    frames_np = _structured_frames(batch)
    module = _features_module(load_torch_model("efficientnet-lite0"))
    with torch.inference_mode():
        reference = module(torch.from_numpy(frames_np[:64])).numpy()
    gpu = module.cuda().to(memory_format=torch.channels_last)
    frames = torch.from_numpy(frames_np).cuda()
    out: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0), "gpu_batch": batch}

    def measure(name: str, net: Any, dtype: Any) -> None:
        ctx = torch.autocast("cuda", dtype=dtype, enabled=dtype is not None)
        with torch.inference_mode(), ctx:
            for _ in range(3):
                net(frames)
            torch.cuda.synchronize()
            started = time.perf_counter()
            for _ in range(reps):
                net(frames)
            torch.cuda.synchronize()
            elapsed = time.perf_counter() - started
            y = net(frames[:64]).float().cpu().numpy()
        cosine = (y * reference).sum(1) / np.linalg.norm(y, axis=1) / np.linalg.norm(reference, axis=1)
        out[f"gpu_{name}_fps"] = round(batch * reps / elapsed, 1)
        out[f"gpu_{name}_max_abs_diff_vs_cpu"] = float(np.abs(y - reference).max())
        out[f"gpu_{name}_min_cosine_vs_cpu"] = round(float(cosine.min()), 7)

    for name, dtype in (("fp32", None), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
        measure(name, gpu, dtype)
    if os.environ.get("VIDCAT_BENCH_COMPILE"):
        measure("fp16_compiled", torch.compile(gpu), torch.float16)
    video = torch.from_numpy(np.resize(frames_np, FRAMES_SHAPE))
    for name, src in (("pageable", video), ("pinned", video.pin_memory())):
        torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(10):
            src.cuda(non_blocking=True)
        torch.cuda.synchronize()
        out[f"gpu_h2d_45mb_{name}_ms"] = round(100 * (time.perf_counter() - started), 2)
    return out


def run() -> dict[str, Any]:
    files = video_files(clips_dir()) if clips_dir().is_dir() else []
    if not files:
        return {"skipped": f"no clips in {clips_dir()} (set VIDCAT_BENCH_CLIPS)"}
    out: dict[str, Any] = {"cores": len(os.sched_getaffinity(0)), "load_avg_1m": round(os.getloadavg()[0], 2)}
    out.update(decode_costs(files))
    out.update(text_costs(clips_dir().parent / "youtube_trending"))
    out.update(pipe_transfer())
    with tempfile.TemporaryDirectory() as tmp:
        figures, engine = engines(files, Path(tmp))
        out.update(figures)
        try:
            out.update(object_store_transfer())
        finally:
            engine.close()
    out.update(gpu_encoder())
    out["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    return out
