"""The end-to-end benchmark's set-up: what it measures must be the production configuration."""

from __future__ import annotations

import dataclasses

import pytest

from bench.end_to_end import backfill_sizes, floor_videos, production_batching
from ml.config import Settings, load_settings
from ml.demo.catalog import SMALL_CATALOG_SETTINGS


def test_backfill_sizes_parse_and_default(monkeypatch):
    monkeypatch.delenv("VIDCAT_BENCH_E2E_VIDEOS", raising=False)
    assert backfill_sizes() == [40, 160]
    monkeypatch.setenv("VIDCAT_BENCH_E2E_VIDEOS", "12, 30")
    assert backfill_sizes() == [12, 30]


@pytest.mark.parametrize("raw", ["", "forty", "40,0", "-3"])
def test_backfill_sizes_refuse_nonsense(monkeypatch, raw):
    monkeypatch.setenv("VIDCAT_BENCH_E2E_VIDEOS", raw)
    with pytest.raises(ValueError, match="VIDCAT_BENCH_E2E_VIDEOS"):
        backfill_sizes()


def test_the_floor_runs_over_all_of_the_last_backfill_unless_told_fewer(monkeypatch):
    monkeypatch.delenv("VIDCAT_BENCH_E2E_FLOOR_VIDEOS", raising=False)
    assert floor_videos(2000) == 2000
    monkeypatch.setenv("VIDCAT_BENCH_E2E_FLOOR_VIDEOS", "200")
    assert floor_videos(2000) == 200 and floor_videos(160) == 160
    for raw in ("0", "two hundred"):
        monkeypatch.setenv("VIDCAT_BENCH_E2E_FLOOR_VIDEOS", raw)
        with pytest.raises(ValueError, match="VIDCAT_BENCH_E2E_FLOOR_VIDEOS"):
            floor_videos(2000)


def test_production_batching_keeps_the_models_settings_and_batches_as_production(tmp_path, monkeypatch):
    monkeypatch.delenv("VIDCAT_HOME", raising=False)  # the environment would override the file's data root
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    small = load_settings_from_text(tmp_path, SMALL_CATALOG_SETTINGS)
    config = production_batching(tmp_path, tmp_path / "vidcat")
    settings = load_settings(config)
    for key in ("batch_size", "batch_max_wait_s", "sensor_interval_s"):
        assert getattr(settings, key) == defaults[key]
    assert settings.batch_size != small.batch_size  # the demo's small batches are not what is measured
    # what the trained models were built with is unchanged
    for key in ("pseudo_label_precision", "visual_max_epochs", "threshold_min_support"):
        assert getattr(settings, key) == getattr(small, key)
    assert settings.data_root == tmp_path / "vidcat"


def load_settings_from_text(folder, text: str) -> Settings:
    path = folder / "small.toml"
    path.write_text(f'data_root = "{folder / "small"}"\n' + text)
    return load_settings(path)
