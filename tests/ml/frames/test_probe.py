"""The probe on generated files of every container we ship, on bad files, and on the real clips."""

from __future__ import annotations

import csv

import pytest

from ml.frames.probe import CorruptFile, EmptyFile, MissingFile, NoVideoStream, TooLarge, probe, probe_many
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
    for row in rows:
        r = probe(REAL_CLIPS / row["file"])
        assert r.video_codec == row["vcodec"], row["file"]
        assert (r.width, r.height) == (int(row["width"]), int(row["height"])), row["file"]
        if row["duration_s"]:
            assert r.duration_s == pytest.approx(float(row["duration_s"]), abs=0.1), row["file"]
        else:  # no container duration: measured from packets
            assert r.duration_source == "packets" and r.duration_s > 1, row["file"]
        assert r.n_frames == int(row["frames"]), row["file"]
        assert r.has_audio == bool(row["audio"]), row["file"]
    vfr = probe(REAL_CLIPS / "PySceneDetect__goldeneye-vfr-drop3.mp4")
    assert vfr.vfr
