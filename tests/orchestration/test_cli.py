"""The `vidcat` command line: exit codes and messages a person can act on."""

from __future__ import annotations

import json

import pytest

from orchestration.cli import main
from tests.conftest import registry_rows


def test_taxonomy_json(capsys, settings):
    assert main(["taxonomy", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["nodes"] == 704 and out["working_set"] == len(out["categories"])
    assert all(isinstance(c["id"], str) for c in out["categories"])


def test_register_and_status(capsys, settings, video_factory, tmp_path):
    a = video_factory("a.mp4")
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"id": "a", "uri": str(a)}) + "\n" + json.dumps({"id": "b", "uri": "/etc/passwd"}) + "\n")
    assert main(["register", str(m), "--json"]) == 1  # some rows rejected: a script must notice
    out = json.loads(capsys.readouterr().out)
    assert out["registered"] == 1 and "outside the media roots" in out["rejected"][0]["reason"]
    assert main(["register", str(m), "--json"]) == 1  # the same manifest again: a is already there, b still refused
    assert json.loads(capsys.readouterr().out)["already_registered"] == 1
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["videos"] == 1


def test_bad_config_fails_fast_with_what_to_fix(capsys, settings, tmp_path, monkeypatch):
    bad = tmp_path / "bad.toml"
    bad.write_text("batch_size = 0\n")
    assert main(["--config", str(bad), "status"]) == 2
    assert "setting batch_size = 0 (from" in capsys.readouterr().err
    typo = tmp_path / "typo.toml"
    typo.write_text("bach_size = 10\n")
    assert main(["--config", str(typo), "status"]) == 2
    assert "unknown setting(s) ['bach_size']" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "none.toml"), "status"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["register", str(tmp_path / "missing.jsonl")]) == 2
    assert "manifest" in capsys.readouterr().err


def test_sql_reads_the_catalog_and_nothing_else(capsys, settings, catalog, tmp_path):
    """A query tool offered to anyone writes no file, opens no other file and changes nothing."""
    from tests.conftest import registry_rows

    registry_rows(catalog, 3)
    assert main(["sql", "SELECT count(*) AS n FROM videos", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 3}]
    other = tmp_path / "other.duckdb"
    secret = tmp_path / "secret.txt"
    secret.write_text("not for you")
    shard = settings.embeddings_dir / "x.parquet"
    refused = [
        f"COPY videos TO '{shard}' (FORMAT parquet)",
        f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'",
        f"ATTACH '{other}' AS o (READ_ONLY false)",
        "INSTALL httpfs",
        f"SELECT * FROM read_text('{secret}')",
        f"SELECT * FROM read_text('{settings.catalog_path}')",  # not even under the data root
        "DELETE FROM videos",
        "CREATE TABLE t AS SELECT 1",
        "SET enable_external_access = true",
    ]
    for query in refused:
        assert main(["sql", query]) == 2, query
        assert "vidcat sql: error:" in capsys.readouterr().err
    assert not shard.exists() and not (tmp_path / "out.csv").exists() and not other.exists()
    assert catalog.scalar("SELECT count(*) FROM videos") == 3


