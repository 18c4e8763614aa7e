"""Visual model speed: the exported ONNX graph in onnxruntime against eager PyTorch, and training time.

Scoring: 512 synthetic videos of 10-60 frames (1280-d, the product's NeXtVLAD K=64 G=8 H=512 with
200 categories and metadata) go through ``VisualPredictor`` with each backend, same batching, in
alternating rounds (``VIDCAT_BENCH_REPEATS``, default 3); the best time of each is kept. Both run
with the library's default thread count and with one thread (how the pipeline runs beside another
run on two cores). Training: seconds for one epoch (training pass plus its validation pass) on
1,000 synthetic videos streamed from shards, NeXtVLAD and the mean-pooling baseline.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

N_VIDEOS = 512
TRAIN_VIDEOS = 1000
FRAMES = (10, 60)
DIM = 1280
CATEGORIES = 200


def _best_rate(predictor: Any, videos: list, meta: dict, rounds: int) -> tuple[float, dict[str, np.ndarray]]:
    best, scores = float("inf"), {}
    for _ in range(rounds):
        started = time.perf_counter()
        scores = {s.video_id: s.scores for s in predictor.predict(videos, meta)}
        best = min(best, time.perf_counter() - started)
    return len(videos) / best, scores


def run() -> dict[str, Any]:
    import torch

    from ml.frames.embedding_store import iter_videos
    from ml.visual.meta import meta_vector
    from ml.visual.network import VisualTrainConfig
    from ml.visual.predictor import VisualPredictor
    from ml.visual.synthetic import synthetic_catalog
    from ml.visual.training import train_visual_model

    rounds = int(os.environ.get("VIDCAT_BENCH_REPEATS", "3"))
    out: dict[str, Any] = {"cores": len(os.sched_getaffinity(0)), "torch_default_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        catalog = synthetic_catalog(
            root / "emb", TRAIN_VIDEOS, dim=DIM, n_categories=CATEGORIES, frames=FRAMES, videos_per_shard=250, seed=0
        )
        meta = {
            v: meta_vector({"language": "en", "duration_s": float(n), "fps": 30.0, "has_audio": True})
            for v, n in catalog.n_frames.items()
        }
        config = VisualTrainConfig(max_epochs=1, enable_progress_bar=False)
        trained = {}
        for arch in ("nextvlad", "meanpool"):
            result = train_visual_model(
                catalog.shards,
                catalog.targets,
                meta,
                catalog.categories,
                dataclasses.replace(config, arch=arch),
                root / arch,
            )
            trained[arch] = result
            out[f"train_s_per_epoch_{arch}"] = round(result.train_seconds, 2)
            out[f"params_{arch}"] = result.param_count
        out["train_videos"] = trained["nextvlad"].videos["train"]
        out["train_threads"] = config.torch_threads

        videos = list(iter_videos(catalog.shards))[:N_VIDEOS]
        out["videos"] = len(videos)
        out["frames_mean"] = round(float(np.mean([v.n_frames for v in videos])), 1)
        model_dir = trained["nextvlad"].model_dir
        default_threads = torch.get_num_threads()
        for label, threads in (("", None), ("_1thread", 1)):  # None: every core for both libraries
            onnx = VisualPredictor(model_dir, threads=threads)
            torch.set_num_threads(threads or default_threads)
            eager = VisualPredictor(model_dir, backend="torch")
            onnx_rate = torch_rate = 0.0
            for _ in range(rounds):  # alternate, so load from other processes hits both alike
                rate, onnx_scores = _best_rate(onnx, videos, meta, 1)
                onnx_rate = max(onnx_rate, rate)
                rate, torch_scores = _best_rate(eager, videos, meta, 1)
                torch_rate = max(torch_rate, rate)
            out[f"onnx_videos_per_s{label}"] = round(onnx_rate, 1)
            out[f"torch_videos_per_s{label}"] = round(torch_rate, 1)
            out[f"onnx_over_torch{label}"] = round(onnx_rate / torch_rate, 2)
            out[f"max_abs_diff{label}"] = float(
                max(np.abs(onnx_scores[v] - torch_scores[v]).max() for v in onnx_scores)
            )
        torch.set_num_threads(default_threads)
    return out


def compare_synthetic(
    n_videos: int = 1500,
    frames: tuple[int, int] = FRAMES,
    n_categories: int = 20,
    held_out: int = 300,
    seed: int = 0,
    max_epochs: int = 15,
) -> dict[str, Any]:
    """NeXtVLAD against mean pooling on a synthetic catalog (``ml.visual.synthetic.synthetic_catalog``).

    Both train on the noisy pseudo-labels of all but ``held_out`` videos and are scored on the held-out
    videos' true labels; ``truth_distinct`` / ``truth_blend`` keep only the columns of one kind of
    category, so their mAP is the mean AP over that kind (their GAP is not meaningful: the other
    kind's scores still take top-20 places). ``pseudo`` scores against the noisy labels instead.
    """
    from ml.evaluation.architectures import compare_architecture_ranking
    from ml.visual.network import VisualTrainConfig
    from ml.visual.synthetic import synthetic_catalog

    with tempfile.TemporaryDirectory() as tmp:
        catalog = synthetic_catalog(
            Path(tmp) / "emb",
            n_videos,
            dim=DIM,
            n_categories=n_categories,
            frames=frames,
            videos_per_shard=250,
            seed=seed,
        )
        ids = sorted(catalog.labels)
        rng = np.random.default_rng(seed)
        test = sorted(rng.choice(ids, size=held_out, replace=False).tolist())
        truth = np.stack([catalog.labels[v] for v in test])
        kinds = np.array(catalog.kinds)
        eval_sets = {
            "truth": (test, truth),
            "truth_distinct": (test, truth * (kinds == "distinct")),
            "truth_blend": (test, truth * (kinds == "blend")),
            "pseudo": (test, np.stack([catalog.targets[v] for v in test])),
        }
        config = VisualTrainConfig(max_epochs=max_epochs, enable_progress_bar=False, seed=seed)
        report = compare_architecture_ranking(
            catalog.shards, catalog.targets, None, catalog.categories, eval_sets, config
        )
    report["dataset"] = {
        "videos": n_videos,
        "held_out": held_out,
        "frames": list(frames),
        "dim": DIM,
        "categories": n_categories,
        "kinds": catalog.kinds,
        "seed": seed,
    }
    return report


if __name__ == "__main__":
    import json
    import sys

    if sys.argv[1:2] == ["--compare"]:
        args = [int(a) for a in sys.argv[2:]]  # n_videos frames_min frames_max [held_out] [max_epochs]
        kwargs: dict[str, Any] = {}
        if len(args) >= 3:
            kwargs = {"n_videos": args[0], "frames": (args[1], args[2])}
        if len(args) >= 4:
            kwargs["held_out"] = args[3]
        if len(args) >= 5:
            kwargs["max_epochs"] = args[4]
        print(json.dumps(compare_synthetic(**kwargs), indent=2, default=str))
    else:
        print(json.dumps(run(), indent=2))
