"""Suggested mid-roll ad breaks: scene boundaries where the context changes.

An ad break inside a scene cuts a moment; one between two scenes of the same categories interrupts
one context for nothing an advertiser can buy. So a break is suggested at a boundary whose two
scenes are given different sets of categories (a scene given none differs from one given some), and
never in the video's first or last ``margin_s`` seconds (10 s: a pre-roll or post-roll slot, not a
mid-roll).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from ml.segments.scenes import Scene

EDGE_MARGIN_S = 10.0


def ad_breaks(
    scenes: Sequence[Scene], categories: Sequence[Collection[str]], margin_s: float = EDGE_MARGIN_S
) -> list[float]:
    """Break times in seconds, ascending: the boundaries where the scenes' category sets differ."""
    if len(scenes) != len(categories):
        raise ValueError(f"{len(scenes)} scenes but {len(categories)} category sets")
    if not scenes:
        return []
    duration = scenes[-1].end_s
    out = []
    for i in range(1, len(scenes)):
        t = scenes[i].start_s
        if t < margin_s or duration - t < margin_s:
            continue
        if set(categories[i - 1]) != set(categories[i]):
            out.append(t)
    return out
