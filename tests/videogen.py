"""Small real videos encoded with PyAV for the frame-pipeline tests.

Every frame is one flat colour that names the second it belongs to (``colour_of_second``), so a test
can tell from a sampled frame which second of the video it came from. The palette survives lossy
4:2:0 coding and GIF's 8-bit palettes: channel values are exact in 3-3-2 bit RGB and far apart.
"""

from __future__ import annotations

import atexit
import functools
import itertools
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

PALETTE = np.array([(r, g, b) for r, g, b in itertools.product((0, 109, 219), (0, 109, 219), (0, 170))], dtype=np.uint8)


def colour_of_second(second: int) -> np.ndarray:
    return PALETTE[second % len(PALETTE)]


def second_of_colour(rgb: np.ndarray) -> int:
    """Palette index of the colour nearest to the mean of ``rgb`` (any shape ending in 3)."""
    mean = np.asarray(rgb, dtype=np.float64).reshape(-1, 3).mean(0)
    return int(np.argmin(((PALETTE.astype(np.float64) - mean) ** 2).sum(1)))


def _frame(av, t: float, width: int, height: int, pix_fmt: str):
    colour = colour_of_second(int(np.floor(t + 1e-9)))
    if pix_fmt == "pal8":
        palette = np.zeros((256, 4), dtype=np.uint8)
        palette[: len(PALETTE), 0] = 255  # ARGB: opaque
        palette[: len(PALETTE), 1:] = PALETTE
        index = np.full((height, width), int(np.floor(t + 1e-9)) % len(PALETTE), dtype=np.uint8)
        return av.VideoFrame.from_ndarray((index, palette), format="pal8")
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = colour
    return av.VideoFrame.from_ndarray(image, format="rgb24")


def write_video(
    path: Path,
    seconds: float = 4.0,
    fps: float = 10,
    *,
    codec: str = "libx264",
    size: tuple[int, int] = (64, 48),
    pix_fmt: str = "yuv420p",
    times: list[float] | None = None,
    rotation: int = 0,
    gop: int | None = None,
    fmt: str | None = None,
    container_options: dict[str, str] | None = None,
    codec_options: dict[str, str] | None = None,
    image=None,
) -> Path:
    """Encode a video whose frame at time t has ``colour_of_second(floor(t))``.

    ``times``: explicit presentation times in seconds (variable frame rate), else ``k / fps``.
    ``image(t) -> HxWx3 uint8`` replaces the flat colour when given.
    """
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    times = times if times is not None else [k / fps for k in range(round(seconds * fps))]
    tb = Fraction(1, 1000)
    with av.open(str(path), "w", format=fmt, options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1000) if codec != "gif" else None)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.time_base = tb
        stream.codec_context.time_base = tb
        if gop:
            stream.codec_context.gop_size = gop
        if codec == "libx264":
            stream.codec_context.options = (
                {"preset": "ultrafast", "tune": "zerolatency"}
                if gop is None
                else {"preset": "ultrafast", "keyint_min": str(gop), "sc_threshold": "0"}
            )
        if codec_options:
            stream.codec_context.options = codec_options
        if rotation:
            stream.set_display_rotation(rotation)
        for t in times:
            if image is not None:
                frame = av.VideoFrame.from_ndarray(image(t), format="rgb24")
            else:
                frame = _frame(av, t, width, height, "pal8" if pix_fmt == "pal8" else "rgb24")
            frame.pts = round(t * 1000)
            frame.time_base = tb
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        samples = 1024
        for i in range(int(seconds * 16000 / samples)):
            wave = np.sin(np.arange(samples) / 10.0 + i).astype(np.float32)[None, :] * 0.1
            frame = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
            frame.sample_rate = 16000
            frame.pts = i * samples
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_audio_with_cover(path: Path, seconds: float = 1.0) -> Path:
    """An AAC song with its cover picture: the picture is a video stream flagged ``attached_pic``."""
    import av

    write_audio_only(path.with_suffix(".tmp.m4a"), seconds)
    with av.open(str(path.with_suffix(".tmp.m4a"))) as src, av.open(str(path), "w", format="mp4") as out:
        audio = out.add_stream_from_template(src.streams.audio[0])
        cover = out.add_stream("mjpeg")
        cover.width, cover.height, cover.pix_fmt = 64, 64, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        picture = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 200, np.uint8), format="rgb24")
        for packet in [*cover.encode(picture.reformat(format="yuvj420p")), *cover.encode()]:
            out.mux(packet)
        for packet in src.demux(src.streams.audio[0]):
            if packet.size:
                packet.stream = audio
                out.mux(packet)
    path.with_suffix(".tmp.m4a").unlink()
    return path


def declare_shorter_duration(mkv: Path, out: Path, declared_s: float) -> Path:
    """A copy of a Matroska file whose header declares ``declared_s`` while its packets run longer.

    The Segment Info's Duration (EBML id 0x4489, an 8-byte float in milliseconds at PyAV's timecode
    scale) is rewritten in place; every packet stays.
    """
    import struct

    data = bytearray(mkv.read_bytes())
    at = data.find(b"\x44\x89\x88")
    if at < 0:
        raise ValueError(f"{mkv} has no 8-byte Duration element to rewrite")
    data[at + 3 : at + 11] = struct.pack(">d", declared_s * 1000.0)
    out.write_bytes(bytes(data))
    return out


@functools.cache
def shared_data_root() -> Path:
    """One data root for the whole test session, so the ONNX export (seconds) happens once."""
    root = tempfile.mkdtemp(prefix="vidcat-test-root-")
    atexit.register(shutil.rmtree, root, True)
    return Path(root)


def shared_encoder(name: str = "efficientnet-lite0"):
    """The ONNX encoder exported into ``shared_data_root()``, loaded once per test session."""
    return _encoder(name)


@functools.cache
def _encoder(name: str):
    from ml.frames.image_encoder import load_encoder

    return load_encoder(name, shared_data_root() / "models")
