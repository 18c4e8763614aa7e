"""Engines: the Ray engine gives the local engine's shard, failures and visual scores; a hung decoder is killed."""

from __future__ import annotations

import dataclasses
import os
import secrets
import time

import numpy as np
import pytest

from ml.engines.local import Engine, LocalEngine, engine_from_settings, ray_address_of
from tests.conftest import make_video
from tests.ml.conftest import TINY_STUDENT

CATEGORIES = ["533", "216"]


def test_no_address_means_the_local_engine(settings):
    for address in (None, "", "  ", "none"):
        s = settings.with_overrides(ray_address=address)
        assert ray_address_of(s) is None
        with engine_from_settings(s) as engine:
            assert isinstance(engine, LocalEngine) and isinstance(engine, Engine)
    assert ray_address_of(settings.with_overrides(ray_address=" ray://head:10001 ")) == "ray://head:10001"


# ---------------------------------------------------------------------------------------------------
# Ray against local, on real generated videos


@pytest.fixture(scope="module")
def ray_cluster(one_ray_at_a_time):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        # Token auth, Ray's default for a local cluster, with a throwaway token rather than one written to
        # ~/.ray; set before ray is imported, which caches the mode.
        mp.setenv("RAY_AUTH_MODE", "token")
        mp.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
        yield from _ray_session(pytest.importorskip("ray"))


def _ray_session(ray):
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        namespace="vidcat-test",
        object_store_memory=200 * 1024 * 1024,
        logging_level="warning",
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A data root shared by this module's tests (the encoder is exported once) and a batch with bad files."""
    from ml.config import load_settings

    tmp = tmp_path_factory.mktemp("engine")
    root = tmp / "vidcat"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)  # no repository vidcat.toml
        for name in ("VIDCAT_CONFIG", "VIDCAT_RAY_ADDRESS", "VIDCAT_MEDIA_ROOTS"):
            mp.delenv(name, raising=False)
        settings = load_settings(data_root=root, decode_timeout_s=20).ensure_dirs()
    media = settings.media_dir
    specs = [
        ("a.mp4", {"categories": ("533",), "duration_s": 4.0}),
        ("b.webm", {"categories": ("216",), "codec": "libvpx-vp9", "container": ".webm", "duration_s": 3.0}),
        ("c.mp4", {"categories": ("533", "216"), "duration_s": 5.0, "rotation": 90}),
        ("d.mkv", {"categories": ("216",), "container": ".mkv", "duration_s": 3.0}),
        ("e.mp4", {"categories": ("533",), "duration_s": 2.0, "fps": 25}),
        ("f.mp4", {"categories": ("216",), "duration_s": 3.0, "size": (160, 90)}),
        ("g.mp4", {"categories": ("533",), "duration_s": 3.0}),
        ("h.mp4", {"categories": ("216",), "duration_s": 4.0}),
    ]
    videos = []
    for seed, (name, kwargs) in enumerate(specs):
        videos.append((f"v-{name.split('.')[0]}", str(make_video(media / name, seed=seed, **kwargs))))
    broken = media / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
    (media / "empty.mp4").write_bytes(b"")
    videos += [("v-broken", str(broken)), ("v-empty", str(media / "empty.mp4")), ("v-missing", str(media / "no.mp4"))]
    labels = {
        vid: np.array([c in kw["categories"] for c in CATEGORIES], np.float32)
        for (vid, _), (_, kw) in zip(videos, specs, strict=False)
    }
    return settings, videos, labels


def _shard_content(path) -> dict[str, tuple[np.ndarray, bytes]]:
    from ml.frames.embedding_store import iter_videos

    return {v.video_id: (v.timestamps, v.embeddings.tobytes()) for v in iter_videos(path, dequantized=False)}


def _failures(result) -> dict[str, str]:
    return {f.video_id: f.error_class for f in result.failures}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`training_step` returned `None`")  # a last training batch of one video
