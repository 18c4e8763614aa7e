"""The teacher's zero-shot prior: the taxonomy's own words rank texts above chance with no label."""

from __future__ import annotations

import ast
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from ml.metrics import gap_at_k
from ml.text.prior import (
    category_phrases,
    fit_prior_head,
    max_over_segments,
    packaged_synonyms,
    piece_slots,
    prior_logits,
    prototypes,
)

ROOT = Path(__file__).resolve().parents[3]
TRENDING = ROOT.parent / "shared" / "data" / "youtube_trending"


def test_phrases_are_the_taxonomy_words(ws):
    cats = list(ws.categories)
    phrases = category_phrases(cats, synonyms={})
    assert [p[0] for p in phrases] == [c.name for c in cats]
    assert all(p[1] == " > ".join(c.path) for p, c in zip(phrases, cats, strict=True))
    assert isinstance(packaged_synonyms(), dict)


def test_teacher_modules_never_import_the_demo():
    """Nothing under ml/demo may feed the teacher: no module of ml/text imports it."""
    for path in sorted((ROOT / "ml" / "text").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n == "ml.demo" or n.startswith("ml.demo.") for n in names), f"{path} imports {names}"


def test_fit_recovers_a_category_the_prior_gets_wrong():
    rng = np.random.default_rng(0)
    d, c = 16, 3
    protos = np.eye(c, d, dtype=np.float32)
    x = rng.normal(0, 1, (300, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.zeros((300, c), np.float32)
    y[:, 0] = x[:, 0] > 0.2  # the prior's direction
    y[:, 2] = x[:, 5] > 0.2  # a category whose words point elsewhere
    w0 = fit_prior_head(x, np.full_like(y, np.nan), protos, lam=0.03)
    w = fit_prior_head(x, y, protos, lam=0.03)

    def ap(s, t):
        order = np.argsort(-s)
        hits = t[order]
        return float((np.cumsum(hits) / np.arange(1, len(hits) + 1))[hits > 0].mean())

    assert ap(prior_logits(w, x)[:, 2], y[:, 2]) > ap(prior_logits(w0, x)[:, 2], y[:, 2]) + 0.3
    assert ap(prior_logits(w, x)[:, 0], y[:, 0]) > 0.8


def test_piece_slots_gather_every_piece_of_each_text_once():
    owner = np.array([3, 0, 3, 3, 1, 0])  # text 2 has no segment
    slots = piece_slots(owner, 4)
    assert slots.shape == (4, 3)
    for t in range(4):
        got = sorted(int(i) for i in slots[t] if i < len(owner))
        assert got == sorted(np.flatnonzero(owner == t).tolist())
    assert (slots[2] == len(owner)).all()


def test_a_text_with_segments_is_fitted_as_it_is_scored():
    """The fit's logit of a text is the max over the text and its segments, as max_over_segments scores it."""
    rng = np.random.default_rng(1)
    d, c, n = 12, 3, 120
    protos = np.eye(c, d, dtype=np.float32)
    x = rng.normal(0, 1, (n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    owner = rng.integers(0, n, 200)
    seg = rng.normal(0, 1, (200, d)).astype(np.float32)
    seg /= np.linalg.norm(seg, axis=1, keepdims=True)
    y = np.zeros((n, c), np.float32)
    best = max_over_segments(
        {
            "P": protos,
            "W": np.zeros((c, d), np.float32),
            "beta": np.zeros(c, np.float32),
            "shared": np.array([1.0, 0.0, 0.0], np.float32),
        },
        x,
        seg,
        owner,
    )
    y[:, 1] = best[:, 1] > np.quantile(best[:, 1], 0.8)  # a label only a segment may carry
    w_seg = fit_prior_head(x, y, protos, lam=0.03, seg_emb=seg, seg_owner=owner)
    w_text = fit_prior_head(x, y, protos, lam=0.03)

    def ap(s, t):
        order = np.argsort(-s)
        hits = t[order]
        return float((np.cumsum(hits) / np.arange(1, len(hits) + 1))[hits > 0].mean())

    scored_seg = max_over_segments(w_seg, x, seg, owner)[:, 1]
    scored_text = max_over_segments(w_text, x, seg, owner)[:, 1]
    assert ap(scored_seg, y[:, 1]) > 0.95
    assert ap(scored_seg, y[:, 1]) >= ap(scored_text, y[:, 1])


@pytest.fixture(scope="module")
def encoder():
    from ml.text.features import CachedEncoder, get_encoder

    return CachedEncoder(get_encoder("multilingual-e5-small"))


def _zero_label_gap(encoder, categories, texts, labels) -> tuple[float, float]:
    """GAP@20 of the prior with no label, and of a random ranking of the same texts."""
    w = {
        "P": prototypes(encoder, category_phrases(categories)),
        "W": np.zeros((len(categories), encoder.dim), np.float32),
        "beta": np.zeros(len(categories), np.float32),
        "shared": np.array([1.0, 1.0, -4.0], np.float32),
    }
    s = prior_logits(w, encoder.encode(texts))
    chance = np.mean([gap_at_k(np.random.default_rng(k).random(s.shape), labels, 20) for k in range(5)])
    return float(gap_at_k(s, labels, 20)), float(chance)


@pytest.mark.slow
def test_zero_labels_rank_demo_titles_above_chance(encoder, ws):
    from ml.demo.catalog import plan_catalog  # the test reads demo titles; the model never does

    plans = [v for v in plan_catalog(300, seed=3) if v.text_kind == "full"]
    cats = list(ws.categories)
    index = {c.id: j for j, c in enumerate(cats)}
    y = np.zeros((len(plans), len(cats)), np.float32)
    for i, v in enumerate(plans):
        for c in v.categories:
            y[i, index[c]] = 1
    gap, chance = _zero_label_gap(encoder, cats, [v.title for v in plans], y)
    assert gap > 0.2 and gap > 5 * chance, (gap, chance)


@pytest.mark.slow
@pytest.mark.skipif(not TRENDING.is_dir(), reason="../shared/data/youtube_trending is not beside the project")
def test_zero_labels_rank_trending_titles_above_chance(encoder):
    """YouTube's own categories named by their words: the prior alone ranks other countries' titles."""
    from ml.taxonomy import Category

    names = {}
    for item in json.loads((TRENDING / "US_category_id.json").read_text())["items"]:
        names[item["id"]] = item["snippet"]["title"]
    titles, cat_ids = [], []
    for country in ("DE", "BR", "FR"):
        with (TRENDING / f"{country}_youtube_trending_data.csv").open(encoding="utf-8", errors="replace") as f:
            for i, row in enumerate(csv.DictReader(f)):
                if i >= 200:
                    break
                if row.get("categoryId") in names:
                    titles.append(row["title"])
                    cat_ids.append(row["categoryId"])
    used = sorted(set(cat_ids))
    cats = [Category(c, names[c], (names[c],), None) for c in used]
    y = np.zeros((len(titles), len(used)), np.float32)
    for i, c in enumerate(cat_ids):
        y[i, used.index(c)] = 1
    gap, chance = _zero_label_gap(encoder, cats, titles, y)
    assert gap > 1.6 * chance, (gap, chance)  # measured: 0.150 against 0.075
