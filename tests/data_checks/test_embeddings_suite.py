"""Frame-embedding summaries and their suite: NaN and wrong dim block, odd counts and norms warn."""

from __future__ import annotations

import numpy as np
import pytest

from data_checks.embeddings_suite import summarize_embeddings, validate_frame_embeddings

D = 16


def shard(n_videos: int = 3, seed: int = 0):
    """(video_id, timestamps, embeddings) at 1 fps with norms around 20, durations to match."""
    rng = np.random.default_rng(seed)
    records, durations = [], {}
    for i in range(n_videos):
        n = 5 + i
        emb = rng.normal(0, 1, (n, D)).astype(np.float32)
        emb *= 20.0 / np.linalg.norm(emb, axis=1, keepdims=True)
        records.append((f"v{i}", np.arange(n, dtype=np.float64), emb))
        durations[f"v{i}"] = float(n) - 0.5
    return records, durations


def validate(summary, **kw):
    return validate_frame_embeddings(summary, dim=D, fps=1.0, max_frames=300, **kw)


def failed(outcome) -> dict[tuple[str, str | None], str]:
    return {(f.name, f.column): f.severity for f in outcome.failed}


def test_summary_rows_and_clean_shard_passes():
    records, durations = shard()
    summary = summarize_embeddings(iter(records), durations)
    assert summary["n_frames"].tolist() == [5, 6, 7]
    assert summary["dim"].tolist() == [D] * 3
    assert np.allclose(summary["norm_mean"], 20.0, atol=1e-3)
    outcome = validate(summary)
    assert outcome.passed, outcome.summary()


def test_shard_reader_records_are_accepted():
    from types import SimpleNamespace

    records, durations = shard()
    objects = [SimpleNamespace(video_id=v, timestamps=t, embeddings=e) for v, t, e in records]
    assert summarize_embeddings(objects, durations).equals(summarize_embeddings(records, durations))


def test_norms_are_read_over_finite_frames_and_nan_never_reaches_a_shard(tmp_path):
    """The suite has no finiteness expectation because a NaN cannot be stored: write_shard refuses it."""
    from ml.frames.embedding_store import write_shard

    records, durations = shard()
    records[1][2][2, 3] = np.nan
    summary = summarize_embeddings(records, durations)
    assert np.isclose(summary.loc[1, "norm_min"], 20.0, atol=1e-3)  # over the finite frames
    with pytest.raises(ValueError, match="NaN or inf"):
        write_shard(tmp_path / "s.parquet", records, encoder="test")


def test_wrong_dim_blocks():
    records, durations = shard()
    records[0] = ("v0", records[0][1], records[0][2][:, :8])
    outcome = validate(summarize_embeddings(records, durations))
    assert failed(outcome) == {("expect_column_values_to_be_in_set", "dim"): "critical"}


def test_empty_video_blocks():
    records, durations = shard()
    records[2] = ("v2", np.empty(0), np.empty((0, D), dtype=np.float32))
    outcome = validate(summarize_embeddings(records, durations))
    assert ("expect_column_values_to_be_between", "n_frames") in failed(outcome)
    assert outcome.blocking_failed


def test_frame_count_against_duration_and_cap_warns():
    records, durations = shard()
    durations["v0"] = 60.0  # 5 frames for a minute at 1 fps: decoding stopped early
    durations["v1"] = 1.0  # 6 frames for one second: too many
    durations["v2"] = None  # unknown duration: not judged
    outcome = validate(summarize_embeddings(records, durations))
    assert outcome.severity == "warning"
    assert set(failed(outcome)) == {
        ("expect_column_pair_values_a_to_be_greater_than_b", "n_frames_max"),
        ("expect_column_pair_values_a_to_be_greater_than_b", "n_frames"),
    }
    # A long video capped at max_frames is consistent.
    capped = summarize_embeddings(records[:1], {"v0": 4000.0})
    assert validate_frame_embeddings(capped, dim=D, fps=1.0, max_frames=5).passed


def test_norms_out_of_range_warn():
    records, durations = shard()
    records[0][2][:] *= 0.01  # near-black frames
    outcome = validate(summarize_embeddings(records, durations), norm_range=(5.0, 60.0))
    assert failed(outcome) == {("expect_column_values_to_be_between", "norm_min"): "warning"}
