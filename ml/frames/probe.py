"""Container facts of one video file, read with PyAV (FFmpeg's demuxers and decoders).

The probe demuxes every packet of the video stream without decoding (cheap: no pixels) because a
container's header lies often enough: live-muxed WebM has no duration, VFR files report a nominal
rate, GIFs have neither. In the same pass it decodes the first frame, which is what proves the codec
is really supported and the bitstream starts clean (one open and one demux: a second pass for the
frame cost a quarter of the probe, 21 against 15.5 ms CPU for a one-minute 720p upload). Anything
that stops a video here raises a `VideoError` subclass (``ml/frames/errors.py``, shared with the
sampler) whose name becomes the `failures.error_class` and whose message says what to do.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from ml.frames.errors import (
    CorruptFile,
    DecodeTimeout,
    EmptyFile,
    MissingFile,
    TooLarge,
    UnsupportedCodec,
    VideoError,
)
from ml.frames.streams import video_stream

PROBE_TIMEOUT_S = 30.0
FIRST_FRAME_PACKETS = 600  # packets decoded, at most, before a stream that yields no frame is corrupt


@dataclass(frozen=True)
class ProbeResult:
    container: str
    video_codec: str
    pix_fmt: str | None
    width: int
    height: int
    rotation: int
    fps: float | None
    vfr: bool
    duration_s: float | None
    duration_source: str
    n_frames: int
    bit_rate: int | None
    size_bytes: int
    has_audio: bool
    audio_codec: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def probe(
    path: str | os.PathLike[str], timeout_s: float = PROBE_TIMEOUT_S, max_pixels: int = 8192 * 8192
) -> ProbeResult:
    import av

    path = Path(path)
    if not path.exists():
        raise MissingFile(f"{path} does not exist; re-upload it or remove the video from the registry")
    size = path.stat().st_size
    if size == 0:
        raise EmptyFile(f"{path} is 0 bytes; the upload did not complete")
    deadline = time.monotonic() + timeout_s
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.InvalidDataError as exc:
        raise CorruptFile(f"FFmpeg cannot read a container in {path.name}: {exc}") from exc
    except av.error.FFmpegError as exc:
        raise CorruptFile(f"FFmpeg failed to open {path.name}: {exc}") from exc
    with container:
        stream = video_stream(container, path.name)
        ctx = stream.codec_context
        if ctx is None:  # FFmpeg knows no decoder for this codec id or fourcc: nothing can read its frames
            tag = getattr(stream, "codec_tag", None) or "unknown"
            raise UnsupportedCodec(
                f"{path.name}: no decoder for its video stream (codec tag {tag!r}); transcode it to H.264, "
                "VP9 or AV1 and upload it again"
            )
        width, height = int(ctx.width or 0), int(ctx.height or 0)
        if width * height > max_pixels:
            raise TooLarge(
                f"{path.name} is {width}x{height}, above the {max_pixels}-pixel limit (max_pixels); "
                "transcode it down or raise max_pixels"
            )
        audio = container.streams.audio[0] if container.streams.audio else None
        tb = stream.time_base or Fraction(1, 1000)

        ctx.thread_count = 1  # one frame is decoded: decoder threads would only cost their start
        pts_list: list[int] = []
        last_duration = 0
        n_packets = 0
        first: tuple[int, str | None, int, int] | None = None
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # the flush packet
                n_packets += 1
                if packet.pts is not None:
                    pts_list.append(packet.pts)
                    last_duration = packet.duration or last_duration
                if first is None:
                    first = _first_frame(path, packet, n_packets)
                if (n_packets & 0xFF) == 0 and time.monotonic() > deadline:
                    raise DecodeTimeout(f"probing {path.name} took over {timeout_s:.0f}s; file is suspect")
        except av.error.FFmpegError as exc:
            if n_packets == 0:
                raise CorruptFile(f"no readable video packets in {path.name}: {exc}") from exc
            # A damaged tail is common (truncated upload); the frames before it are usable.
        if n_packets == 0:
            raise CorruptFile(f"{path.name} has a video stream but no video packets")
        if first is None:
            raise CorruptFile(f"{path.name}: the video stream yields no decodable frame in its first packets")

        duration_s, duration_source = _duration(container, stream, pts_list, last_duration, tb)
        fps, vfr = _rate(stream, pts_list, tb)
        rotation, pix_fmt, first_w, first_h = first
        return ProbeResult(
            container=container.format.name,
            video_codec=ctx.name,
            pix_fmt=pix_fmt or ctx.pix_fmt,
            width=first_w or width,
            height=first_h or height,
            rotation=rotation,
            fps=fps,
            vfr=vfr,
            duration_s=duration_s,
            duration_source=duration_source,
            n_frames=n_packets,
            bit_rate=int(container.bit_rate) if container.bit_rate else None,
            size_bytes=size,
            has_audio=audio is not None,
            audio_codec=audio.codec_context.name if audio is not None else None,
        )


TRUNCATED_RATIO = 1.5  # declared / stored duration above which the upload is reported as truncated
TRUNCATED_MIN_S = 2.0


def _duration(container, stream, pts_list: list[int], last_duration: int, tb: Fraction) -> tuple[float | None, str]:
    """The declared duration when the stored packets agree with it, else the packets' span.

    A container's header can declare anything (an MKV declaring an hour around two seconds of
    packets; an upload cut off after its header was written): what the file holds is what will be
    sampled. When the claim is well above the packets, the packets win and the source says so
    ("truncated?"), which the probe check and the stage's log surface. A claim below the packets by
    more than a frame is as wrong the other way: the sampler decodes every packet, so its frames would
    lie past the duration and the scenes, which end at it, would fail the segment check.
    """
    from_packets = None
    frame_s = 0.0
    if pts_list:
        from_packets = float((max(pts_list) - min(pts_list) + (last_duration or 0)) * tb) or None
        frame_s = float(last_duration * tb) if last_duration else (from_packets or 0.0) / len(pts_list)
    declared, where = None, None
    if container.duration:
        declared, where = container.duration / 1_000_000, "container"
    elif stream.duration:
        declared, where = float(stream.duration * tb), "stream"
    if (
        from_packets
        and declared
        and declared > TRUNCATED_RATIO * from_packets
        and declared - from_packets > TRUNCATED_MIN_S
    ):
        return from_packets, f"packets; the {where} declares {declared:.1f}s (truncated?)"
    if from_packets and declared and from_packets - declared > frame_s:
        return from_packets, f"packets; the {where} declares {declared:.1f}s, less than its packets"
    if declared:
        return declared, where or "container"
    if from_packets:
        return from_packets, "packets"
    return None, "unknown"


def _rate(stream, pts_list: list[int], tb: Fraction) -> tuple[float | None, bool]:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else None
    if len(pts_list) < 3:
        return fps, False
    ordered = sorted(pts_list)
    deltas = [b - a for a, b in itertools.pairwise(ordered) if b > a]
    if not deltas:
        return fps, False
    deltas.sort()
    median = deltas[len(deltas) // 2]
    # VFR: a real share of frame intervals differs from the typical one by more than 10%.
    off = sum(1 for d in deltas if abs(d - median) > 0.1 * median)
    vfr = off > 0.05 * len(deltas)
    if fps is None and median > 0:
        fps = 1.0 / float(median * tb)
    return fps, vfr


def _first_frame(
    path: Path, packet: Any, n_packets: int, max_packets: int = FIRST_FRAME_PACKETS
) -> tuple[int, str | None, int, int] | None:
    """Decode the stream's packets until one frame comes out: the proof that the codec is supported and
    the stream starts clean. Returns (rotation, pix_fmt, width, height), or None while none has yet.

    Done in the probe's one demux pass (a second open and demux of the same file cost a third of the
    probe). A decode error is the file's, not its tail's: the first frame must decode.
    """
    import av

    try:
        for frame in packet.decode():
            return int(frame.rotation or 0), frame.format.name, frame.width, frame.height
    except av.error.DecoderNotFoundError as exc:
        raise UnsupportedCodec(f"no FFmpeg decoder for {path.name}'s video codec: {exc}") from exc
    except av.error.FFmpegError as exc:
        raise CorruptFile(f"the first video frame of {path.name} does not decode: {exc}") from exc
    if n_packets >= max_packets:
        raise CorruptFile(f"{path.name}: the video stream yields no decodable frame in its first packets")
    return None


def probe_job(path: str, options) -> ProbeResult:
    """`probe` with the sampler's options: what a worker of the isolated pool runs (module level).

    A failure row from the pool names the file and the class before the probe's message (the probe's
    messages do not all start with the file's name), as it did when the probe had its own error classes.
    """
    try:
        return probe(path, timeout_s=options.timeout_s, max_pixels=options.max_pixels)
    except VideoError as exc:
        raise type(exc)(f"{Path(path).name}: {type(exc).__name__}: {exc}") from exc


def probe_many(
    videos: list[tuple[str, str]],
    timeout_s: float = PROBE_TIMEOUT_S,
    max_pixels: int = 8192 * 8192,
    stage: str = "probe",
    workers: int | None = None,
    probe_fn=None,
):
    """Probe each (video_id, path) in worker processes; a bad file becomes a Failure and the others go on.

    The probe checks its deadline between packets, but a hang inside FFmpeg (a stuck read, a decoder
    loop on the first frame) can only be ended from outside: the sampler's pool kills a worker that
    outlives ``timeout_s`` and the video ends as DecodeTimeout, never a stuck run.
    """
    from ml.catalog.failures import Failure
    from ml.frames.sampler import SampleOptions, SamplerPool

    ok: list[tuple[str, ProbeResult]] = []
    failed: list[Failure] = []
    if not videos:
        return ok, failed
    options = SampleOptions(timeout_s=timeout_s, max_pixels=max_pixels)
    order = {video_id: i for i, (video_id, _) in enumerate(videos)}
    fn = probe_fn or probe_job  # module level: spawned workers import it by name
    with SamplerPool(options, workers=workers, sample_fn=fn) as pool:
        for video_id, result in pool.imap(videos):
            if isinstance(result, ProbeResult):
                ok.append((video_id, result))
            else:
                failed.append(Failure.from_exception(video_id, stage, result))
    ok.sort(key=lambda r: order[r[0]])
    failed.sort(key=lambda f: order[f.video_id])
    return ok, failed
