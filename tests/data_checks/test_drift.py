"""Drift features and the Evidently report: a shifted batch is flagged, a reference-like one is not."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from data_checks.drift_features import (
    apply_pca,
    combine_features,
    embedding_drift_features,
    fit_pca,
    mean_pool,
    prediction_rate_features,
    probe_features,
    text_features,
    top_categories,
)

D = 32
LANGS = ["en", "fr", "de"]
_BASIS = np.random.default_rng(42).normal(0, 1, (D, D))


def make_batch(n: int, seed: int, shift: float = 0.0, languages=("en", "fr", "de", None), p=(0.5, 0.2, 0.2, 0.1)):
    """Synthetic batch: frame embeddings (correlated dims), text, probe facts and emitted categories."""
    rng = np.random.default_rng(seed)
    ids = [f"s{seed}-{i}" for i in range(n)]
    records = []
    for vid in ids:
        k = int(rng.integers(3, 9))
        emb = (rng.normal(0, 1, (k, D)) @ _BASIS) * 0.1 + 2.0 + shift
        records.append((vid, np.arange(k, dtype=np.float64), emb.astype(np.float32)))
    text = pd.DataFrame(
        {
            "video_id": ids,
            "language": rng.choice(np.array(languages, dtype=object), n, p=list(p)),
            "has_text": rng.random(n) < 0.7,
            "text_chars": rng.integers(0, 400, n),
        }
    )
    probe = pd.DataFrame(
        {
            "video_id": ids,
            "duration_s": rng.gamma(2.0, 60.0, n),
            "fps": rng.choice([24.0, 25.0, 30.0], n),
            "width": rng.choice([640, 1280], n),
            "height": rng.choice([360, 720], n),
            "bit_rate": rng.gamma(2.0, 1e6, n),
        }
    )
    preds = pd.DataFrame(
        [(v, c) for v in ids for c, rate in (("1", 0.4), ("2", 0.2), ("3", 0.1)) if rng.random() < rate],
        columns=["video_id", "category_id"],
    )
    return records, text, probe, preds, ids


def features(batch, pca, categories) -> pd.DataFrame:
    records, text, probe, preds, ids = batch
    return combine_features(
        embedding_drift_features(records, pca),
        text_features(text, LANGS),
        probe_features(probe),
        prediction_rate_features(preds, ids, categories),
    )


@pytest.fixture(scope="module")
def reference():
    batch = make_batch(300, seed=1)
    _, matrix, _ = mean_pool(batch[0])
    pca = fit_pca(matrix, 8)
    categories = top_categories(batch[3], 10)
    return features(batch, pca, categories), pca, categories


def test_pca_is_fixed_json_and_deterministic():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (200, D)) @ _BASIS
    pca = fit_pca(x, 8)
    again = json.loads(json.dumps(pca))
    assert np.allclose(apply_pca(x[:5], again), apply_pca(x[:5], fit_pca(x, 8)))
    assert len(pca["components"]) == 8 and pca["dim"] == D
    assert sorted(pca["explained_variance_ratio"], reverse=True) == pca["explained_variance_ratio"]
    with pytest.raises(ValueError, match="dimension"):
        apply_pca(x[:, :4], pca)


def test_feature_frames_are_modest_and_keyed_by_video(reference):
    ref, _, categories = reference
    assert categories == ["1", "2", "3"]
    assert ref.index.name == "video_id" and len(ref) == 300
    assert 10 <= ref.shape[1] <= 40
    assert set(ref["language"]) <= {*LANGS, "none", "other"}
    assert ref["cat_1"].dtype == bool
    # Every category is a top one here, so the count is the sum of the flags; videos with no prediction stay, at 0.
    assert ref["n_categories"].tolist() == ref[["cat_1", "cat_2", "cat_3"]].sum(axis=1).tolist()
    assert (ref["n_categories"] == 0).sum() > 50


def test_text_features_bucket_unknown_languages():
    df = pd.DataFrame({"video_id": ["a", "b", "c"], "language": ["en", "hi", None], "title": ["t", "", None]})
    out = text_features(df, LANGS)
    assert out["language"].tolist() == ["en", "other", "none"]
    assert out["has_text"].tolist() == [True, False, False]


def test_reference_like_batch_is_not_flagged(reference):
    from data_checks.drift import drift_report

    ref, pca, categories = reference
    summary = drift_report(ref, features(make_batch(100, seed=7), pca, categories), None)
    assert not summary.warning, summary.drifted_columns
    assert summary.share_drifted < 0.15 and summary.n_columns == ref.shape[1]
    assert summary.html_path is None


def test_shifted_batch_is_flagged(reference):
    from data_checks.drift import drift_report

    ref, pca, categories = reference
    shifted = make_batch(100, seed=8, shift=0.5, languages=("hi", "es", "en", None), p=(0.4, 0.4, 0.1, 0.1))
    summary = drift_report(ref, features(shifted, pca, categories), None, warn_share=0.3)
    assert summary.warning and summary.share_drifted >= 0.3
    assert "language" in summary.drifted_columns
    assert any(c.startswith("emb_pc") for c in summary.drifted_columns)
    strengths = [summary.columns[c].strength for c in summary.drifted_columns]
    assert strengths == sorted(strengths, reverse=True) and min(strengths) >= 1
    col = summary.columns["language"]
    assert col.drifted and col.method and col.score < col.threshold  # chi-square p-value
    json.dumps(summary.as_dict())


@pytest.mark.slow
def test_html_and_json_are_written(reference, tmp_path):
    from data_checks.drift import drift_report
    from data_checks.report_retention import report_paths

    ref, pca, categories = reference
    html, js = report_paths(tmp_path / "drift", "b00000001")
    summary = drift_report(ref, features(make_batch(100, seed=9), pca, categories), html)
    summary.write_json(js)
    assert html.stat().st_size > 1_000_000  # the page embeds Evidently's JS bundle
    assert js.stat().st_size < 20_000
    stored = json.loads(js.read_text())
    assert stored["html_path"] == str(html) and stored["n_columns"] == summary.n_columns