def test_ray_engine_gives_the_local_shard_failures_and_scores(ray_cluster, world, tmp_path):
    from ml.engines.ray_engine import RayEngine
    from ml.frames.embedding_store import read_metadata
    from ml.visual.meta import meta_vector
    from ml.visual.network import VisualTrainConfig
    from ml.visual.training import train_visual_model

    settings, videos, labels = world
    local_settings = settings.with_overrides(data_root=tmp_path / "local")
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "models").symlink_to(settings.models_dir)  # the exported encoder, not a second export
    with LocalEngine() as local:
        expected = local.embed_batch("b00000001", videos, local_settings)
    with RayEngine("auto") as engine:
        got = engine.embed_batch("b00000001", videos, settings)

        assert got.shard.parent.parent == settings.embeddings_dir and got.shard.name == expected.shard.name
        assert (
            (got.videos, got.embedded, got.frames)
            == (expected.videos, expected.embedded, expected.frames)
            == (11, 8, expected.frames)
        )
        assert got.max_grid_error_s == expected.max_grid_error_s
        assert (
            _failures(got)
            == _failures(expected)
            == {"v-broken": "DecodeError", "v-empty": "EmptyFile", "v-missing": "MissingFile"}
        )
        assert {f.video_id: f.message for f in got.failures} == {f.video_id: f.message for f in expected.failures}
        ours, theirs = _shard_content(got.shard), _shard_content(expected.shard)
        assert sorted(ours) == sorted(theirs) == sorted(labels)
        for vid, (timestamps, codes) in theirs.items():
            assert np.array_equal(ours[vid][0], timestamps), vid
            assert ours[vid][1] == codes, f"{vid}: quantized embeddings differ"
        assert read_metadata(got.shard) == read_metadata(expected.shard)

        # A real (tiny) student trained on the shard, then scored by both engines.
        meta = {
            vid: meta_vector({"language": "en", "duration_s": 4.0, "has_audio": i % 2 == 0})
            for i, vid in enumerate(sorted(labels)[:5])
        }
        config = dataclasses.replace(
            TINY_STUDENT, batch_size=2, eval_batch_size=4, max_epochs=2, patience=5, lr=VisualTrainConfig().lr
        )
        model = train_visual_model([expected.shard], labels, meta, CATEGORIES, config, tmp_path / "visual")
        with LocalEngine() as local:
            local_scores = {
                s.video_id: s for s in local.score_visual("b00000001", model.model_dir, [expected.shard], meta)
            }
        same_shard = {s.video_id: s for s in engine.score_visual("b00000001", model.model_dir, [expected.shard], meta)}
        own_shard = {s.video_id: s for s in engine.score_visual("b00000001", model.model_dir, [got.shard], meta)}
    assert sorted(local_scores) == sorted(same_shard) == sorted(own_shard) == sorted(labels)
    for vid, s in local_scores.items():
        assert s.scores.shape == (len(CATEGORIES),)
        assert same_shard[vid].n_frames == own_shard[vid].n_frames == s.n_frames
        assert np.array_equal(same_shard[vid].scores, s.scores), vid
        # rows in another completion order can batch a video with others: identical up to float reassociation
        assert np.abs(own_shard[vid].scores - s.scores).max() <= 1e-6, vid


@pytest.mark.slow
def test_a_hung_decoder_is_killed_and_the_batch_goes_on(ray_cluster, world):
    from ml.engines.ray_engine import RayEngine
    from ml.frames.sampler import sample_frames

    settings, videos, _ = world
    # The deadline leaves a healthy video room on a loaded machine (2 s timed one out beside other jobs).
    settings = settings.with_overrides(decode_timeout_s=6.0, ray_address="auto", extra={"ray": {"grace_s": 3.0}})

    def hang_on_b(path, options):  # a hang inside C cannot see the cooperative deadline: sleep ignores it too
        if path.endswith("b.webm"):
            time.sleep(3600)
        return sample_frames(path, options)

    started = time.monotonic()
    with engine_from_settings(settings, sample_fn=hang_on_b) as engine:
        assert isinstance(engine, RayEngine) and engine.grace_s == 3.0
        result = engine.embed_batch("b00000002", videos[:4], settings)
    assert time.monotonic() - started < 40
    assert _failures(result) == {"v-b": "DecodeTimeout"}
    assert "the decoder was killed" in result.failures[0].message
    assert result.embedded == 3 and result.shard.is_file()
