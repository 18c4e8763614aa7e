"""int8 EfficientNet-Lite0: why static quantization lost fidelity here, the fixed recipe, and what it keeps.

``python -m bench.int8_fidelity`` (or ``python -m bench int8_fidelity``). Builds two int8 models from the
fp32 export with onnxruntime's static quantization, both QDQ, per-channel symmetric int8 weights,
asymmetric uint8 activations, MinMax ranges from drawn demo scenes (never from the real clips the
figures are measured on):

* ``before``: the recipe that was tried first, on the raw export (static ``Pad`` nodes left in).
* ``fixed``: ``quant_pre_process`` first (folds each ``Pad`` into its ``Conv``: without it every padded
  depthwise convolution runs as DequantizeLinear -> Pad -> QuantizeLinear around the int8 kernel), and the
  stem and the first two blocks kept in fp32 (their convolutions and ReLU6 ``Clip`` nodes): a prefix,
  so no quantized tensor feeds a float convolution (see ``WeightBiasQuantization`` below).

It prints, then returns for ``python -m bench``:

1. Layer by layer (``onnxruntime.quantization.qdq_loss_debug`` on real frames): the SQNR of each block's
   output, float graph against the QDQ graph, for both models; and which layers' weights alone cost most
   (each conv's weights quantized alone in the fp32 graph), with the channel gains that explain it.
2. Fidelity on the real clips (1 fps, the sampler's frames) and on drawn demo scenes: feature cosine
   (mean, min), ImageNet top-1 agreement of the fp32 and int8 heads (``classify_pooled``), split by the
   fp32 top-1 margin, and whether the fp32 top-1 stays in the int8 top-5.
3. Speed: frames/s of fp32 ONNX and the int8 models, same process, same threads, alternating rounds.
4. Checks: int8 kernels against the same QDQ graph computed in float (integer saturation would show
   here), and top-1 agreement of the fp32 features with random noise of a given cosine (how much of the
   top-1 figure is near-ties rather than quantization); and the fixed model computed with only its weights
   or only its activations quantized (which side its remaining error comes from).

``--all`` also builds the depthwise-in-fp32 variant and runs it with and without onnxruntime's
``WeightBiasQuantization`` graph optimization, which silently re-quantizes float convolutions fed by a
DequantizeLinear to per-tensor int8 weights (why "depthwise kept in fp32" measured worse before); and the
fixed recipe with 7-bit weights (``reduce_range``), the remedy for u8s8 saturation on x86 without VNNI.

Skips with a message when the real clips (``../shared/data/real_clips`` or ``VIDCAT_BENCH_CLIPS``) are absent.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.sampler_vs_ffmpeg import clips_dir, video_files

ENCODER = "efficientnet-lite0"
FP32_PREFIX_BLOCKS = 2  # stem + blocks 0..1 stay fp32 in the fixed recipe
N_CALIB = int(os.environ.get("VIDCAT_INT8_CALIB", "768"))  # drawn demo scenes for the activation ranges
N_DEMO_EVAL = 256
N_DEBUG = 32  # real frames for the per-node tables (every tensor of the graph is kept in memory)
BATCH = 16
SPEED_FRAMES = 96
DRAW_W, DRAW_H = 320, 180  # as the demo catalog draws its scenes


# ---------------------------------------------------------------------------------------------------
# Frames


def real_frames() -> tuple[np.ndarray, int] | None:
    folder = clips_dir()
    if not folder.is_dir():
        return None
    from ml.frames.errors import VideoError
    from ml.frames.sampler import sample_frames

    chunks, clips = [], 0
    for path in video_files(folder):
        try:
            chunks.append(sample_frames(path).frames)
            clips += 1
        except VideoError:
            continue
    return (np.concatenate(chunks), clips) if chunks else None


def demo_frames(n: int, seed: int) -> np.ndarray:
    """Demo scenes drawn as the demo catalog draws them (320x180, with grain), scaled and cropped to 224
    as the sampler does: varied frames that need no video on disk."""
    import av

    from ml.demo.catalog import DEMO_CATEGORIES, DRAW, _grid, draw_styles

    rng = np.random.default_rng(seed)
    yy, xx = _grid(DRAW_H, DRAW_W)
    out = np.empty((n, 224, 224, 3), np.uint8)
    width = round(DRAW_W * 224 / DRAW_H)
    x0 = (width - 224) // 2
    for i in range(n):
        cat = DEMO_CATEGORIES[int(rng.integers(len(DEMO_CATEGORIES)))]
        style = draw_styles([cat], rng, seed * 100_000 + i)[cat]
        rgb = np.clip(DRAW[cat](yy, xx, float(rng.uniform(0, 60)), style), 0, 1) * 255
        rgb = np.clip(rgb + rng.normal(0, 3.0, rgb.shape), 0, 255).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
            width=width, height=224, format="rgb24", interpolation="AREA"
        )
        out[i] = frame.to_ndarray()[:, x0 : x0 + 224]
    return out


# ---------------------------------------------------------------------------------------------------
# Models


class _Reader:
    """A CalibrationDataReader over equal batches (the histogram calibrators need equal shapes)."""

    def __init__(self, frames: np.ndarray, batch: int = BATCH):
        self.batches = [frames[i : i + batch] for i in range(0, len(frames) - batch + 1, batch)]
        self.i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return {"frames": self.batches[self.i - 1]}

    def rewind(self) -> None:
        self.i = 0

    def __iter__(self):
        self.rewind()
        return iter(lambda: self.get_next(), None)


def _graph_facts(path: Path) -> dict[str, Any]:
    import onnx

    g = onnx.load(str(path)).graph
    nodes = {n.name: n for n in g.node}
    convs = [n.name for n in g.node if n.op_type == "Conv"]
    depthwise = [c for c in convs if any(a.name == "group" and a.i > 1 for a in nodes[c].attribute)]
    consumers: dict[str, list[str]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n.name)
    ops: dict[str, int] = {}
    for n in g.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    return {"nodes": nodes, "convs": convs, "depthwise": depthwise, "consumers": consumers, "ops": ops}


def _with_activations(facts: dict[str, Any], convs: list[str]) -> list[str]:
    """The convolutions and the ReLU6 ``Clip`` right after each: excluding a conv alone would leave its
    Clip to be quantized on both sides, the input over the conv's whole pre-activation range."""
    out = []
    for c in convs:
        out.append(c)
        for user in facts["consumers"].get(facts["nodes"][c].output[0], []):
            if facts["nodes"][user].op_type == "Clip":
                out.append(user)
    return out


