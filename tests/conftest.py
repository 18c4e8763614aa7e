"""Shared fixtures: an isolated data root per test, its catalog, and real generated videos."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
REAL_CLIPS = SHARED_DATA / "real_clips"

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

needs_real_clips = pytest.mark.skipif(not REAL_CLIPS.is_dir(), reason="../shared/data/real_clips is absent")
needs_shared_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is absent")


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """Settings on a fresh data root; media roots: the root's media/ and inbox/, plus the real clips."""
    from ml.config import load_settings

    root = tmp_path / "vidcat"
    monkeypatch.setenv("VIDCAT_HOME", str(root))
    roots = [root / "media", root / "inbox"] + ([REAL_CLIPS] if REAL_CLIPS.is_dir() else [])
    monkeypatch.setenv("VIDCAT_MEDIA_ROOTS", os.pathsep.join(str(r) for r in roots))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster_home"))
    monkeypatch.chdir(tmp_path)  # no repo vidcat.toml: tests state the settings they rely on
    return load_settings(batch_size=4, batch_max_wait_s=60).ensure_dirs()


@pytest.fixture
def catalog(settings):
    from ml.catalog import open_catalog

    return open_catalog(settings.catalog_path)


@pytest.fixture(scope="session")
def ws():
    from ml.taxonomy import default_working_set

    return default_working_set()


def make_video(
    path: Path,
    categories=("533",),
    duration_s: float = 3.0,
    fps: int = 10,
    container: str = ".mp4",
    codec: str = "libx264",
    size=(96, 64),
    rotation: int = 0,
    seed: int = 0,
) -> Path:
    """A real encoded video of demo-catalog scenes (the product's own renderer)."""
    from ml.demo_catalog import DemoVideo, render_video

    segs, per = [], duration_s / len(categories)
    for i, c in enumerate(categories):
        segs.append((i * per, (i + 1) * per, c))
    video = DemoVideo(
        video_id=f"t-{seed:05d}",
        categories=list(categories),
        segments=segs,
        language="en",
        title=None,
        description=None,
        text_kind="none",
        container=container,
        codec=codec,
        width=size[0],
        height=size[1],
        fps=fps,
        duration_s=duration_s,
        rotation=rotation,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    render_video(video, path)
    return path


@pytest.fixture
def video_factory(settings):
    """Make videos under the media root: ``video_factory("a.mp4", categories=("216",))``."""
    counter = iter(range(10_000))

    def _make(name: str, **kwargs) -> Path:
        kwargs.setdefault("seed", next(counter))
        return make_video(settings.media_dir / name, **kwargs)

    return _make
