"""Streaming data for the visual model, and the metadata encoder."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ml.frames.embedding_store import VideoEmbeddings, write_shard
from ml.visual import data as visual_data
from ml.visual.data import (
    Example,
    ShardStream,
    VisualDataModule,
    binarize,
    collate,
    iter_eval_batches,
    split_ids,
    targets_from_rows,
)
from ml.visual.meta import (
    LANGUAGES,
    META_COLUMNS,
    META_DIM,
    META_FEATURES,
    MISSING_META,
    meta_by_video,
    meta_layout,
    meta_vector,
)
from ml.visual.synthetic import synthetic_catalog

DIM = 8


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    """60 short videos in 6 shards."""
    return synthetic_catalog(
        tmp_path_factory.mktemp("emb"), 60, dim=DIM, n_categories=3, frames=(2, 6), videos_per_shard=10, seed=3
    )


def _count_reads(monkeypatch) -> Counter:
    reads: Counter = Counter()
    real = visual_data.iter_videos

    def counting(path, **kwargs):
        reads[Path(path).name] += 1
        return real(path, **kwargs)

    monkeypatch.setattr(visual_data, "iter_videos", counting)
    return reads


# --- splits and targets -----------------------------------------------------------------------------


def test_split_is_a_fixed_function_of_the_id():
    ids = [f"v{i:04d}" for i in range(2000)]
    train, val = split_ids(ids, 0.2)
    assert set(train).isdisjoint(val) and len(train) + len(val) == len(ids)
    assert 0.17 < len(val) / len(ids) < 0.23
    # Order, duplicates and other videos do not move a video to the other side.
    train2, val2 = split_ids(list(reversed(ids)) + ids[:10] + ["new1", "new2"], 0.2)
    assert set(val) <= set(val2) and set(train) <= set(train2)
    assert split_ids(ids, 0.2, salt="other")[1] != val


def test_targets_from_rows_hard_soft_and_unknown():
    rows = [
        {"video_id": "a", "category_id": "2", "target": 1.0},
        ("a", "9", 0.0),  # a category the model does not cover
        ("b", "1", 0.7),
    ]
    t = targets_from_rows(rows, ["1", "2", "3"])
    np.testing.assert_array_equal(t["a"], [0, 1, 0])
    np.testing.assert_allclose(t["b"], [0.7, 0, 0])
    u = targets_from_rows(rows, ["1", "2", "3"], unknown=np.nan)
    assert np.isnan(u["a"][[0, 2]]).all() and u["a"][1] == 1
    np.testing.assert_array_equal(binarize(u["b"]), [True, False, False])


# --- batches ----------------------------------------------------------------------------------------


def test_collate_pads_to_the_longest_video_with_a_mask():
    rng = np.random.default_rng(0)
    lengths = [3, 1, 5]
    examples = [
        Example(
            f"v{i}", rng.random((n, DIM), dtype=np.float32) + 1, np.full(2, i, np.float32), np.full(4, i, np.float32)
        )
        for i, n in enumerate(lengths)
    ]
    b = collate(examples)
    assert tuple(b.frames.shape) == (3, 5, DIM) and tuple(b.mask.shape) == (3, 5)
    assert b.mask.sum(1).tolist() == lengths and b.n_frames.tolist() == lengths
    for i, n in enumerate(lengths):
        np.testing.assert_array_equal(b.frames[i, :n].numpy(), examples[i].frames)
        assert not b.frames[i, n:].any() and not b.mask[i, n:].any()
    assert b.meta.shape == (3, 4) and b.targets[:, 0].tolist() == [0, 1, 2]

    long = Example("long", np.arange(20, dtype=np.float32)[:, None].repeat(DIM, 1), np.zeros(2), np.zeros(0))
    capped = collate([long], max_frames=5)
    assert capped.mask.shape == (1, 5) and capped.n_frames.tolist() == [20]  # the video's own length
    assert capped.frames[0, :, 0].tolist() == [0, 5, 10, 14, 19]  # evenly spaced, first and last kept


def test_eval_batches_cover_every_video_once_grouped_by_length(tmp_path):
    rng = np.random.default_rng(1)
    lengths = [int(n) for n in rng.integers(1, 30, 37)] + [0]
    records = [
        VideoEmbeddings(f"v{i:02d}", np.arange(n, dtype=np.float32), rng.random((n, DIM)) * 2)
        for i, n in enumerate(lengths)
    ]
    write_shard(tmp_path / "a.parquet", records[:20], encoder="t")
    write_shard(tmp_path / "b.parquet", records[20:], encoder="t")
    batches = list(iter_eval_batches([tmp_path / "a.parquet", tmp_path / "b.parquet"], batch_size=5, length_window=2))
    seen = [v for b in batches for v in b.video_ids]
    assert sorted(seen) == sorted(r.video_id for r in records)
    by_id = dict(zip((r.video_id for r in records), lengths, strict=True))
    for b in batches:
        assert b.n_frames.tolist() == [by_id[v] for v in b.video_ids]
        assert b.mask.sum(1).tolist() == b.n_frames.tolist()
        assert b.frames.shape[1] == max(1, max(b.n_frames))  # padded to its own longest video
    # within each window of 10 videos, batches come out shortest first
    window = [n for b in batches[:2] for n in b.n_frames.tolist()]
    assert window == sorted(window)


# --- the stream -------------------------------------------------------------------------------------


def test_one_epoch_reads_each_shard_once_and_keeps_to_its_split(syn, monkeypatch):
    reads = _count_reads(monkeypatch)
    dm = VisualDataModule(syn.shards, syn.targets, batch_size=4, val_fraction=0.25, shuffle_buffer=7)
    seen = [v for b in dm.train_dataloader() for v in b.video_ids]
    assert reads == Counter({p.name: 1 for p in syn.shards})
    assert sorted(seen) == dm.train_ids and len(set(seen)) == len(seen)
    assert set(seen).isdisjoint(dm.val_ids)
    reads.clear()
    val = [v for b in dm.val_dataloader() for v in b.video_ids]
    assert sorted(val) == dm.val_ids and reads == Counter({p.name: 1 for p in syn.shards})


def test_videos_without_a_target_are_not_trained_on(syn):
    some = dict(list(syn.targets.items())[::3])
    seen = [e.video_id for e in ShardStream(syn.shards, some)]
    assert sorted(seen) == sorted(some)


def test_shuffle_is_seeded_per_epoch(syn):
    def order(epoch: int, seed: int = 0) -> list[str]:
        return [
            e.video_id
            for e in ShardStream(syn.shards, syn.targets, shuffle=True, seed=seed, epoch=epoch, buffer_size=8)
        ]

    assert order(0) == order(0)
    assert order(0) != order(1) and sorted(order(0)) == sorted(order(1))
    assert order(0) != order(0, seed=1)
    dm = VisualDataModule(syn.shards, syn.targets)
    assert dm.train_dataset(epoch=0).shard_order() != dm.train_dataset(epoch=1).shard_order()


def test_workers_split_the_shards_without_overlap(syn, monkeypatch):
    reads = _count_reads(monkeypatch)
    stream = ShardStream(syn.shards, syn.targets, shuffle=True, seed=5)
    per_worker = []
    for worker in range(2):
        monkeypatch.setattr(visual_data, "get_worker_info", lambda w=worker: SimpleNamespace(id=w, num_workers=2))
        per_worker.append({e.video_id for e in stream})
    assert per_worker[0].isdisjoint(per_worker[1])
    assert per_worker[0] | per_worker[1] == set(syn.targets)
    assert reads == Counter({p.name: 1 for p in syn.shards})


def test_metadata_joins_each_video(syn):
    meta = {vid: np.full(3, i, np.float32) for i, vid in enumerate(sorted(syn.targets))}
    for e in ShardStream(syn.shards, syn.targets, meta):
        np.testing.assert_array_equal(e.meta, meta[e.video_id])
        np.testing.assert_array_equal(e.target, syn.targets[e.video_id])
        assert e.frames.dtype == np.float32 and e.frames.shape[1] == DIM


# --- metadata encoder -------------------------------------------------------------------------------


def test_meta_layout_is_fixed_and_complete():
    assert META_DIM == len(META_FEATURES) == meta_layout()["dim"]
    assert MISSING_META.shape == (META_DIM,)
    missing = dict(zip(META_FEATURES, MISSING_META, strict=True))
    for flag in ("lang_unknown", "duration_missing", "fps_missing", "geometry_missing", "upload_time_missing"):
        assert missing[flag] == 1.0
    assert sum(MISSING_META) == 5


def test_meta_vector_values():
    row = {
        "language": "fr-CA",
        "duration_s": 60.0,
        "fps": 30.0,
        "width": 1080,
        "height": 1920,
        "rotation": 0,
        "has_audio": True,
        "uploaded_at": "2024-03-04T06:00:00+00:00",
    }  # a Monday, 06:00 UTC
    v = dict(zip(META_FEATURES, meta_vector(row), strict=True))
    assert v["lang_fr"] == 1 and sum(v[f"lang_{c}"] for c in LANGUAGES) == 1
    assert v["log_duration"] == 0 and v["log_fps"] == 0 and v["log_aspect"] < -1  # portrait
    assert v["has_audio"] == 1 and v["no_audio"] == 0
    assert abs(v["hour_of_day_sin"] - 1) < 1e-6 and abs(v["hour_of_week_cos"] - np.cos(2 * np.pi * 6 / 168)) < 1e-6
    # a display matrix turning a landscape-stored file makes it portrait; unknown language is not 'other'
    turned = dict(zip(META_FEATURES, meta_vector({"width": 1920, "height": 1080, "rotation": -90}), strict=True))
    assert turned["log_aspect"] == v["log_aspect"]
    assert meta_vector({"language": "xx"})[META_FEATURES.index("lang_other")] == 1
    same = meta_vector({**row, "uploaded_at": dt.datetime(2024, 3, 4, 7, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))})
    np.testing.assert_array_equal(same, meta_vector(row))
    assert np.all(np.abs(meta_vector({"duration_s": 1e9, "fps": 1e-6})) <= 4)


def test_meta_vector_tolerates_missing_values():
    nan_row = {
        "language": None,
        "duration_s": float("nan"),
        "fps": None,
        "width": 0,
        "height": 10,
        "has_audio": None,
        "uploaded_at": "not a date",
    }
    np.testing.assert_array_equal(meta_vector(nan_row), MISSING_META)
    pd = pytest.importorskip("pandas")
    row = (
        pd.DataFrame({"duration_s": [pd.NA], "has_audio": [pd.NA], "uploaded_at": [pd.NaT]}, dtype=object)
        .iloc[0]
        .to_dict()
    )
    np.testing.assert_array_equal(meta_vector(row), MISSING_META)
    np.testing.assert_array_equal(meta_vector({"uploaded_at": pd.NA, "language": pd.NA}), MISSING_META)


def test_meta_module_does_not_import_torch():
    code = "import sys, ml.visual.meta; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[3]).returncode == 0


def test_video_facts_feed_the_meta_vector(catalog):
    """The catalog's video facts name real columns, in META_COLUMNS order; they feed meta_by_video directly."""
    from ml.catalog.videos import VIDEO_FACT_COLUMNS, video_facts

    assert VIDEO_FACT_COLUMNS == META_COLUMNS
    with catalog.transaction() as con:
        con.execute(
            "INSERT INTO videos (video_id, seq, uri, language, uploaded_at, registered_at, origin) "
            "VALUES ('a', 1, '/m/a.mp4', 'de', TIMESTAMP '2024-01-01 10:00:00', now(), 'test'), "
            "('b', 2, '/m/b.mp4', NULL, NULL, now(), 'test')"
        )
        con.execute(
            "INSERT INTO video_probe (video_id, duration_s, fps, width, height, rotation, has_audio, "
            "probed_at) VALUES ('a', 12.5, 25, 640, 360, 0, TRUE, now())"
        )
    meta = meta_by_video(video_facts(catalog))
    assert sorted(meta) == ["a", "b"]
    assert list(meta_by_video(video_facts(catalog, ["b"]))) == ["b"]
    assert meta["a"][META_FEATURES.index("lang_de")] == 1 and meta["a"][META_FEATURES.index("has_audio")] == 1
    np.testing.assert_array_equal(meta["b"], MISSING_META)