def fp32_prefix(facts: dict[str, Any], blocks: int = FP32_PREFIX_BLOCKS) -> list[str]:
    convs = facts["convs"]
    keep = [convs[0]] + [c for c in convs if any(c.startswith(f"/_blocks.{b}/") for b in range(blocks))]
    return _with_activations(facts, keep)


def quantize(
    src: Path, out: Path, calib: np.ndarray, exclude: list[str] | None = None, reduce_range: bool = False
) -> float:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    started = time.perf_counter()
    quantize_static(
        str(src),
        str(out),
        _Reader(calib),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        nodes_to_exclude=exclude or [],
        reduce_range=reduce_range,
        # Clip kept explicit before each QuantizeLinear: the runtime fuses it all the same (same speed, same
        # outputs), and a graph with one side's QDQ taken out still computes ReLU6 (``_one_side_float``)
        extra_options={"QDQKeepRemovableActivations": True},
    )
    return time.perf_counter() - started


def session(path: Path | bytes, threads: int = 2, level: str = "ENABLE_ALL", disabled: tuple[str, ...] = ()) -> Any:
    """As the pipeline's encoder session (``ml.frames.image_encoder._session``), optionally another level."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_{level}")
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(
        path if isinstance(path, bytes) else str(path),
        so,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=list(disabled),
    )


def encode(sess: Any, frames: np.ndarray) -> np.ndarray:
    return np.concatenate([sess.run(None, {"frames": frames[i : i + BATCH]})[0] for i in range(0, len(frames), BATCH)])


# ---------------------------------------------------------------------------------------------------
# Measures


def fidelity(ref: np.ndarray, got: np.ndarray, w: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    cos = (ref * got).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    la, lb = ref @ w.T + b, got @ w.T + b
    agree = la.argmax(1) == lb.argmax(1)
    top2 = np.sort(la, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    decided = margin > 0.25
    in_top5 = (np.argsort(-lb, axis=1)[:, :5] == la.argmax(1)[:, None]).any(1)
    return {
        "frames": len(ref),
        "cos_mean": round(float(cos.mean()), 4),
        "cos_min": round(float(cos.min()), 4),
        "top1_agreement": round(float(agree.mean()), 3),
        "top1_agreement_margin_gt_0.25": round(float(agree[decided].mean()), 3) if decided.any() else None,
        "top1_agreement_margin_le_0.25": round(float(agree[~decided].mean()), 3) if (~decided).any() else None,
        "frames_margin_le_0.25": int((~decided).sum()),
        "fp32_top1_in_int8_top5": round(float(in_top5.mean()), 3),
    }


def noise_floor(ref: np.ndarray, w: np.ndarray, b: np.ndarray) -> list[dict[str, float]]:
    """Top-1 agreement of the fp32 features against themselves plus isotropic noise of a given size."""
    rng = np.random.default_rng(0)
    rows = []
    for rel in (0.01, 0.03, 0.05, 0.07):
        noise = rng.normal(size=ref.shape).astype(np.float32)
        noisy = ref + noise * rel * np.linalg.norm(ref, axis=1, keepdims=True) / np.sqrt(ref.shape[1])
        f = fidelity(ref, noisy, w, b)
        rows.append({"noise": rel, "cos_mean": f["cos_mean"], "top1_agreement": f["top1_agreement"]})
    return rows


def _sqnr(ref: list[np.ndarray], got: list[np.ndarray]) -> float:
    r = np.concatenate([x.ravel() for x in ref]).astype(np.float64)
    g = np.concatenate([x.ravel() for x in got]).astype(np.float64)
    return float(10 * np.log10((r**2).sum() / max(((r - g) ** 2).sum(), 1e-30)))


def block_outputs(facts: dict[str, Any]) -> list[tuple[str, str]]:
    names = set()
    for n in facts["nodes"].values():
        names.update(n.output)
    rows = [("stem", "/_swish/Clip_output_0")]
    b = 0
    while f"/_blocks.{b}/_project_conv/Conv_output_0" in names:
        add = f"/_blocks.{b}/Add_output_0"
        rows.append((f"block {b}", add if add in names else f"/_blocks.{b}/_project_conv/Conv_output_0"))
        b += 1
    rows.append(("head (pooled input)", "/_swish_1/Clip_output_0"))
    return rows


def per_node_sqnr(float_model: Path, qdq_model: Path, frames: np.ndarray, work: Path) -> dict[str, float]:
    """SQNR (dB) of every quantized activation: float graph against the QDQ graph, same frames."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    aug_f, aug_q = work / f"{float_model.stem}.aug.onnx", work / f"{qdq_model.stem}.aug.onnx"
    modify_model_output_intermediate_tensors(str(float_model), str(aug_f))
    modify_model_output_intermediate_tensors(str(qdq_model), str(aug_q))
    fa = collect_activations(str(aug_f), _Reader(frames, 8))
    qa = collect_activations(str(aug_q), _Reader(frames, 8))
    match = create_activation_matching(qa, fa)
    aug_f.unlink()
    aug_q.unlink()
    return {name: _sqnr(v["float"], v["post_qdq"]) for name, v in match.items() if "float" in v}


