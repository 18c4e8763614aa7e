"""Registering videos: validation, path confinement, duplicates, idempotence, labels."""

from __future__ import annotations

import json
import os

import pytest

from ml.catalog.registration import ManifestError, register_manifest


def _manifest(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _reasons(report):
    return {r.video_id: r.reason for r in report.rejected}


def test_register_valid_rows_with_labels(settings, catalog, ws, video_factory, tmp_path):
    a = video_factory("a.mp4")
    b = video_factory("b.mp4", categories=("216",))
    m = _manifest(
        tmp_path / "m.jsonl",
        [
            {
                "id": "a",
                "uri": str(a),
                "title": "Goal!",
                "language": "EN",
                "uploaded_at": "2026-03-01T10:00:00Z",
                "labels": ["533"],
            },
            {"id": "b", "uri": str(b), "title": None, "language": "pt-BR", "labels": ["497"]},  # tier 3 rolls up
        ],
    )
    report = register_manifest(catalog, m, settings.allowed_roots, ws)
    assert report.registered == ["a", "b"] and not report.rejected
    rows = catalog.query("SELECT video_id, seq, language, uploaded_at IS NOT NULL FROM videos ORDER BY seq")
    assert rows == [("a", 1, "en", True), ("b", 2, "pt-br", False)]
    labels = catalog.query("SELECT video_id, category_id FROM human_labels WHERE label_set='editor' ORDER BY 1")
    assert labels == [("a", "533"), ("b", "496")]


def test_rejections_have_reasons(settings, catalog, ws, video_factory, tmp_path):
    a = video_factory("a.mp4")
    outside = tmp_path / "elsewhere.mp4"
    outside.write_bytes(a.read_bytes() + b"x")
    link = settings.media_dir / "link.mp4"
    os.symlink(outside, link)
    m = tmp_path / "m.jsonl"
    m.write_text(
        "\n".join(
            [
                json.dumps({"id": "ok", "uri": str(a)}),
                json.dumps({"id": "escape", "uri": str(settings.media_dir / ".." / ".." / "elsewhere.mp4")}),
                json.dumps({"id": "symlink", "uri": str(link)}),
                json.dumps({"id": "missing", "uri": str(settings.media_dir / "nope.mp4")}),
                json.dumps({"id": "ok", "uri": str(a)}),
                json.dumps({"id": "copy", "uri": str(a)}),
                json.dumps({"id": "remote", "uri": "https://example.com/v.mp4"}),
                json.dumps({"id": "badtime", "uri": str(a), "uploaded_at": "yesterday"}),
                json.dumps({"id": "badlabel", "uri": str(a), "labels": ["999999"]}),
                json.dumps({"uri": str(a)}),
                "{not json",
                json.dumps({"id": "bad id with spaces", "uri": str(a)}),
            ]
        )
        + "\n"
    )
    report = register_manifest(catalog, m, settings.allowed_roots, ws)
    reasons = _reasons(report)
    assert report.registered == ["ok"]
    assert "outside the media roots" in reasons["escape"]
    assert "outside the media roots" in reasons["symlink"]
    assert "does not exist" in reasons["missing"]
    assert "duplicate id" in reasons["ok"]
    assert "identical content to ok" in reasons["copy"]
    assert "scheme 'https'" in reasons["remote"]
    assert "ISO-8601" in reasons["badtime"]
    assert "not an IAB Content Taxonomy 3.1 id" in reasons["badlabel"]
    assert any("missing id" in r.reason for r in report.rejected)
    assert any("not valid JSON" in r.reason for r in report.rejected)
    assert "letters, digits" in reasons["bad id with spaces"]
    assert len(report.rejected) == 11


def test_reregistration_is_idempotent_and_new_content_under_old_id_is_refused(
    settings, catalog, ws, video_factory, tmp_path
):
    a = video_factory("a.mp4")
    m = _manifest(tmp_path / "m.jsonl", [{"id": "a", "uri": str(a), "labels": ["533"]}])
    register_manifest(catalog, m, settings.allowed_roots, ws)
    again = register_manifest(catalog, m, settings.allowed_roots, ws)
    assert again.already_registered == ["a"] and not again.registered
    assert catalog.scalar("SELECT count(*) FROM videos") == 1
    assert catalog.scalar("SELECT count(*) FROM human_labels") == 1
    other = video_factory("other.mp4", categories=("216",))
    clash = _manifest(tmp_path / "m2.jsonl", [{"id": "a", "uri": str(other)}, {"id": "b", "uri": str(a)}])
    reasons = _reasons(register_manifest(catalog, clash, settings.allowed_roots, ws))
    assert "different content" in reasons["a"]
    assert "already registered video a" in reasons["b"]


def test_csv_manifest_with_relative_uris_and_bad_bytes(settings, catalog, ws, video_factory):
    video_factory("c.mp4")
    m = settings.media_dir / "m.csv"
    m.write_bytes(b"id,uri,title,language,labels\nc,c.mp4,Caf\xe9 \xff title,fr,533|216\n")
    report = register_manifest(catalog, m, settings.allowed_roots, ws)
    assert report.registered == ["c"]
    title = catalog.scalar("SELECT title FROM videos")
    assert title.startswith("Caf") and "\ufffd" in title  # replaced, not crashed
    assert catalog.scalar("SELECT count(*) FROM human_labels") == 2


def test_manifest_level_errors(settings, catalog, ws, tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        register_manifest(catalog, tmp_path / "none.jsonl", settings.allowed_roots, ws)
    bad = tmp_path / "m.csv"
    bad.write_text("name,path\nx,y\n")
    with pytest.raises(ManifestError, match="'id' and 'uri'"):
        register_manifest(catalog, bad, settings.allowed_roots, ws)
    odd = tmp_path / "m.xml"
    odd.write_text("<x/>")
    with pytest.raises(ManifestError, match="unknown manifest format"):
        register_manifest(catalog, odd, settings.allowed_roots, ws)


def test_huge_and_empty_text_fields(settings, catalog, ws, video_factory, tmp_path):
    a = video_factory("a.mp4")
    m = _manifest(
        tmp_path / "m.jsonl",
        [{"id": "a", "uri": str(a), "title": "x" * 50_000, "description": "", "language": "english!"}],
    )
    report = register_manifest(catalog, m, settings.allowed_roots, ws)
    assert report.registered == ["a"]
    assert any("not an ISO 639 code" in w for w in report.warnings)
    title, desc, lang = catalog.query("SELECT title, description, language FROM videos")[0]
    assert len(title) == 1000 and desc is None and lang is None


def test_empty_uploads_are_not_duplicates_of_each_other(settings, catalog, ws, tmp_path):
    """Every 0-byte file hashes alike; each is an empty upload of its own (it fails the probe), not a copy."""
    for name in ("e1.mp4", "e2.mp4", "e3.mp4"):
        (settings.media_dir / name).write_bytes(b"")
    first = _manifest(tmp_path / "a.jsonl", [{"id": "e1", "uri": str(settings.media_dir / "e1.mp4")}])
    assert register_manifest(catalog, first, settings.allowed_roots, ws).registered == ["e1"]
    rows = [{"id": f"e{i}", "uri": str(settings.media_dir / f"e{i}.mp4")} for i in (2, 3)]
    report = register_manifest(catalog, _manifest(tmp_path / "b.jsonl", rows), settings.allowed_roots, ws)
    assert report.registered == ["e2", "e3"] and not report.rejected
