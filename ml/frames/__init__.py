"""Stage 2, frames: probe a file, sample it at 1 fps in worker processes, encode frames, store 8-bit shards.

May import ``ml.catalog`` and the shared top-level modules.
"""