def weight_sensitivity(fp32_model: Path, frames: np.ndarray) -> list[dict[str, Any]]:
    """Each conv's weights alone rounded to per-channel symmetric int8 in the fp32 graph (activations
    float): SQNR of the pooled features, worst first."""
    import onnx
    from onnx import numpy_helper

    base = onnx.load(str(fp32_model))
    ref = encode(session(fp32_model), frames)
    inits = {i.name: i for i in base.graph.initializer}
    rows = []
    for node in (n for n in base.graph.node if n.op_type == "Conv"):
        w = numpy_helper.to_array(inits[node.input[1]])
        peak = np.abs(w).reshape(len(w), -1).max(1).reshape(-1, 1, 1, 1)
        scale = np.where(peak > 0, peak / 127, 1)
        wq = (np.clip(np.round(w / scale), -127, 127) * scale).astype(np.float32)
        model = onnx.ModelProto()
        model.CopyFrom(base)
        for init in model.graph.initializer:
            if init.name == node.input[1]:
                init.CopyFrom(numpy_helper.from_array(wq, init.name))
        got = encode(session(model.SerializeToString()), frames)
        gain = np.abs(w).reshape(len(w), -1).sum(1)  # largest output change per unit of input, by channel
        rows.append(
            {
                "conv": node.name,
                "depthwise": any(a.name == "group" and a.i > 1 for a in node.attribute),
                "feature_sqnr_db": round(_sqnr([ref], [got]), 1),
                "max_channel_gain": round(float(gain.max()), 1),
            }
        )
    return sorted(rows, key=lambda r: r["feature_sqnr_db"])


