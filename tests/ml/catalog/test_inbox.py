"""The upload inbox: complete drops register once, bad drops are moved aside with the reason."""

from __future__ import annotations

import json

from ml.catalog.inbox import scan_inbox
from tests.conftest import make_video


def test_inbox_registers_complete_drops_once(settings, catalog, ws):
    inbox = settings.inbox_dir
    make_video(inbox / "up1.mp4")
    (inbox / "up1.json").write_text(json.dumps({"title": "Mon chat", "language": "fr"}))
    make_video(inbox / "up2.webm", codec="libvpx-vp9", container=".webm", seed=2)  # no sidecar yet: incomplete
    (inbox / "broken.json").write_text("{")
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
