"""Injected faults for the worker pools: module level, so spawned workers import them by name.

Each stands for something that happens in production inside FFmpeg or the kernel, where no Python
deadline check can reach: a decoder that never returns, a process killed by a crash or for memory.
"""

from __future__ import annotations

import os
import time


def _fault(path, hang: str, crash: str) -> None:
    """Hang for an hour or kill this worker when the file's name says so."""
    name = os.path.basename(str(path))
    if name.startswith(hang):
        time.sleep(3600)
    if name.startswith(crash):
        os.kill(os.getpid(), 9)


def probe_or_fault(path, options):
    from ml.frames.probe import probe_job

    _fault(path, "hang", "crash")
    return probe_job(path, options)


def sample_or_fault(path, options):
    from ml.frames.sampler import sample_frames

    _fault(path, "slowhang", "slowcrash")
    return sample_frames(path, options)


def quick(path, options):
    return f"done {os.path.basename(str(path))}"


def hang_forever(path, options):
    time.sleep(3600)


def slow_sample(path, options):
    """Real sampling, one second slower: a batch long enough to lose a node in the middle of it."""
    from ml.frames.sampler import sample_frames

    time.sleep(1.0)
    return sample_frames(path, options)
