"""Fault injection through one batch: every damaged file ends as a failure row of the right class, the
rest of the batch completes, nothing hangs, and no worker outlives its owner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ml.catalog.batching import create_batches
from ml.catalog.registration import register_manifest
from ml.frames.errors import DecodeTimeout
from ml.frames.sampler import SampleOptions, SamplerPool
from ml.frames.stage import frames_for_batch, probe_batch
from tests import faults
from tests.conftest import REPO_ROOT, make_video
from tests.videogen import write_audio_only, write_video


class FaultyEngine:
    """The local engine's frame path with an injected sampler (hangs and crashes by file name)."""

    name = "faulty"

    def embed_batch(self, batch_id, videos, settings):
        from ml.frames.stage import embed_batch

        pool = SamplerPool(
            SampleOptions.from_settings(settings), workers=2, grace_s=1.0, sample_fn=faults.sample_or_fault
        )
        try:
            return embed_batch(batch_id, list(videos), settings, pool=pool)
        finally:
            pool.close()


def _corpus(media, tmp_path):
    files = {}
    for name in ("good1.mp4", "good2.webm", "hang_probe.mp4", "crash_probe.mp4", "slowhang.mp4", "slowcrash.mp4"):
        suffix = os.path.splitext(name)[1]
        codec = "libvpx-vp9" if suffix == ".webm" else "libx264"
        files[name] = make_video(media / name, duration_s=3.0, container=suffix, codec=codec, seed=len(files))
    (media / "empty.mp4").write_bytes(b"")
    files["empty.mp4"] = media / "empty.mp4"
    data = files["good1.mp4"].read_bytes()
    (media / "truncated.mp4").write_bytes(data[: len(data) // 5])
    files["truncated.mp4"] = media / "truncated.mp4"
    (media / "garbage.mp4").write_bytes(os.urandom(4096))
    files["garbage.mp4"] = media / "garbage.mp4"
    files["sound.m4a"] = write_audio_only(media / "sound.m4a")
    files["huge.mp4"] = write_video(media / "huge.mp4", seconds=1, size=(160, 128))
    (media / "unknown.mp4").write_bytes(data.replace(b"avc1", b"zzz9"))
    files["unknown.mp4"] = media / "unknown.mp4"
    long = make_video(tmp_path / "long.mkv", duration_s=10.0, container=".mkv")
    (media / "cut.mkv").write_bytes(long.read_bytes()[: len(long.read_bytes()) * 3 // 10])
    files["cut.mkv"] = media / "cut.mkv"
    files["missing.mp4"] = make_video(media / "missing.mp4", duration_s=1.0, seed=99)
    return files


@pytest.mark.slow
def test_a_batch_of_damaged_files_completes_with_a_failure_row_each(settings, catalog, ws, tmp_path):
    settings = settings.with_overrides(decode_timeout_s=2.0, max_pixels=120 * 100)
    media = settings.media_dir
    files = _corpus(media, tmp_path)
    manifest = tmp_path / "m.jsonl"
    import json

    manifest.write_text("\n".join(json.dumps({"id": n.split(".")[0], "uri": str(p)}) for n, p in files.items()))
    report = register_manifest(catalog, manifest, settings.allowed_roots, ws)
    assert not report.rejected, report.rejected
    files["missing.mp4"].unlink()  # deleted after registration: the probe must say so
    (batch,) = create_batches(catalog, 100, "backfill", close_partial=True)
    started = time.monotonic()
    probe = probe_batch(catalog, batch.batch_id, settings, probe_fn=faults.probe_or_fault)
    frames = frames_for_batch(catalog, batch.batch_id, settings, FaultyEngine())
    elapsed = time.monotonic() - started
    failures = {(v, s): e for v, s, e in catalog.query("SELECT video_id, stage, error_class FROM failures")}
    assert failures == {
        ("empty", "probe"): "EmptyFile",
        ("truncated", "probe"): "CorruptFile",
        ("garbage", "probe"): "CorruptFile",
        ("sound", "probe"): "NoVideoStream",
        ("huge", "probe"): "TooLarge",
        ("unknown", "probe"): "UnsupportedCodec",
        ("missing", "probe"): "MissingFile",
        ("hang_probe", "probe"): "DecodeTimeout",
        ("crash_probe", "probe"): "DecoderCrashed",
        ("slowhang", "frames"): "DecodeTimeout",
        ("slowcrash", "frames"): "DecoderCrashed",
    }
    assert probe.videos == len(files) and {v for v, _ in probe.probed} == {
        "good1",
        "good2",
        "slowhang",
        "slowcrash",
        "cut",
    }
    assert frames.embedded == 3 and frames.shard.exists()  # good1, good2 and the truncated mkv's first seconds
    (cut,) = catalog.query("SELECT duration_s, duration_source FROM video_probe WHERE video_id = 'cut'")
    assert cut[0] < 5 and "truncated?" in cut[1]
    assert elapsed < 90, "a hung decoder must cost its deadline, not the run"
    # Re-running the batch is idempotent: the same failure rows, not twice as many.
    probe_batch(catalog, batch.batch_id, settings, probe_fn=faults.probe_or_fault)
    assert catalog.scalar("SELECT count(*) FROM failures WHERE stage = 'probe'") == 9


def test_a_result_that_arrives_while_the_caller_is_busy_is_not_a_timeout(tmp_path):
    paths = [(i, tmp_path / f"v{i}.mp4") for i in range(3)]
    out = {}
    with SamplerPool(SampleOptions(timeout_s=1.5), workers=2, grace_s=0.5, sample_fn=faults.quick) as pool:
        dict(pool.imap([("warm-a", "a"), ("warm-b", "b")]))  # both workers up and imported: no start-up in the way
        for key, result in pool.imap(paths):
            out[key] = result
            time.sleep(3.0)  # the caller encodes: the other worker's deadline passes meanwhile
    assert out == {i: f"done v{i}.mp4" for i in range(3)}
    assert not any(isinstance(r, DecodeTimeout) for r in out.values())


def test_workers_do_not_outlive_their_owner(tmp_path):
    code = (
        "import sys, time\n"
        "from ml.frames.sampler import SampleOptions, SamplerPool\n"
        "from tests import faults\n"
        "pool = SamplerPool(SampleOptions(timeout_s=3600), workers=2, sample_fn=faults.hang_forever)\n"
        "it = pool.imap([(0, 'a.mp4'), (1, 'b.mp4')])\n"
        "import threading; threading.Thread(target=lambda: next(it), daemon=True).start()\n"
        "time.sleep(3); print(' '.join(map(str, pool.worker_pids)), flush=True); time.sleep(3600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        os.kill(proc.pid, signal.SIGKILL)  # the run worker dies the hard way
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in pids), "decoder workers outlived their owner"
    finally:
        if proc.poll() is None:
            proc.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
