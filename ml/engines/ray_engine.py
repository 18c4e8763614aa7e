"""The per-batch stages on a Ray cluster: decode tasks, encoder and scorer actors, shard written by the caller.

Frames of one batch:

* one Ray task per video runs ``ml.frames.sampler.sample_frames`` (the same function the local
  ``SamplerPool`` workers run) and returns two objects: a small summary (timestamps, or the error
  class and message) and the frames array, which stays in the object store of the node that decoded
  it. The caller only ever fetches summaries and embeddings, never frames.
* encoder actors load the ONNX image encoder once and encode the frames they are handed by reference
  (zero-copy on the same node; pulled once over the network otherwise);
* the caller streams the embeddings into ``write_shard`` as they arrive, so the shard's layout,
  quantization and atomic replacement are exactly the local ones, and it holds at most one row group
  of embeddings.

In flight at any time: at most ``decode_slots`` decodes plus ``encode_queue`` videos per encoder
actor, which bounds the object store (worst case 45 MB per video) and keeps each decode's deadline
meaningful. A decode gets ``decode_timeout_s`` (checked inside ``sample_frames``, as locally) plus
``grace_s``; a task still running then is force-cancelled (its worker process is killed, which also
ends a hang inside FFmpeg) and the video fails as ``DecodeTimeout``. The deadline runs from
submission, so ``decode_slots`` must not exceed the decode CPUs this job can actually get: a task
queued behind other jobs' work spends its grace waiting. A worker that dies fails the video as
``DecoderCrashed`` after one retry (a lost node is retried; a file that crashes FFmpeg crashes twice).

Visual scores: a scorer actor per model directory holds the ``VisualPredictor`` and scores whole
shards (one call per shard, so videos are batched exactly as locally and the scores are identical);
it reads the shard by path, so the data root must be on storage every Ray node mounts at the same
path (the decode tasks need the media roots the same way). Only the shard's videos' metadata
vectors are shipped.

``ray`` is imported on first use: the default install has no Ray, and nothing here runs without an
address configured.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ml.catalog.failures import Failure

if TYPE_CHECKING:
    from ml.frames.sampler import SampledFrames, SampleOptions
    from ml.frames.stage import FrameStageResult
    from ml.visual.predictor import VisualScore

STAGE = "frames"


# ---------------------------------------------------------------------------------------------------
# What runs on the workers (module level, so Ray ships them by reference to this module)


def decode_video(
    path: str, options: SampleOptions, sample_fn: Callable[[str, SampleOptions], SampledFrames] | None = None
) -> tuple[dict[str, Any], np.ndarray | None]:
    """``(summary, frames)``: the summary is small and goes to the caller, the frames stay in the object store.

    Errors are values, like the local pool's worker messages: the error class name is the failure's.
    """
    from ml.frames.errors import VideoError
    from ml.frames.sampler import sample_frames

    try:
        r = (sample_fn or sample_frames)(path, options)
    except VideoError as exc:
        return {"error": (type(exc).__name__, str(exc))}, None
    except Exception as exc:  # anything else from FFmpeg or numpy is a decode failure of this file
        return {"error": ("DecodeError", f"{Path(path).name}: {type(exc).__name__}: {exc}")}, None
    summary = {
        "timestamps": r.timestamps,
        "n": len(r),
        "grid_error_s": r.grid_error_s,
        "node": _node_id(),
        "decode_cpu_s": float(r.info.get("decode_cpu_s") or 0.0),
    }
    return summary, (r.frames if len(r) else None)


def _node_id() -> str | None:
    """The Ray node this task ran on (None outside Ray): where a batch's decoding went is worth seeing."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # a best-effort label, never a reason to fail a decode
        return None


