"""CPU seconds of each asset and check step, recorded as the metadata ``cpu_s``, and its waits for the catalog.

Wall time alone hides where a 2-core machine's capacity goes: a step can wait on its worker
processes or hold both cores. ``cpu_s`` is the CPU this process and its finished child processes
(decode workers) used while the step's function ran; what a run costs beyond the sum of its steps'
``cpu_s`` (process starts, imports, Dagster's own bookkeeping) is the orchestration overhead that
``bench/end_to_end.py`` reports.
"""

from __future__ import annotations

import functools
import inspect
import resource
from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg

from ml.catalog.store import LockWaits, lock_waits

CPU_KEY = "cpu_s"
# Seconds the step waited for the catalog lock in all, and its longest wait before a write: what other
# processes (another run, `vidcat sql`, the sensor) cost it.
WAIT_KEY = "catalog_wait_s"
WRITE_WAIT_MAX_KEY = "catalog_write_wait_max_s"


def process_cpu_s() -> float:
    """User + system CPU of this process and of its children that have been waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _with_cpu(item: Any, cpu_s: float, waits: LockWaits | None = None) -> Any:
    if isinstance(item, dg.MaterializeResult | dg.AssetCheckResult):
        metadata = dict(item.metadata or {})
        metadata.setdefault(CPU_KEY, dg.MetadataValue.float(round(cpu_s, 3)))
        if waits is not None and (waits.writes or waits.reads):
            metadata.setdefault(WAIT_KEY, dg.MetadataValue.float(round(waits.total_s, 3)))
            metadata.setdefault(WRITE_WAIT_MAX_KEY, dg.MetadataValue.float(round(waits.max_write_s, 3)))
        return item._replace(metadata=metadata)
    return item


def metered(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an asset or check function so that its results carry ``cpu_s``; the signature Dagster
    reads (context, resources) is kept through ``functools.wraps``."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
            # each result carries the CPU since the previous one, so that summing them never counts twice
            last = process_cpu_s()
            with lock_waits() as waits:
                for item in fn(*args, **kwargs):
                    now = process_cpu_s()
                    yield _with_cpu(item, now - last, waits)
                    last = now

        return generator

    @functools.wraps(fn)
    def function(*args: Any, **kwargs: Any) -> Any:
        started = process_cpu_s()
        with lock_waits() as waits:
            result = fn(*args, **kwargs)
        return _with_cpu(result, process_cpu_s() - started, waits)

    return function
