"""Many files through one function in worker processes, each file under a hard deadline.

A deadline checked between packets bounds a slow decode, but a hang inside C code (a stuck read, a
decoder loop in FFmpeg) or a crash that kills the process can only be handled from outside: the pool
runs the function (the sampler's ``sample_frames``, the probe's ``probe_job``) in worker processes,
kills one that outlives its deadline and replaces it, and turns each outcome into a value, so one bad
file never stops or hangs a batch. It knows nothing of frames: results cross the pipe as they are,
errors by their class name (``ml/frames/errors.py``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ml.cores import available_cores
from ml.frames.errors import DecoderCrashed, DecodeTimeout, VideoError, error_from_name

K = TypeVar("K")


class PoolOptions(Protocol):
    """What the pool reads of the options it hands to each job (``SampleOptions`` is one)."""

    timeout_s: float
    # Decoder threads per job; 0 means "share the cores": the pool fills in cores // workers.
    threads: int


@dataclass
class _Worker:
    process: Any
    conn: Any
    job: tuple[Any, str] | None = None
    deadline: float = 0.0


# A worker tells the pool when it starts a job; a fresh worker has this long to get there.
WORKER_START_S = 120.0
_STARTED = ("started",)


class WorkerPool:
    """Runs ``sample_fn(path, options)`` for many videos in worker processes, each under a hard time limit.

    One worker per core keeps both decoding and the parent (which can encode meanwhile) busy; each
    worker decodes with ``cores // workers`` threads, which beats fewer processes with more threads
    because 1 fps sampling decodes short spans. A worker that outlives a video's deadline
    (``timeout_s`` plus a grace for the cooperative check inside the worker to fire first) is killed and
    replaced, and the video ends as ``DecodeTimeout``; a worker that dies ends as ``DecoderCrashed``.
    Workers are spawned, not forked: the parent may hold onnxruntime or torch thread pools, which do
    not survive a fork. Spawning re-imports the parent's ``__main__``, so a script that uses the pool
    needs the usual ``if __name__ == "__main__":`` guard (the CLI, Dagster and pytest have it).
    Start-up costs about 0.45 s per pool (interpreter, numpy and PyAV imports); each result then
    crosses a pipe at about 0.5 ms per 224 px frame, a few percent of its decoding time.
    """

    def __init__(
        self,
        options: PoolOptions,
        sample_fn: Callable[[str, Any], Any],
        workers: int | None = None,
        grace_s: float = 5.0,
        start_method: str = "spawn",
    ):
        import multiprocessing

        cores = available_cores()
        self.workers = max(1, workers or cores)
        opts = options
        if opts.threads == 0:
            opts = replace(opts, threads=max(1, cores // self.workers))
        self.options = opts
        self.grace_s = grace_s
        self.sample_fn = sample_fn  # module-level, so spawned workers can import it
        self._ctx = multiprocessing.get_context(start_method)
        self._pool: list[_Worker] = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._pool]

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=_worker_main, args=(child, self.options, self.sample_fn), daemon=True, name="vidcat-sampler"
        )
        proc.start()
        child.close()
        return _Worker(proc, parent)

    def _retire(self, w: _Worker) -> None:
        if w.process.is_alive():
            w.process.kill()
        w.process.join(timeout=5)
        w.conn.close()
        self._pool.remove(w)

    def imap(self, items: Iterable[tuple[K, str | os.PathLike[str]]]) -> Iterator[tuple[K, Any]]:
        """``(key, path)`` in, ``(key, frames or error)`` out, in completion order."""
        while len(self._pool) < self.workers:
            self._pool.append(self._spawn())
        try:
            yield from self._run(iter(items))
        finally:  # the caller stopped early: workers still busy hold stale jobs, replace them
            for w in [w for w in self._pool if w.job is not None]:
                self._retire(w)

    def _run(self, pending: Iterator[tuple[K, str | os.PathLike[str]]]) -> Iterator[tuple[K, Any]]:
        from multiprocessing.connection import wait

        exhausted = False

        def dispatch(w: _Worker) -> None:
            nonlocal exhausted
            nxt = None if exhausted else next(pending, None)
            if nxt is None:
                exhausted = True
                return
            w.job = (nxt[0], str(nxt[1]))
            # until the worker says it has started (a fresh one first imports PyAV, slowly on a loaded
            # machine), the clock is its start-up limit: the video's own limit starts with its decoding
            w.deadline = time.monotonic() + WORKER_START_S
            w.conn.send(w.job[1])

        for w in self._pool:
            if w.job is None:
                dispatch(w)
        while True:
            busy = [w for w in self._pool if w.job is not None]
            if not busy:
                return
            timeout = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            ready = wait([w.conn for w in busy], timeout=timeout)
            for w in busy:
                assert w.job is not None
                key, job_path = w.job
                # ``ready`` is from before this loop yielded: a result that arrived while the caller was
                # busy with an earlier one must be read, not mistaken for a timeout.
                if w.conn in ready or w.conn.poll(0):
                    try:
                        msg = w.conn.recv()
                    except (EOFError, OSError):
                        w.process.join(timeout=1)
                        code = w.process.exitcode
                        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                        self._retire(w)
                        fresh = self._spawn()
                        self._pool.append(fresh)
                        dispatch(fresh)
                        yield key, DecoderCrashed(f"{Path(job_path).name}: the decoding worker died ({how})")
                        continue
                    if msg == _STARTED:
                        w.deadline = time.monotonic() + self.options.timeout_s + self.grace_s
                        continue
                    w.job = None
                    dispatch(w)  # before yielding: the worker decodes the next file while the caller encodes
                    yield key, _from_message(msg)
                elif time.monotonic() >= w.deadline:
                    self._retire(w)
                    fresh = self._spawn()
                    self._pool.append(fresh)
                    dispatch(fresh)
                    yield (
                        key,
                        DecodeTimeout(
                            f"{Path(job_path).name}: no result within {self.options.timeout_s:.0f}s "
                            f"(+{self.grace_s:.0f}s grace); the decoder was killed"
                        ),
                    )

    def close(self) -> None:
        for w in list(self._pool):
            with contextlib.suppress(OSError):
                w.conn.send(None)
        for w in list(self._pool):
            w.process.join(timeout=2)
            self._retire(w)


def _from_message(msg: tuple[Any, ...]) -> Any:
    if msg[0] == "ok":
        return msg[1]
    _, name, text = msg
    return error_from_name(name, text)


def _exit_with_parent(interval_s: float = 1.0) -> None:
    """Kill this worker when its parent dies, even mid-decode (``kill -9`` of a run leaves no orphan).

    A daemon thread watches the parent's pid: FFmpeg releases the GIL while it decodes, so the thread
    runs even when a decoder hangs. (``prctl(PR_SET_PDEATHSIG)`` would follow the parent *thread*,
    and a pool may be created on a short-lived one.)
    """
    import threading

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="vidcat-parent-watch", daemon=True).start()


def _worker_main(conn: Any, options: PoolOptions, sample_fn: Callable[[str, Any], Any]) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    _exit_with_parent()
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            conn.send(_STARTED)
        except (OSError, BrokenPipeError):
            return
        try:
            msg: tuple[Any, ...] = ("ok", sample_fn(job, options))
        except VideoError as exc:
            msg = ("err", type(exc).__name__, str(exc))
        except Exception as exc:  # the parent maps known classes back; anything else is a decode failure
            msg = ("err", type(exc).__name__, f"{Path(job).name}: {type(exc).__name__}: {exc}")
        try:
            conn.send(msg)
        except (OSError, BrokenPipeError):
            return
