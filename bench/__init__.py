"""Benchmarks of vidcat's expensive stages: ``python -m bench`` runs every module here that has ``run()``.

Each module's ``run() -> dict`` measures one comparison against a baseline taken in the same run, so
ratios stay meaningful on a busy or slow machine, and returns ``{"skipped": reason}`` when an input
it needs (real clips, ffmpeg) is absent.
"""
