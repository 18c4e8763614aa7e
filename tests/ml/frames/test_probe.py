"""The probe on generated files of every container we ship, on bad files, and on the real clips."""

from __future__ import annotations

import csv

import pytest

from ml.frames.errors import CorruptFile, EmptyFile, MissingFile, NoVideoStream, TooLarge
from ml.frames.probe import probe, probe_many
from tests.conftest import REAL_CLIPS, make_video, needs_real_clips


@pytest.mark.parametrize(
    ("suffix", "codec", "container"),
    [
        (".mp4", "libx264", "mov,mp4,m4a,3gp,3g2,mj2"),
        (".webm", "libvpx-vp9", "matroska,webm"),
        (".avi", "mpeg4", "avi"),
        (".gif", "gif", "gif"),
        (".mkv", "libx264", "matroska,webm"),
    ],
)
def test_probe_generated_containers(tmp_path, suffix, codec, container):
    path = make_video(tmp_path / f"v{suffix}", duration_s=3.0, fps=10, container=suffix, codec=codec)
    r = probe(path)
    assert r.container == container
    assert (r.width, r.height) == (96, 64)
    assert r.duration_s == pytest.approx(3.0, abs=0.15)
    assert r.fps == pytest.approx(10, rel=0.05)
    assert r.n_frames == 30
    assert not r.has_audio and r.size_bytes == path.stat().st_size


def test_probe_reads_rotation(tmp_path):
    r = probe(make_video(tmp_path / "p.mp4", size=(64, 96), rotation=90))
    assert r.rotation in (90, -90, 270)
    assert (r.width, r.height) == (96, 64)  # coded size; the display is portrait


def test_bad_files_raise_specific_errors(tmp_path):
    good = make_video(tmp_path / "good.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    truncated = tmp_path / "trunc.mp4"
    truncated.write_bytes(good.read_bytes()[:300])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(bytes(range(256)) * 16)
    with pytest.raises(EmptyFile, match="0 bytes"):
        probe(empty)
    with pytest.raises(MissingFile):
        probe(tmp_path / "nope.mp4")
    with pytest.raises(CorruptFile):
        probe(truncated)
    with pytest.raises(CorruptFile):
        probe(garbage)
    with pytest.raises(TooLarge, match="max_pixels"):
        probe(good, max_pixels=100)


def test_audio_only_file(tmp_path):
    import av
    import numpy as np

    path = tmp_path / "a.m4a"
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000)
        f = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp", layout="mono")
        f.sample_rate = 16000
        for p in [*s.encode(f), *s.encode()]:
            c.mux(p)
    with pytest.raises(NoVideoStream, match="no video stream"):
        probe(path)


def test_a_cover_picture_is_not_a_video_stream(tmp_path):
    """An AAC file with cover art: the probe refuses it as the sampler does, naming the picture."""
    from ml.frames.sampler import sample_frames
    from tests.videogen import write_audio_with_cover

    path = write_audio_with_cover(tmp_path / "song.m4a")
    with pytest.raises(NoVideoStream, match="only a cover picture"):
        probe(path)
    with pytest.raises(NoVideoStream, match="only a cover picture"):
        sample_frames(path)
    ok, failed = probe_many([("s", str(path))])
    assert not ok and [f.error_class for f in failed] == ["NoVideoStream"]


def test_probe_many_keeps_going(tmp_path):
    good = make_video(tmp_path / "good.mp4")
    (tmp_path / "zero.mp4").write_bytes(b"")
    ok, failed = probe_many([("g", str(good)), ("z", str(tmp_path / "zero.mp4")), ("m", str(tmp_path / "m.mp4"))])
    assert [v for v, _ in ok] == ["g"]
    assert {(f.video_id, f.error_class) for f in failed} == {("z", "EmptyFile"), ("m", "MissingFile")}
    assert all(f.stage == "probe" and f.message for f in failed)


@needs_real_clips
def test_every_real_clip_probes_like_its_manifest():
    with open(REAL_CLIPS / "manifest.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) == 30
    past_header = set()
    for row in rows:
        r = probe(REAL_CLIPS / row["file"])
        assert r.video_codec == row["vcodec"], row["file"]
        assert (r.width, r.height) == (int(row["width"]), int(row["height"])), row["file"]
        if "less than its packets" in r.duration_source:
            past_header.add(row["file"])
            assert float(row["duration_s"]) < r.duration_s < float(row["duration_s"]) + 0.5, row["file"]
        elif row["duration_s"]:
            assert r.duration_s == pytest.approx(float(row["duration_s"]), abs=0.1), row["file"]
        else:  # no container duration: measured from packets
            assert r.duration_source == "packets" and r.duration_s > 1, row["file"]
        assert r.n_frames == int(row["frames"]), row["file"]
        assert r.has_audio == bool(row["audio"]), row["file"]
    # Its last frame is stamped 14.18 s (decoded there too), past the 14.08 s the header declares.
    assert past_header == {"Video-LLaMA__skateboarding_dog.mp4"}
    vfr = probe(REAL_CLIPS / "PySceneDetect__goldeneye-vfr-drop3.mp4")
    assert vfr.vfr


def _unknown_codec(tmp_path, suffix=".mp4"):
    """A real file whose video codec tag no FFmpeg decoder knows (the H.264 tag overwritten)."""
    path = make_video(tmp_path / f"known{suffix}", duration_s=2.0, container=suffix)
    data = path.read_bytes()
    tag, other = (b"avc1", b"zzz9") if suffix == ".mp4" else (b"V_MPEG4/ISO/AVC", b"V_ZZZZZ/ISO/ZZZ")
    assert tag in data
    out = tmp_path / f"unknown{suffix}"
    out.write_bytes(data.replace(tag, other))
    return out


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_a_stream_without_a_decoder_is_unsupported_codec(tmp_path, suffix):
    from ml.frames.errors import UnsupportedCodec

    with pytest.raises(UnsupportedCodec, match="no decoder"):
        probe(_unknown_codec(tmp_path, suffix))
    ok, failed = probe_many([("u", str(_unknown_codec(tmp_path, suffix)))])
    assert not ok and [(f.video_id, f.error_class) for f in failed] == [("u", "UnsupportedCodec")]


def test_a_declared_duration_the_packets_do_not_back_is_not_trusted(tmp_path):
    """A Matroska upload cut after 30%: its header still declares the whole length."""
    path = make_video(tmp_path / "full.mkv", duration_s=10.0, fps=10, container=".mkv")
    data = path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.3)])
    r = probe(cut)
    assert r.duration_s < 5 and "declares 10.0s (truncated?)" in r.duration_source
    whole = probe(path)
    assert whole.duration_s == pytest.approx(10.0, abs=0.2) and whole.duration_source == "container"


def test_a_declared_duration_shorter_than_the_packets_gives_way_to_them(tmp_path):
    """A header claiming 4 s around 10 s of packets: the sampler decodes all 10, so the probe says 10."""
    from tests.videogen import declare_shorter_duration

    path = make_video(tmp_path / "full.mkv", duration_s=10.0, fps=10, container=".mkv")
    short = probe(declare_shorter_duration(path, tmp_path / "short.mkv", 4.0))
    assert short.duration_s == pytest.approx(10.0, abs=0.2)
    assert "declares 4.0s, less than its packets" in short.duration_source
    # Within a frame of the packets, the header stands.
    near = probe(declare_shorter_duration(path, tmp_path / "near.mkv", 9.95))
    assert near.duration_s == pytest.approx(9.95) and near.duration_source == "container"
