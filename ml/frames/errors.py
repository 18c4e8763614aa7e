"""Why a video file gives no facts or no frames: one error tree for the probe, the sampler and their pool.

The probe and the sampler meet the same faults in the same files (gone, empty, no video stream, a
decoder past its deadline), and the pool that runs either of them in worker processes sends errors
across a pipe by class name. One tree keeps those names unique: the class name is the failure's
`error_class` in the catalog (docs/architecture.md, "Bad input", lists what to do about each), and
the message says why. Errors are recorded as failures rows, never raised out of a batch.
"""

from __future__ import annotations


class VideoError(Exception):
    """A video that cannot go through a stage (probe or frames)."""


# The sampler's callers know the base by this name: the same class.
FrameSamplingError = VideoError


class MissingFile(VideoError):
    """The path does not exist (or is not a regular file)."""


class EmptyFile(VideoError):
    """The file has zero bytes: the upload did not complete."""


class NoVideoStream(VideoError):
    """The container holds no video (audio only, or only a cover picture)."""


class DecodeTimeout(VideoError):
    """Probing or decoding took longer than the per-video time limit (or its worker was killed for it)."""


class CorruptFile(VideoError):
    """No container FFmpeg can read, no readable packets, or no first frame (probe)."""


class UnsupportedCodec(VideoError):
    """FFmpeg has no decoder for the video stream (probe)."""


class TooLarge(VideoError):
    """The stream's declared picture exceeds ``max_pixels`` (probe)."""


class FrameTooLarge(VideoError):
    """A picture exceeds ``max_pixels`` while sampling: decoding it could exhaust memory."""


class DecodeError(VideoError):
    """The container or the stream cannot be read, or no frame could be decoded (frames)."""


class DecoderCrashed(DecodeError):
    """The worker process decoding the file died (a crash inside FFmpeg, or killed for memory)."""


# Class by name: how an error that crossed a pipe (worker pool) or a Ray object becomes an exception again.
ERROR_CLASSES: dict[str, type[VideoError]] = {
    c.__name__: c
    for c in (
        VideoError,
        MissingFile,
        EmptyFile,
        NoVideoStream,
        DecodeTimeout,
        CorruptFile,
        UnsupportedCodec,
        TooLarge,
        FrameTooLarge,
        DecodeError,
        DecoderCrashed,
    )
}


def error_from_name(name: str, message: str) -> VideoError:
    """The exception a worker reported by class name; an unknown name is a decode failure of the file."""
    return ERROR_CLASSES.get(name, DecodeError)(message)
