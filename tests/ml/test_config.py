"""Settings: every bad value stops the command with exit 2 and a message naming the key, never a traceback."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ml.config import DAGSTER_YAML_MARK, ConfigError, Settings, load_settings
from ml.config_schema import Rule, check_rule, check_values
from orchestration.cli import main

# (vidcat.toml line, the key the message must name, a phrase of the fix)
BAD_TOML = [
    ('data_root = ""', "data_root", "must be a path"),
    ("batch_size = 3.7", "batch_size", "whole number"),
    ("batch_size = true", "batch_size", "whole number"),
    ("batch_size = 0", "batch_size", ">= 1"),
    ("decode_timeout_s = nan", "decode_timeout_s", "finite"),
    ("batch_max_wait_s = inf", "batch_max_wait_s", "finite"),
    ("ray_address = 5", "ray_address", "a string"),
    ("student_augment = 1", "student_augment", "true or false"),
    ('fps = "fast"', "fps", "a number"),
    ("sql_timeout_s = -1", "sql_timeout_s", "> 0"),
    ('threshold_bound = "bayes"', "threshold_bound", "one of"),
    ("media_roots = 7", "media_roots", "a list"),
]


@pytest.mark.parametrize(("line", "key", "fix"), BAD_TOML, ids=[b[0] for b in BAD_TOML])
def test_bad_toml_value_exits_2_naming_the_key(line, key, fix, settings, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("VIDCAT_HOME")
    monkeypatch.delenv("VIDCAT_MEDIA_ROOTS")  # the environment would win over the file
    config = tmp_path / "bad.toml"
    config.write_text(line + "\n")
    assert main(["--config", str(config), "status"]) == 2
    err = capsys.readouterr().err
    assert f"setting {key} = " in err and fix in err and str(config) in err, err
    assert "Traceback" not in err


def test_data_root_that_is_a_file_from_toml_or_environment(settings, tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    config = tmp_path / "v.toml"
    config.write_text(f'data_root = "{a_file}"\n')
    monkeypatch.delenv("VIDCAT_HOME")
    assert main(["--config", str(config), "status"]) == 2
    assert "setting data_root" in (err := capsys.readouterr().err) and "is not a directory" in err
    monkeypatch.setenv("VIDCAT_HOME", str(a_file / "below"))
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert "environment variable VIDCAT_HOME" in err and "cannot be created" in err


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc")
def test_data_root_under_proc_names_the_setting(settings, capsys, monkeypatch):
    monkeypatch.setenv("VIDCAT_HOME", "/proc/vidcat")
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert "data_root" in err and "VIDCAT_HOME" in err and "Traceback" not in err


def test_batch_size_option_zero_is_refused(settings, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["backfill", "--batch-size", "0"])
    assert exit_.value.code == 2
    assert "--batch-size: must be a whole number >= 1" in capsys.readouterr().err


def test_overrides_in_code_are_checked_too(settings):
    with pytest.raises(ConfigError, match="batch_size"):
        settings.with_overrides(batch_size=2.5)
    assert settings.with_overrides(batch_size=7).batch_size == 7


def test_a_new_field_is_checked_from_its_annotation_alone():
    """What another setting needs: an annotation and a default (and a Rule when its range matters)."""

    @dataclasses.dataclass(frozen=True)
    class More:
        teacher_prior_weight: float = 0.5
        teacher_languages: tuple[str, ...] = ("en",)

    assert check_values(More, {"teacher_prior_weight": 1}, {}) == {"teacher_prior_weight": 1.0}
    with pytest.raises(ConfigError, match=r"teacher_prior_weight.*finite"):
        check_values(More, {"teacher_prior_weight": float("nan")}, {"teacher_prior_weight": "x.toml"})
    with pytest.raises(ConfigError, match=r"teacher_languages .* must be a string"):
        check_values(More, {"teacher_languages": ["en", 3]}, {})
    with pytest.raises(ConfigError, match=r"<= 1"):
        check_rule("teacher_prior_weight", 1.5, Rule(min=0, max=1), {})


def test_environment_text_is_read_as_the_declared_type(settings, monkeypatch):
    monkeypatch.setenv("VIDCAT_RAY_ADDRESS", "auto")
    assert load_settings().ray_address == "auto"
    assert isinstance(load_settings().media_roots, tuple)


def test_dagster_yaml_follows_the_settings_unless_taken_over(settings, tmp_path):
    yaml = settings.dagster_home / "dagster.yaml"
    text = yaml.read_text()
    assert DAGSTER_YAML_MARK in text and "max_retries: 2" in text and "enabled: true" in text
    assert "max_retries: 0" in (settings.with_overrides(run_max_retries=0).ensure_dirs() and yaml.read_text())
    # A file written by an earlier version is brought up to date; one a person edited is left alone.
    yaml.write_text("telemetry:\n  enabled: false\nrun_queue:\n  max_concurrent_runs: 2\n")
    settings.ensure_dirs()
    assert "run_retries" in yaml.read_text()
    yaml.write_text("run_queue:\n  max_concurrent_runs: 8\n")
    settings.ensure_dirs()
    assert yaml.read_text() == "run_queue:\n  max_concurrent_runs: 8\n"


def test_defaults_pass_their_own_rules():
    assert load_settings.__module__ == "ml.config"
    Settings()  # constructing never validates; the defaults must pass the rules
    from ml.config import RULES, _validated

    _validated(Settings(data_root=Path.cwd()))
    assert set(RULES) <= {f.name for f in dataclasses.fields(Settings)}