def test_register_a_folder_says_to_give_the_manifest_inside(capsys, settings, tmp_path):
    folder = tmp_path / "upload"
    folder.mkdir()
    (folder / "videos.jsonl").write_text("")
    assert main(["register", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "is a folder, not a manifest (it holds videos.jsonl)" in err and "Traceback" not in err


def test_budget_shares_are_checked_before_any_work(capsys, settings):
    """Both budget options take the same shares, and a bad one exits 2 naming the option and the fix."""
    from orchestration.cli import shares

    assert shares("1.0, 0.5,0.25") == [1.0, 0.5, 0.25]
    for bad in ("", "a,b", "0", "1.5", "0.5,nan"):
        with pytest.raises(SystemExit) as exc:
            main(["eval-visual", "--label-budget", bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "--label-budget" in err and ("shares" in err), (bad, err)
    with pytest.raises(SystemExit):
        main(["eval-text", "--data", ".", "--train", "GB", "--test", "DE", "--budget", "2"])
    assert "--budget" in capsys.readouterr().err


def test_take_down_refuses_unknown_ids_and_marks_known_ones(capsys, settings, catalog):
    registry_rows(catalog, 2)
    assert main(["take-down", "v1", "ghost"]) == 2
    assert "not registered: ghost" in capsys.readouterr().err
    assert catalog.scalar("SELECT count(*) FROM videos WHERE taken_down_at IS NOT NULL") == 0
    assert main(["take-down", "v2", "v1", "v2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"taken_down": ["v1", "v2"], "serving_store": "off"}
    assert catalog.scalar("SELECT count(*) FROM videos WHERE taken_down_reason = 'taken down'") == 2


def test_eval_segments_needs_a_trained_student(capsys, settings):
    """Without a student the command says what to run, before rendering anything."""
    assert main(["eval-segments"]) == 2
    err = capsys.readouterr().err
    assert f"no trained student in {settings.data_root}: run make demo first" in err and "Traceback" not in err
    assert not (settings.data_root / "segment_bench").exists()
    with pytest.raises(SystemExit):
        main(["eval-segments", "--gold-videos", "0"])


def test_import_gold_with_scene_ranges_says_what_to_fix(capsys, settings, catalog, tmp_path):
    registry_rows(catalog, 2)
    answers = tmp_path / "gold.jsonl"
    answers.write_text(
        json.dumps({"video_id": "v1", "labels": ["216"], "scenes": [{"start_s": 0, "end_s": 9, "category": "216"}]})
        + "\n"
        + json.dumps({"video_id": "v2", "labels": ["216"], "scenes": [{"start_s": 9, "end_s": 3, "category": "216"}]})
        + "\n"
    )
    assert main(["import-gold", str(answers), "--json"]) == 1  # one row rejected: a script must notice
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["scene_videos"] == 1 and out["scene_ranges"] == 1 and out["scenes_unchecked_duration"] == 1
    assert "rejected line 2: scenes[0]: start_s 9 is not before end_s 3; write start < end" in captured.err
    assert "not probed yet" in captured.err


def test_backfill_without_a_daemon_says_nothing_runs_it_and_what_to_do(capsys, settings, catalog):
    """Stored, but with no daemon for this DAGSTER_HOME nothing would run it: the command says so."""
    registry_rows(catalog, 3)
    assert main(["backfill", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["daemon"] == "none"
    assert "no dagster-daemon serves" in captured.err and "`vidcat up`" in captured.err and "--wait" in captured.err
    assert "the daemon resumes it" not in captured.err


def test_a_wait_that_times_out_says_whether_the_daemon_goes_on(settings, catalog):
    """A daemon this command started is stopped on the way out: the message must not say the work goes on."""
    from orchestration.backfill import get_instance, launch_backfill
    from orchestration.cli import CommandError
    from orchestration.cli.catalog import wait_until_finished

    registry_rows(catalog, 3)
    launch = launch_backfill(settings, catalog)
    instance = get_instance(settings)
    for own, said in ((True, "started is stopped now"), (False, "goes on in the daemon")):
        with pytest.raises(CommandError, match=said) as exc:
            wait_until_finished(
                settings, catalog, instance, [launch.backfill_id], set(launch.partitions), 0.1, print, not own
            )
        assert ("`vidcat backfill --wait` again" in str(exc.value)) == own


def test_a_bug_keeps_its_traceback_and_a_user_error_exits_2(capsys, settings, monkeypatch):
    """Only errors that say what to do become one line and exit 2; a KeyError from a bug is not one."""
    import orchestration.cli.catalog as catalog_cli
    from ml.errors import InvalidInput

    def buggy(args):
        return {}["missing"]

    monkeypatch.setattr(catalog_cli, "cmd_status", buggy)
    with pytest.raises(KeyError):
        main(["status"])

    def refused(args):
        raise InvalidInput("the file is not a manifest; give the .jsonl")

    monkeypatch.setattr(catalog_cli, "cmd_status", refused)
    assert main(["status"]) == 2
    assert "vidcat status: error: the file is not a manifest" in capsys.readouterr().err