class EncoderWorker:
    """One loaded image encoder; ``encode`` receives frames already resolved from the object store."""

    def __init__(self, settings: Any, threads: int) -> None:
        from ml.frames.image_encoder import encoder_from_settings

        # beside_decoders: its onnxruntime threads sleep when idle, as in the local pipeline; same thread
        # count as locally (one) by default, so the floating-point results are the same bit for bit.
        self.encoder = encoder_from_settings(settings, threads=threads, beside_decoders=True)

    def ready(self) -> str:
        return self.encoder.name

    def encode(self, frames: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
        from ml.frames.stage import encode_distinct

        return encode_distinct(self.encoder, frames, timestamps)


class ScorerWorker:
    """One loaded visual model; scores whole shards so batching, hence every score, matches the local run."""

    def __init__(self, model_dir: str, threads: int) -> None:
        from ml.visual.predictor import VisualPredictor

        self.predictor = VisualPredictor(Path(model_dir), threads=threads)

    def ready(self) -> str:
        return self.predictor.version

    def score(self, shard: str, meta: Mapping[str, np.ndarray] | None) -> list[VisualScore]:
        return list(self.predictor.predict_shards([Path(shard)], meta))


@functools.cache
def _remote() -> tuple[Any, Any, Any]:
    import ray

    return ray.remote(decode_video), ray.remote(EncoderWorker), ray.remote(ScorerWorker)


def _failure_for_lost_worker(video_id: str, path: str, exc: BaseException) -> Failure:
    """A decode task that ended without a result: the worker died (crash, memory) or its node went away."""
    import ray.exceptions as rex

    if isinstance(exc, rex.OutOfMemoryError):
        how = "killed for memory"
    elif isinstance(exc, rex.WorkerCrashedError):
        how = "the worker process died"
    elif isinstance(exc, rex.RayTaskError):  # an exception decode_video did not turn into a value
        return Failure(video_id, STAGE, "DecodeError", f"{Path(path).name}: {exc}"[:2000])
    else:
        how = f"{type(exc).__name__}: {exc}"
    return Failure(video_id, STAGE, "DecoderCrashed", f"{Path(path).name}: the decoding worker died ({how})"[:2000])


@dataclass
class _Decoding:
    video_id: str
    path: str
    frames: Any  # ObjectRef of the frames array
    deadline: float


@dataclass
class _Encoding:
    video_id: str
    summary: dict[str, Any]
    actor: int
    deadline: float = float("inf")


# ---------------------------------------------------------------------------------------------------
# The engine


class RayEngine:
    """The ``ml.engines.local.Engine`` on Ray. Options (keywords, or ``[extra.ray]`` in vidcat.toml):

    ``decode_cpus``: CPUs per decode task (FFmpeg threads follow it). ``decode_slots``: decodes in flight
    (default: the cluster's CPUs left after this engine's actors, divided by ``decode_cpus``; set it on an
    autoscaling or shared cluster). ``encoder_actors``, ``encoder_cpus``, ``encoder_gpus``: the encoder pool and what
    each actor reserves. ``encode_queue``: decoded videos waiting per encoder actor. ``scorer_cpus``,
    ``scorer_gpus``: per scorer actor. ``grace_s``: added to ``decode_timeout_s`` before a decode is
    killed. ``actor_start_timeout_s``: how long to wait for an actor to be placed and load its model.
    ``runtime_env``, ``namespace``, ``num_cpus`` (a ``local`` cluster only), ``log_to_driver``: passed to
    ``ray.init``. ``sample_fn``: replaces ``sample_frames`` in the decode tasks (tests).
    """

    name = "ray"

    def __init__(
        self,
        address: str,
        *,
        decode_cpus: float = 1.0,
        decode_slots: int | None = None,
        encoder_actors: int = 1,
        encoder_cpus: float = 1.0,
        encoder_gpus: float = 0.0,
        encode_queue: int = 2,
        scorer_cpus: float = 1.0,
        scorer_gpus: float = 0.0,
        grace_s: float = 10.0,
        actor_start_timeout_s: float = 600.0,
        encode_timeout_s: float = 300.0,
        score_timeout_s: float = 1800.0,
        decode_resources: dict[str, float] | None = None,
        encoder_resources: dict[str, float] | None = None,
        scorer_resources: dict[str, float] | None = None,
        spread_decodes: bool = False,
        runtime_env: dict[str, Any] | None = None,
        namespace: str = "vidcat",
        num_cpus: int | None = None,
        log_to_driver: bool = False,
        sample_fn: Callable[[str, SampleOptions], SampledFrames] | None = None,
    ) -> None:
        import ray

        self.address = address
        self.decode_cpus = decode_cpus
        self.encoder_actors = max(1, int(encoder_actors))
        self.encoder_cpus, self.encoder_gpus = encoder_cpus, encoder_gpus
        self.encode_queue = max(1, int(encode_queue))
        self.scorer_cpus, self.scorer_gpus = scorer_cpus, scorer_gpus
        self.grace_s = grace_s
        self.actor_start_timeout_s = actor_start_timeout_s
        # A hung encoder or scorer actor must cost its videos a failure or the run an error, never a
        # wait without end: every wait on an actor has a deadline.
        self.encode_timeout_s = encode_timeout_s
        self.score_timeout_s = score_timeout_s
        # Custom resources pin work to labelled nodes (`ray start --resources '{"gpu_box": 1}'`): encoders
        # where the accelerator is, decodes where the media is; SPREAD deals decodes across the nodes.
        self.decode_resources = dict(decode_resources or {})
        self.encoder_resources = dict(encoder_resources or {})
        self.scorer_resources = dict(scorer_resources or {})
        self.spread_decodes = spread_decodes
        self.sample_fn = sample_fn
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            kwargs: dict[str, Any] = {"namespace": namespace, "log_to_driver": log_to_driver}
            if runtime_env:
                kwargs["runtime_env"] = runtime_env
            if address == "local":
                kwargs.update(include_dashboard=False, num_cpus=num_cpus)
            ray.init(address=address, **kwargs)
        self._decode_slots = decode_slots
        self._encoders: list[Any] = []
        self._encoders_key: tuple[Any, ...] | None = None
        self._scorers: dict[str, Any] = {}

    def __enter__(self) -> RayEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- frames ------------------------------------------------------------------------------------

    @property
    def decode_slots(self) -> int:
        """Configured, or the cluster's CPUs less what this engine's actors hold, in decode tasks."""
        if self._decode_slots is not None:
            return self._decode_slots
        import ray

        cpus = float(ray.cluster_resources().get("CPU", 0.0))
        held = len(self._encoders) * self.encoder_cpus + len(self._scorers) * self.scorer_cpus
        slots = int((cpus - held) / max(self.decode_cpus, 1e-3))
        if slots < 1:
            raise RuntimeError(
                f"the Ray cluster at {self.address} has {cpus:g} CPUs and this engine's actors hold {held:g}: "
                f"none is left for a decode task of {self.decode_cpus:g} CPU; add CPUs or lower encoder_cpus / "
                "scorer_cpus in [extra.ray]"
            )
        return slots

    def _start_encoders(self, settings: Any) -> list[Any]:
        key = (settings.image_encoder, str(settings.models_dir), settings.frame_size)
        if key == self._encoders_key:
            return self._encoders
        self._kill(self._encoders)
        _, encoder_cls, _ = _remote()
        options = dict(
            num_cpus=self.encoder_cpus,
            num_gpus=self.encoder_gpus,
            max_restarts=2,
            max_task_retries=2,
            resources=self.encoder_resources,
        )
        threads = max(1, int(self.encoder_cpus))
        # The first actor exports the ONNX model into the shared model store if needed; the others then load it.
        first = encoder_cls.options(**options).remote(settings, threads)
        self._wait_ready([first], "encoder")
        rest = [encoder_cls.options(**options).remote(settings, threads) for _ in range(self.encoder_actors - 1)]
        self._wait_ready(rest, "encoder")
        self._encoders, self._encoders_key = [first, *rest], key
        return self._encoders

    def _wait_ready(self, actors: list[Any], what: str) -> None:
        import ray

        if not actors:
            return
        try:
            ray.get([a.ready.remote() for a in actors], timeout=self.actor_start_timeout_s)
        except ray.exceptions.GetTimeoutError:
            self._kill(actors)
            raise RuntimeError(
                f"Ray could not start {len(actors)} {what} actor(s) within {self.actor_start_timeout_s:.0f}s at "
                f"{self.address}: the cluster lacks the resources they reserve ({what}_cpus / {what}_gpus "
                "in [extra.ray]) or workers cannot load the model (check the cluster's logs)"
            ) from None

    def embed_batch(self, batch_id: str, videos: Sequence[tuple[str, str]], settings: Any) -> FrameStageResult:
        from dataclasses import replace

        from ml.frames.embedding_store import shard_path, write_shard
        from ml.frames.sampler import SampleOptions
        from ml.frames.stage import FrameStageResult, shard_metadata

        started = time.monotonic()
        encoders = self._start_encoders(settings)
        # Same options as a local SamplerPool worker on its core: one FFmpeg thread per decode CPU.
        options = replace(SampleOptions.from_settings(settings), threads=max(1, int(self.decode_cpus)))
        path = shard_path(settings.embeddings_dir, settings.image_encoder, batch_id)
        result = FrameStageResult(shard=path, videos=len(videos))
        summary = write_shard(
            path,
            self._embeddings(list(videos), options, encoders, result),
            encoder=settings.image_encoder,
            metadata=shard_metadata(batch_id, options),
        )
        result.shard_bytes = int(summary["bytes"])
        result.decode_encode_s = time.monotonic() - started
        return result

    def _embeddings(
        self, videos: list[tuple[str, str]], options: SampleOptions, encoders: list[Any], result: FrameStageResult
    ) -> Iterator[Any]:
        """Embeddings in completion order, as ``SamplerPool.imap`` gives them locally; failures into ``result``."""
        import ray

        from ml.frames.embedding_store import VideoEmbeddings
        from ml.frames.stage import non_finite_failure

        decode_fn, _, _ = _remote()
        decode = decode_fn.options(
            num_cpus=self.decode_cpus,
            num_returns=2,
            max_retries=1,  # a decode lost with its node is tried once more elsewhere
            resources=self.decode_resources,
            scheduling_strategy="SPREAD" if self.spread_decodes else "DEFAULT",
        )
        pending = iter(videos)
        decoding: dict[Any, _Decoding] = {}
        encoding: dict[Any, _Encoding] = {}
        load = [0] * len(encoders)
        slots = self.decode_slots
        limit_in_flight = slots + self.encode_queue * len(encoders)
        exhausted = False
        try:
            while True:
                while not exhausted and len(decoding) < slots and (len(decoding) + len(encoding) < limit_in_flight):
                    item = next(pending, None)
                    if item is None:
                        exhausted = True
                        break
                    video_id, video_path = item[0], str(item[1])
                    summary_ref, frames_ref = decode.remote(video_path, options, self.sample_fn)
                    deadline = time.monotonic() + options.timeout_s + self.grace_s
                    decoding[summary_ref] = _Decoding(video_id, video_path, frames_ref, deadline)
                if not decoding and not encoding:
                    return
                waiting = [*decoding, *encoding]
                deadlines = [d.deadline for d in decoding.values()] + [e.deadline for e in encoding.values()]
                timeout = max(0.0, min(deadlines) - time.monotonic())
                ready, rest = ray.wait(waiting, num_returns=1, timeout=timeout)
                if ready and rest:
                    ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
                for ref in ready:
                    if ref in decoding:
                        d = decoding.pop(ref)
                        failure, summary = self._decoded(ref, d, result)
                        if failure is not None:
                            result.failures.append(failure)
                            continue
                        i = min(range(len(encoders)), key=load.__getitem__)
                        load[i] += 1
                        encoding[encoders[i].encode.remote(d.frames, summary["timestamps"])] = _Encoding(
                            d.video_id, summary, i, time.monotonic() + self.encode_timeout_s
                        )
                    else:
                        e = encoding.pop(ref)
                        load[e.actor] -= 1
                        try:
                            embeddings = ray.get(ref, timeout=self.encode_timeout_s)
                        except (ray.exceptions.RayError, TimeoutError) as exc:
                            result.failures.append(
                                Failure(e.video_id, STAGE, "EncoderLost", f"the encoder actor failed: {exc}"[:2000])
                            )
                            continue
                        failure = non_finite_failure(e.video_id, embeddings)
                        if failure is not None:
                            result.failures.append(failure)
                            continue
                        result.embedded += 1
                        node = e.summary.get("node")
                        if node:
                            result.nodes[node] = result.nodes.get(node, 0) + 1
                        result.frames += e.summary["n"]
                        result.decode_cpu_s += e.summary.get("decode_cpu_s", 0.0)
                        result.max_grid_error_s = max(result.max_grid_error_s, e.summary["grid_error_s"])
                        yield VideoEmbeddings(e.video_id, e.summary["timestamps"], embeddings)
                now = time.monotonic()
                for ref, e in list(encoding.items()):
                    if now >= e.deadline:
                        del encoding[ref]
                        load[e.actor] -= 1
                        ray.cancel(ref)
                        result.failures.append(
                            Failure(
                                e.video_id,
                                STAGE,
                                "EncodeTimeout",
                                f"no embeddings within {self.encode_timeout_s:.0f}s; the encoder actor is stuck",
                            )
                        )
                for ref, d in list(decoding.items()):
                    if now >= d.deadline:
                        ray.cancel(ref, force=True)
                        del decoding[ref]
                        result.failures.append(
                            Failure(
                                d.video_id,
                                STAGE,
                                "DecodeTimeout",
                                f"{Path(d.path).name}: no result within {options.timeout_s:.0f}s "
                                f"(+{self.grace_s:.0f}s grace); the decoder was killed",
                            )
                        )
        finally:  # the shard writer stopped early (an error): stop what this batch still has running
            for ref in decoding:
                ray.cancel(ref, force=True)

    @staticmethod
    def _decoded(ref: Any, d: _Decoding, result: FrameStageResult) -> tuple[Failure | None, dict[str, Any]]:
        import ray

        from ml.frames.errors import error_from_name

        try:
            summary = ray.get(ref)
        except ray.exceptions.RayError as exc:
            return _failure_for_lost_worker(d.video_id, d.path, exc), {}
        if "error" in summary:
            name, message = summary["error"]
            return Failure.from_exception(d.video_id, STAGE, error_from_name(name, message)), {}
        if summary["n"] == 0:
            return Failure(d.video_id, STAGE, "NoFrames", "the video decoded to no frames"), {}
        return None, summary

    # -- visual scores ---------------------------------------------------------------------------

    def _scorer(self, model_dir: Path) -> Any:
        key = str(Path(model_dir).resolve())
        if key not in self._scorers:
            if len(self._scorers) >= 2:  # an old model version nobody scores with any more
                self._kill([self._scorers.pop(next(iter(self._scorers)))])
            _, _, scorer_cls = _remote()
            actor = scorer_cls.options(
                num_cpus=self.scorer_cpus,
                num_gpus=self.scorer_gpus,
                max_restarts=2,
                max_task_retries=2,
                resources=self.scorer_resources,
            ).remote(key, max(1, int(self.scorer_cpus)))
            self._wait_ready([actor], "scorer")
            self._scorers[key] = actor
        return self._scorers[key]

    def score_visual(
        self,
        batch_id: str,
        model_dir: Path,
        shard_paths: Sequence[Path],
        meta: Mapping[str, np.ndarray] | None,
    ) -> list[VisualScore]:
        import ray

        scorer = self._scorer(model_dir)
        refs = [scorer.score.remote(str(p), _meta_of_shard(Path(p), meta)) for p in shard_paths]
        try:
            return [s for ref in refs for s in ray.get(ref, timeout=self.score_timeout_s)]
        except ray.exceptions.GetTimeoutError as exc:
            for ref in refs:
                ray.cancel(ref)
            raise TimeoutError(
                f"the visual scorer for {batch_id} gave no result within {self.score_timeout_s:.0f}s; the Ray "
                "cluster may be starved or the actor stuck: check the Ray dashboard and re-run the batch"
            ) from exc

    # -- lifecycle -------------------------------------------------------------------------------

    @staticmethod
    def _kill(actors: Sequence[Any]) -> None:
        import ray

        for a in actors:
            ray.kill(a, no_restart=True)

    def close(self) -> None:
        import ray

        if not ray.is_initialized():
            return
        self._kill([*self._encoders, *self._scorers.values()])
        self._encoders, self._encoders_key, self._scorers = [], None, {}
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False


def _meta_of_shard(shard: Path, meta: Mapping[str, np.ndarray] | None) -> dict[str, np.ndarray] | None:
    """The metadata vectors of the shard's videos only: the catalog-wide mapping can hold millions."""
    if meta is None:
        return None
    import pyarrow.parquet as pq

    ids = pq.read_table(shard, columns=["video_id"]).column("video_id").to_pylist()
    return {v: meta[v] for v in ids if v in meta}