def _one_side_float(qdq_model: Path, fp32_model: Path, keep: str) -> bytes:
    """The QDQ graph with only the weights (``keep="weights"``) or only the activations quantized: the
    other side's DequantizeLinear nodes give way to the fp32 values (weights) or to the tensor before its
    QuantizeLinear (activations)."""
    import onnx

    model, floats = onnx.load(str(qdq_model)), onnx.load(str(fp32_model))
    float_inits = {i.name: i for i in floats.graph.initializer}
    g = model.graph
    inits = {i.name for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    drop, alias, added = set(), {}, []
    for n in g.node:
        if n.op_type != "DequantizeLinear":
            continue
        if n.input[0] in inits:  # a weight or bias
            name = n.input[0].removesuffix("_quantized")
            if keep == "activations" and name in float_inits:
                t = onnx.TensorProto()
                t.CopyFrom(float_inits[name])
                t.name = n.output[0]
                added.append(t)
                drop.add(n.name)
        elif keep == "weights" and producer.get(n.input[0]) is not None:
            q = producer[n.input[0]]
            if q.op_type == "QuantizeLinear":
                alias[n.output[0]] = q.input[0]
                drop.add(n.name)
    nodes = [n for n in g.node if n.name not in drop]
    for n in nodes:
        for k, i in enumerate(n.input):
            n.input[k] = alias.get(i, i)
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(added)
    return model.SerializeToString()


def speed(models: dict[str, Path], frames: np.ndarray, threads: int, rounds: int) -> dict[str, float]:
    sessions = {k: session(p, threads=threads) for k, p in models.items()}
    for s in sessions.values():
        s.run(None, {"frames": frames[:BATCH]})
    best = dict.fromkeys(models, float("inf"))
    for _ in range(rounds):  # alternate, so load from other processes hits every model alike
        for k, s in sessions.items():
            started = time.perf_counter()
            for i in range(0, len(frames), BATCH):
                s.run(None, {"frames": frames[i : i + BATCH]})
            best[k] = min(best[k], time.perf_counter() - started)
    return {k: round(len(frames) / t, 1) for k, t in best.items()}


# ---------------------------------------------------------------------------------------------------


def run(extra: bool = False) -> dict[str, Any]:
    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's pre-processing advice
    import onnxruntime
    from onnxruntime.quantization import quant_pre_process

    from ml.frames.image_encoder import export_onnx

    got = real_frames()
    if got is None:
        msg = f"skipped: no real clips at {clips_dir()} (set VIDCAT_BENCH_CLIPS); nothing measured"
        print(f"int8_fidelity: {msg}", file=sys.stderr)
        return {"skipped": msg}
    real, n_clips = got
    rounds = int(os.environ.get("VIDCAT_BENCH_REPEATS", "5"))
    t0 = time.perf_counter()
    say = lambda *a: print(f"[{time.perf_counter() - t0:6.1f}s]", *a, file=sys.stderr, flush=True)  # noqa: E731
    result: dict[str, Any] = {
        "onnxruntime": onnxruntime.__version__,
        "cpu": _cpu(),
        "real_frames": len(real),
        "real_clips": n_clips,
    }
    with tempfile.TemporaryDirectory(prefix="vidcat-int8-") as tmp:
        work = Path(tmp)
        raw, pre = work / "fp32.onnx", work / "fp32_pre.onnx"
        export_onnx(ENCODER, raw)
        head = np.load(raw.with_suffix(".head.npz"))
        hw, hb = head["weight"], head["bias"]
        quant_pre_process(str(raw), str(pre))
        facts_raw, facts_pre = _graph_facts(raw), _graph_facts(pre)
        result["graph"] = {
            "export_ops": facts_raw["ops"],
            "preprocessed_ops": facts_pre["ops"],
            "batchnorm_folded": "BatchNormalization" not in facts_raw["ops"],
            "relu6_as_clip": facts_raw["ops"].get("Clip", 0),
        }
        say("export", facts_raw["ops"], "-> pre-processed", facts_pre["ops"])
        calib = demo_frames(N_CALIB, seed=1)
        demo = demo_frames(N_DEMO_EVAL, seed=2)
        say(f"{len(real)} real frames from {n_clips} clips; {len(calib)} + {len(demo)} drawn demo scenes")

        models = {"before": work / "int8_before.onnx", "fixed": work / "int8_fixed.onnx"}
        island = fp32_prefix(facts_pre)
        build_s = {
            "before": quantize(raw, models["before"], calib),
            "fixed": quantize(pre, models["fixed"], calib, exclude=island),
        }
        result["fixed_recipe"] = {
            "quant_pre_process": True,
            "format": "QDQ, per-channel symmetric int8 weights, asymmetric uint8 activations",
            "calibration": f"MinMax over {len(calib)} drawn demo scenes",
            "fp32_nodes": island,
        }
        result["build_s"] = {k: round(v, 1) for k, v in build_s.items()}
        say("built", result["build_s"])
        if extra:
            depthwise = _with_activations(facts_pre, [facts_pre["convs"][0], *facts_pre["depthwise"]])
            models["depthwise_fp32"] = work / "int8_depthwise_fp32.onnx"
            quantize(pre, models["depthwise_fp32"], calib, exclude=depthwise)
            # 7-bit weights: on x86 without VNNI the u8s8 kernels add pairs of products in int16, which
            # full-range weights can saturate; the kernel check below says whether this CPU needs it.
            models["fixed_reduce_range"] = work / "int8_fixed_reduce_range.onnx"
            quantize(pre, models["fixed_reduce_range"], calib, exclude=island, reduce_range=True)

        # 1. layer by layer
        debug = real[np.linspace(0, len(real) - 1, N_DEBUG).astype(int)]
        sq_before = per_node_sqnr(raw, models["before"], debug, work)
        sq_fixed = per_node_sqnr(pre, models["fixed"], debug, work)
        layers = []
        for label, tensor in block_outputs(facts_pre):
            layers.append(
                {
                    "layer": label,
                    "tensor": tensor,
                    "sqnr_before_db": round(sq_before[tensor], 1) if tensor in sq_before else None,
                    "sqnr_fixed_db": round(sq_fixed[tensor], 1) if tensor in sq_fixed else None,
                }
            )
        result["layers"] = layers
        say("per-node SQNR done")
        result["weight_sensitivity"] = weight_sensitivity(pre, debug)[:8]
        say("weight sensitivity done")

        # 2. fidelity
        ref_real = encode(session(raw), real)
        ref_demo = encode(session(raw), demo)
        fid: dict[str, Any] = {}
        for k, path in models.items():
            s = session(path)
            fid[k] = {
                "real": fidelity(ref_real, encode(s, real), hw, hb),
                "demo": fidelity(ref_demo, encode(s, demo), hw, hb),
            }
        if extra:
            s = session(models["depthwise_fp32"], disabled=("WeightBiasQuantization",))
            fid["depthwise_fp32 (WeightBiasQuantization off)"] = {
                "real": fidelity(ref_real, encode(s, real), hw, hb),
                "demo": fidelity(ref_demo, encode(s, demo), hw, hb),
            }
        result["fidelity"] = fid
        result["noise_floor_real"] = noise_floor(ref_real, hw, hb)

        # 4. kernels against the same graph in float: saturation of u8s8 products would show here
        sim = {}
        for k in ("before", "fixed", "fixed_reduce_range") if extra else ("before", "fixed"):
            exact = encode(session(models[k], level="DISABLE_ALL"), real)
            sim[k] = fidelity(exact, encode(session(models[k]), real), hw, hb)["cos_min"]
        result["int8_kernels_vs_float_qdq_cos_min"] = sim
        # which side the fixed model's remaining error comes from (graph computed in float, no fusions)
        result["fixed_one_side"] = {
            f"{keep} only int8": fidelity(
                ref_real,
                encode(session(_one_side_float(models["fixed"], pre, keep), level="DISABLE_ALL"), real),
                hw,
                hb,
            )
            for keep in ("weights", "activations")
        }
        say("fidelity done")

        # 3. speed
        frames = real[:SPEED_FRAMES]
        timed = {"fp32": raw, "int8 before": models["before"], "int8 fixed": models["fixed"]}
        if extra:
            timed["int8 depthwise fp32"] = models["depthwise_fp32"]
            timed["int8 fixed, reduce_range"] = models["fixed_reduce_range"]
        result["speed"] = {}
        for threads in (2, 1):
            fps = speed(timed, frames, threads, rounds)
            result["speed"][f"{threads} threads"] = {
                k: {"fps": v, "x_fp32": round(v / fps["fp32"], 2)} for k, v in fps.items()
            }
        say("speed done")

    fixed = result["fidelity"]["fixed"]["real"]
    x2 = result["speed"]["2 threads"]["int8 fixed"]["x_fp32"]
    result["targets"] = {
        "speed >= 1.5x": x2 >= 1.5,
        "cos mean >= 0.99": fixed["cos_mean"] >= 0.99,
        "cos min >= 0.97": fixed["cos_min"] >= 0.97,
        "top1 agreement >= 0.95": fixed["top1_agreement"] >= 0.95,
    }
    result["adopt"] = all(result["targets"].values())
    _print(result)
    return result


def _cpu() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return f"{model}, {os.cpu_count()} CPUs, {' '.join(isa)}"


def _print(r: dict[str, Any]) -> None:
    p = print
    p(f"\nint8 EfficientNet-Lite0, onnxruntime {r['onnxruntime']}, {r['cpu']}")
    g = r["graph"]
    p(
        f"export: BatchNorm folded {g['batchnorm_folded']}, ReLU6 as Clip x{g['relu6_as_clip']}, "
        f"Pad x{g['export_ops'].get('Pad', 0)}"
        f" (after quant_pre_process: Pad x{g['preprocessed_ops'].get('Pad', 0)})"
    )
    p(
        f"fixed recipe: fp32 nodes {len(r['fixed_recipe']['fp32_nodes'])} (stem, blocks 0-{FP32_PREFIX_BLOCKS - 1}); "
        f"{r['fixed_recipe']['calibration']}"
    )
    p("\n1. layer by layer: SQNR (dB) of each block's output, fp32 graph vs QDQ graph, real frames")
    p(f"| {'layer':22s} | before | fixed |")
    p("|---|---|---|")
    for row in r["layers"]:
        f = "fp32" if row["sqnr_fixed_db"] is None else f"{row['sqnr_fixed_db']:.1f}"
        b = "-" if row["sqnr_before_db"] is None else f"{row['sqnr_before_db']:.1f}"
        p(f"| {row['layer']:22s} | {b:>6s} | {f:>5s} |")
    p("\nweights alone (per-channel int8, activations float), worst layers: feature SQNR, largest channel gain sum|w|")
    for row in r["weight_sensitivity"]:
        p(
            f"  {row['feature_sqnr_db']:5.1f} dB  {row['conv']:40s} {'depthwise' if row['depthwise'] else '':9s} "
            f"gain {row['max_channel_gain']}"
        )
    p("\n2. fidelity to fp32 ONNX")
    p(
        "| model | frames | cos mean | cos min | top-1 agreement | margin>0.25 | margin<=0.25 (n) "
        "| fp32 top-1 in int8 top-5 |"
    )
    p("|---|---|---|---|---|---|---|---|")
    for k, v in r["fidelity"].items():
        for where, f in v.items():
            p(
                f"| {k} | {where} {f['frames']} | {f['cos_mean']} | {f['cos_min']} | {f['top1_agreement']} | "
                f"{f['top1_agreement_margin_gt_0.25']} | {f['top1_agreement_margin_le_0.25']} "
                f"({f['frames_margin_le_0.25']}) | "
                f"{f['fp32_top1_in_int8_top5']} |"
            )
    p(
        "noise floor (fp32 features + isotropic noise, real frames):",
        ", ".join(f"cos {x['cos_mean']} -> top-1 {x['top1_agreement']}" for x in r["noise_floor_real"]),
    )
    p("int8 kernels vs the same QDQ graph in float, cos min:", r["int8_kernels_vs_float_qdq_cos_min"])
    for k, f in r["fixed_one_side"].items():
        p(f"fixed, {k} (the rest float): cos {f['cos_mean']} / {f['cos_min']}, top-1 {f['top1_agreement']}")
    p("\n3. speed, frames/s (x fp32)")
    for th, v in r["speed"].items():
        p(f"  {th}: " + ", ".join(f"{k} {x['fps']} ({x['x_fp32']}x)" for k, x in v.items()))
    p("\ntargets (fixed, real frames):", r["targets"], "-> adopt" if r["adopt"] else "-> not adopted")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--all", action="store_true", help="also the depthwise-in-fp32 variant (WeightBiasQuantization)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    result = run(extra=args.all)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
