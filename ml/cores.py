"""The CPU cores this process may run on (its affinity mask, as a container or `taskset` limits it)."""

from __future__ import annotations

import os


def available_cores() -> int:
    """``os.cpu_count()`` counts the host's cores; a container limited to two must size its pools to two."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
