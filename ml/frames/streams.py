"""Which stream of a container the frame stage reads: one choice for the probe and the sampler.

Its own module because the probe already imports the sampler (its isolated pool), so the sampler
cannot import the probe back.
"""

from __future__ import annotations

from typing import Any

from ml.frames.errors import NoVideoStream


def video_stream(container: Any, name: str) -> Any:
    """The container's first video stream that holds moving pictures; NoVideoStream when none does.

    An audio file's cover art is a one-picture video stream flagged ``attached_pic``. The probe and the
    sampler must agree on it: a probe that took the picture registered a song as a video that the
    sampler then failed on, one stage later and under another error.
    """
    import av

    streams = list(container.streams.video)
    moving = [s for s in streams if not (s.disposition & av.stream.Disposition.attached_pic)]
    if moving:
        return moving[0]
    kinds = ", ".join(sorted({s.type for s in container.streams}) or ["none"])
    if streams:
        raise NoVideoStream(f"{name} has only a cover picture, no video stream (streams: {kinds})")
    raise NoVideoStream(f"{name} has no video stream (streams: {kinds})")
