"""The scene stage on catalog data with the session's trained student: a batch segmented, a video that
cannot be is recorded while the rest goes on, a re-run replaces, and no certified threshold means no
category (never an invented one)."""

from __future__ import annotations

import numpy as np
import pytest

from ml.catalog.store import insert_rows
from tests.conftest import registry_rows

pytestmark = pytest.mark.slow


def _student(pipeline):
    from ml.catalog.model_registry import latest_model
    from ml.catalog.store import Catalog

    return latest_model(Catalog(pipeline.data_root / "catalog.duckdb"), "visual_model")


def _stored_videos(pipeline, n: int):
    from ml.frames.embedding_store import iter_videos, list_shards

    shards = list_shards(pipeline.data_root / "embeddings", "efficientnet-lite0")
    return [v for _, v in zip(range(n), (v for v in iter_videos(shards) if v.n_frames >= 4), strict=False)]


def test_a_batch_is_segmented_and_an_unsegmentable_video_is_recorded(pipeline, settings, catalog):
    from ml.catalog.segments import current_segments
    from ml.frames.embedding_store import shard_path, write_shard
    from ml.segments.certification import NO_THRESHOLD
    from ml.segments.stage import segment_batch

    record = _student(pipeline)
    a, b = _stored_videos(pipeline, 2)
    # Two videos' real frames, joined into one longer video of two scenes, and one video without a frame
    # or a known duration: it cannot be cut into scenes.
    joined = (
        np.concatenate([a.timestamps, b.timestamps + a.timestamps[-1] + 1]),
        np.vstack([a.embeddings, b.embeddings]),
    )
    registry_rows(catalog, 3)
    with catalog.transaction() as con:
        insert_rows(
            con, "batch_members", ["video_id", "batch_id", "seq"], [(f"v{i}", "b00000001", i) for i in (1, 2, 3)]
        )
    write_shard(
        shard_path(settings.embeddings_dir, settings.image_encoder, "b00000001"),
        [
            ("v1", *joined),
            ("v2", b.timestamps, b.embeddings),
            ("v3", np.zeros(0), np.zeros((0, a.embeddings.shape[1]))),
        ],
        encoder=settings.image_encoder,
    )
    for _ in range(2):  # the same batch twice: the same rows
        result = segment_batch(catalog, settings, record, "b00000001")
        assert (result.videos, result.segmented) == (3, 2)
        assert [(f.video_id, f.stage) for f in result.failures] == [("v3", "segments")]
        assert catalog.scalar("SELECT count(*) FROM segment_predictions") == result.scenes
    failure = catalog.query("SELECT stage, error_class, message FROM failures WHERE video_id = 'v3'")
    assert failure == [("segments", "ValueError", "a video without frames or duration has no scenes")]
    scenes = current_segments(catalog, ["v1", "v2", "v3"])
    assert set(scenes) == {"v1", "v2"}
    assert scenes["v1"][0]["start_s"] == 0.0 and len(scenes["v1"]) >= 2  # the join is a boundary
    # This catalog certified no scene threshold: the scenes carry scores and say why they have no category.
    assert result.thresholds_version is None and result.with_category == 0 and result.breaks == 0
    assert {s["abstained"] for ss in scenes.values() for s in ss} == {NO_THRESHOLD}
    assert catalog.scalar("SELECT count(*) FROM segment_predictions WHERE scores IS NULL") == 0
