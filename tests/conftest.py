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
    from ml.catalog.store import open_catalog

    return open_catalog(settings.catalog_path)


@pytest.fixture(scope="session")
def ws():
    from ml.taxonomy import default_working_set

    return default_working_set()


def registry_rows(catalog, n: int, start: int = 1, age_s: float = 0.0, registered_at=None) -> None:
    """``n`` registry rows (v<start>...) without files: for batching and sensor logic, which never open them."""
    import datetime as dt

    from ml.catalog.store import insert_rows

    at = registered_at or dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=age_s)
    with catalog.transaction() as con:
        insert_rows(
            con,
            "videos",
            ["video_id", "seq", "uri", "registered_at", "origin"],
            [(f"v{i}", i, f"/m/v{i}.mp4", at, "test") for i in range(start, start + n)],
        )


def video_rows(con, video_ids, at, language: str = "en") -> None:
    """Registry rows for ``video_ids`` (in order, uploaded and registered ``at``) inside the caller's
    transaction ``con``, for catalogs whose labels and embeddings the test writes next."""
    from ml.catalog.store import insert_rows

    insert_rows(
        con,
        "videos",
        ["video_id", "seq", "uri", "registered_at", "origin", "language", "uploaded_at"],
        [(v, i, f"/m/{v}.mp4", at, "test", language, at) for i, v in enumerate(video_ids)],
    )


def result_rows(catalog, video_ids: list[str], version: str = "f1", batch_id: str | None = None) -> None:
    """Fusion's per-video outcome rows (classified, no category) under ``version``, as a finished run leaves them."""
    import datetime as dt

    from ml.catalog.store import insert_rows

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with catalog.transaction() as con:
        insert_rows(
            con,
            "video_results",
            ["video_id", "model_version", "batch_id", "status", "n_categories", "classified_at"],
            [(v, version, batch_id, "classified", 0, now) for v in video_ids],
        )


def make_video(path: Path, **kwargs) -> Path:
    """A real encoded video of demo-catalog scenes (the product's own renderer)."""
    from ml.demo.catalog import render_clip

    return render_clip(path, **kwargs)


@pytest.fixture
def video_factory(settings):
    """Make videos under the media root: ``video_factory("a.mp4", categories=("216",))``."""
    counter = iter(range(10_000))

    def _make(name: str, **kwargs) -> Path:
        kwargs.setdefault("seed", next(counter))
        return make_video(settings.media_dir / name, **kwargs)

    return _make


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory):
    """A 180-video demo catalog through every asset (slow tests share it; built once per session)."""
    from tests.pipeline import build

    extra = [REAL_CLIPS] if REAL_CLIPS.is_dir() else []
    return build(tmp_path_factory.mktemp("pipeline"), videos=180, seed=5, extra_roots=extra)


@pytest.fixture
def pipeline_env(pipeline, monkeypatch):
    """The pipeline's environment for one test (data root, config, media roots, DAGSTER_HOME)."""
    for k, v in pipeline.env.items():
        monkeypatch.setenv(k, v)
    return pipeline


@pytest.fixture(scope="session")
def postgres_server_dsn():
    """One real PostgreSQL server for the session (tests/postgres.py)."""
    from bench.postgres_server import postgres_server

    with postgres_server() as dsn:
        yield dsn


@pytest.fixture
def serving_dsn(postgres_server_dsn, request):
    """A fresh database on the session's server, named after the test."""
    import re

    from bench.postgres_server import fresh_database

    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:50]
    return fresh_database(postgres_server_dsn, name)


@pytest.fixture(scope="module")
def one_ray_at_a_time():
    """Ray runs one local cluster per machine at a time: a module that starts one holds this lock, which
    the other pytest-xdist worker (`make test` runs two) waits on before starting its own."""
    import fcntl
    import tempfile

    with open(Path(tempfile.gettempdir()) / "vidcat-tests-ray.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
