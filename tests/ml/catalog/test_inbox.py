"""The upload inbox: complete drops register once, bad drops are moved aside with the reason."""

from __future__ import annotations

import json
import os
import time

from ml.catalog.inbox import SIDECAR_WRITE_GRACE_S, scan_inbox
from tests.conftest import make_video


def _age(path, seconds: float) -> None:
    """Backdate ``path``'s mtime, as if it had been written ``seconds`` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_inbox_registers_complete_drops_once(settings, catalog, ws):
    inbox = settings.inbox_dir
    make_video(inbox / "up1.mp4")
    (inbox / "up1.json").write_text(json.dumps({"title": "Mon chat", "language": "fr"}))
    make_video(inbox / "up2.webm", codec="libvpx-vp9", container=".webm", seed=2)  # no sidecar yet: incomplete
    (inbox / "broken.json").write_text("{")
    _age(inbox / "broken.json", SIDECAR_WRITE_GRACE_S + 1)  # written long ago: truly broken
    (inbox / "orphan.json").write_text(json.dumps({"id": "orphan"}))
    scan = scan_inbox(catalog, inbox, list(settings.allowed_roots), ws)
    assert scan.report.registered == ["up1"]
    assert (inbox / "up1.json.done").exists() and not (inbox / "up1.json").exists()
    assert (inbox / "broken.json.rejected").exists()
    assert "no video file" in (inbox / "orphan.reason.txt").read_text()
    assert catalog.query("SELECT video_id, language, origin FROM videos") == [("up1", "fr", "inbox")]
    # The second file's sidecar arrives: only it is registered on the next scan.
    (inbox / "up2.json").write_text(json.dumps({"id": "up2", "title": "Fußball"}))
    again = scan_inbox(catalog, inbox, list(settings.allowed_roots), ws)
    assert again.report.registered == ["up2"]
    assert catalog.scalar("SELECT count(*) FROM videos") == 2


def test_duplicate_upload_is_rejected_with_reason(settings, catalog, ws):
    inbox = settings.inbox_dir
    make_video(inbox / "x.mp4")
    (inbox / "x.json").write_text("{}")
    scan_inbox(catalog, inbox, list(settings.allowed_roots), ws)
    (inbox / "y.mp4").write_bytes((inbox / "x.mp4").read_bytes())
    (inbox / "y.json").write_text("{}")
    scan = scan_inbox(catalog, inbox, list(settings.allowed_roots), ws)
    assert not scan.report.registered
    assert "identical content to already registered video x" in (inbox / "y.reason.txt").read_text()


def test_malformed_sidecars_are_rejected_and_the_scan_goes_on(settings, catalog, ws):
    inbox = settings.inbox_dir
    for name, meta in [("a", {"uploaded_at": 1e20}), ("b", {"labels": 5}), ("c", {"title": "ok"})]:
        make_video(inbox / f"{name}.mp4", seed=ord(name))
        (inbox / f"{name}.json").write_text(json.dumps(meta))
    scan = scan_inbox(catalog, inbox, list(settings.allowed_roots), ws)
    assert scan.report.registered == ["c"]
    assert "not a valid Unix time" in (inbox / "a.reason.txt").read_text()
    assert "labels must be a list" in (inbox / "b.reason.txt").read_text()
    assert not list(inbox.glob("*.json"))  # nothing left to fail the next tick


def test_one_scan_takes_a_bounded_number_of_bytes(settings, catalog, ws):
    inbox = settings.inbox_dir
    for name in ("a", "b", "c"):
        make_video(inbox / f"{name}.mp4", seed=ord(name))
        (inbox / f"{name}.json").write_text("{}")
    first = scan_inbox(catalog, inbox, list(settings.allowed_roots), ws, max_bytes=1)
    assert first.report.registered == ["a"]
    rest = scan_inbox(catalog, inbox, list(settings.allowed_roots), ws, max_bytes=1)
    assert rest.report.registered == ["b"]


def test_a_sidecar_caught_mid_write_waits_for_the_next_scan(settings, catalog, ws):
    """A copy in progress (or a network share flushing late) shows half a sidecar: it must not be lost."""
    inbox = settings.inbox_dir
    make_video(inbox / "clip.mp4")
    sidecar = inbox / "clip.json"
    sidecar.write_text('{"title": "Mon ch')
    first = scan_inbox(catalog, inbox, list(settings.allowed_roots), ws)
    assert first.report.registered == [] and sidecar.exists()
    assert not (inbox / "clip.json.rejected").exists() and not (inbox / "clip.reason.txt").exists()
    assert any("still being written" in w for w in first.report.warnings)
    # The write completes: the next scan registers it.
    sidecar.write_text(json.dumps({"title": "Mon chat", "language": "fr"}))
    assert scan_inbox(catalog, inbox, list(settings.allowed_roots), ws).report.registered == ["clip"]


def test_an_unparseable_sidecar_is_rejected_once_past_the_grace(settings, catalog, ws):
    inbox = settings.inbox_dir
    make_video(inbox / "clip.mp4")
    sidecar = inbox / "clip.json"
    sidecar.write_text("[1, 2]")  # valid JSON, but not an object: as unusable as half a file
    assert scan_inbox(catalog, inbox, list(settings.allowed_roots), ws).report.registered == []
    assert sidecar.exists()
    _age(sidecar, SIDECAR_WRITE_GRACE_S + 1)
    scan = scan_inbox(catalog, inbox, list(settings.allowed_roots), ws)
    assert not sidecar.exists() and (inbox / "clip.json.rejected").exists()
    reason = (inbox / "clip.reason.txt").read_text()
    assert "not a JSON object" in reason and "clip.json.part" in reason
    assert any("moved aside" in w for w in scan.report.warnings)
