"""The `vidcat` command line: exit codes and messages a person can act on."""

from __future__ import annotations

import json

from orchestration.cli import main


def test_taxonomy_json(capsys, settings):
    assert main(["taxonomy", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["nodes"] == 704 and out["working_set"] == len(out["categories"])
    assert all(isinstance(c["id"], str) for c in out["categories"])


def test_register_and_status(capsys, settings, video_factory, tmp_path):
    a = video_factory("a.mp4")
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"id": "a", "uri": str(a)}) + "\n" + json.dumps({"id": "b", "uri": "/etc/passwd"}) + "\n")
    assert main(["register", str(m), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["registered"] == 1 and "outside the media roots" in out["rejected"][0]["reason"]
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["videos"] == 1


def test_bad_config_fails_fast_with_what_to_fix(capsys, settings, tmp_path, monkeypatch):
    bad = tmp_path / "bad.toml"
    bad.write_text("batch_size = 0\n")
    assert main(["--config", str(bad), "status"]) == 2
    assert "batch_size must be >= 1" in capsys.readouterr().err
    typo = tmp_path / "typo.toml"
    typo.write_text("bach_size = 10\n")
    assert main(["--config", str(typo), "status"]) == 2
    assert "unknown setting(s) ['bach_size']" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "none.toml"), "status"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["register", str(tmp_path / "missing.jsonl")]) == 2
    assert "manifest" in capsys.readouterr().err
