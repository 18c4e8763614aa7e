import datetime as dt
import json

import numpy as np
import pytest

from bench.hash_encoder import HashEncoder as BaseHashEncoder
from ml.text import model as tm

TOPICS = {
    "sport": "football goal match striker league referee stadium",
    "food": "recipe pasta oven chocolate cake kitchen chef",
    "music": "song concert guitar album singer drums lyrics",
}
FILLER = ["today", "new", "video", "best", "week", "watch", "episode", "my", "the"]


class HashEncoder(BaseHashEncoder):
    """Bag of words through fixed random vectors: cheap, deterministic, topic-separable."""

    name = "hash-test"
    dim = 32


def make_data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    cats = [*TOPICS, "rare"]
    texts, y = [], np.zeros((n, len(cats)), np.float32)
    for i in range(n):
        topics = rng.choice(list(TOPICS), size=rng.integers(1, 3), replace=False)
        words = [*rng.choice(FILLER, 3)]
        for t in topics:
            words += list(rng.choice(TOPICS[t].split(), 3))
            y[i, cats.index(t)] = 1
        if i < 3:
            words.append("harpsichord")
            y[i, 3] = 1
        rng.shuffle(words)
        texts.append(" ".join(words))
    y[rng.random(y.shape) < 0.2] = np.nan  # editors judged only some categories
    return texts, y, cats


def _train(texts, y, cats):
    """Per-category heads (what these tests check; the prior head: test_prior.py), seeded, at a fixed time."""
    now = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    return tm.train_text_model(texts, y, cats, encoder=HashEncoder(), head="logreg", seed=0, now=now)


@pytest.fixture(scope="module")
def trained():
    texts, y, cats = make_data()
    return _train(texts, y, cats), texts, y, cats


def test_covers_only_categories_with_enough_positives(trained):
    model, _, _, _ = trained
    assert model.categories == ["sport", "food", "music"]
    assert set(model.uncovered) == {"rare"} and "known positives" in model.uncovered["rare"]
    assert model.covers("food") and not model.covers("rare")


def test_predictions_are_probabilities_and_separate_topics(trained):
    model, _, _, _ = trained
    p = model.predict_proba(["football match goal striker", "pasta recipe oven chef", "guitar concert song"])
    assert p.shape == (3, 3) and p.dtype == np.float32
    assert (p >= 0).all() and (p <= 1).all()
    assert list(p.argmax(axis=1)) == [0, 1, 2]
    assert p[0, 0] > 0.8 and p[0, 1] < 0.2


def test_heldout_scores_are_aligned_and_masked(trained):
    model, texts, _, _ = trained
    assert model.heldout_scores.shape == model.heldout_labels.shape == (len(texts), 3)
    unknown = np.isnan(model.heldout_labels)
    assert np.isnan(model.heldout_scores[unknown]).all()
    assert not np.isnan(model.heldout_scores[~unknown]).any()
    assert model.metrics["macro_average_precision"] > 0.9
    per = model.metrics["per_category"]["sport"]
    assert per["n_pos"] > 50 and per["calibration"] in ("platt", "isotonic")


def test_version_is_timestamp_and_content_hash(trained):
    model, texts, y, cats = trained
    assert model.version.startswith("20240102T030405Z-") and len(model.version) == 25
    assert _train(texts, y, cats).version == model.version
    y2 = y.copy()
    y2[0, 0] = 1 - np.nan_to_num(y2[0, 0])
    assert _train(texts, y2, cats).version != model.version  # one label differs, nothing else


@pytest.mark.parametrize("head", ["logreg", "mlp", "prior"])
def test_save_load_round_trip_gives_identical_predictions(tmp_path, head):
    texts, y, cats = make_data(200, seed=1)
    params = {"epochs": 5, "hidden": 32} if head == "mlp" else None
    model = tm.train_text_model(texts, y, cats, encoder=HashEncoder(), head=head, params=params, folds=3)
    target = model.save(tmp_path / "text_model" / model.version)
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["categories"] == model.categories and manifest["encoder"] == "hash-test"
    assert manifest["dim"] == 32 and manifest["head"] == head and "metrics" in manifest
    assert not any(p.name.startswith(".") for p in target.parent.iterdir())  # no temp dir left behind
    loaded = tm.load_text_model(target, encoder=HashEncoder())
    probe = ["football pasta", "concert drums album", "nothing in common"]
    np.testing.assert_array_equal(loaded.predict_proba(probe), model.predict_proba(probe))
    np.testing.assert_array_equal(loaded.heldout_scores, model.heldout_scores)
    assert loaded.version == model.version and loaded.uncovered == model.uncovered
    with pytest.raises(FileExistsError):
        model.save(target)
    assert tm.latest_version_dir(tmp_path / "text_model") == target


def test_load_rejects_wrong_encoder_and_missing_dir(tmp_path, trained):
    model, _, _, _ = trained
    target = model.save(tmp_path / model.version)

    class Other(HashEncoder):
        name = "other"

    with pytest.raises(ValueError, match="trained on"):
        tm.load_text_model(target, encoder=Other())
    with pytest.raises(FileNotFoundError):
        tm.load_text_model(tmp_path / "nope")


def test_embeddings_of_the_wrong_width_fail_clearly(trained):
    model, _, _, _ = trained
    with pytest.raises(ValueError, match=r"\(n, 32\)"):
        model.predict_proba(np.zeros((2, 7), np.float32))


def test_label_matrix_from_rows():
    y, stats = tm.label_matrix_from_rows(
        ["v1", "v2", "v3"],
        ["a", "b"],
        [("v1", "a", True), ("v2", "b", False), ("v9", "a", True), ("v1", "zz", True)],
        exhaustive=["v1"],
    )
    np.testing.assert_array_equal(np.isnan(y), [[False, False], [True, False], [True, True]])
    assert y[0, 0] == 1 and y[0, 1] == 0 and y[1, 1] == 0
    assert stats == {"used": 2, "unknown_video": 1, "unknown_category": 1}


def test_predict_records_handles_bad_rows(trained):
    model, _, _, _ = trained
    records = [
        {"title": "football match", "description": None, "tags": "goal|league"},
        {"title": "😀😀😀", "description": "!!!"},
        {"title": b"\xff\xfe pasta recipe \xfa", "language": "en"},
        None,
        {"title": "chef cake " * 20_000},
    ]
    out = tm.predict_records(model, records)
    assert [p.has_text for p in out] == [True, False, True, False, True]
    assert out[0].scores.shape == (3,) and out[0].scores.argmax() == 0
    assert out[1].scores is None and out[1].error is None
    assert out[3].scores is None and out[3].error == "TypeError: expected a mapping of video fields, got NoneType"
    assert out[4].text_chars <= model.max_chars


def test_predict_records_isolates_a_failing_text(trained):
    model, _, _, _ = trained

    class Fussy(HashEncoder):
        def encode(self, texts):
            if any("poison" in t for t in texts):
                raise RuntimeError("encoder crashed")
            return super().encode(texts)

    model.encoder = Fussy()
    try:
        out = tm.predict_records(model, [{"title": "football goal"}, {"title": "poison text"}])
    finally:
        model.encoder = HashEncoder()
    # The batch failed, so each text was retried alone: the good one keeps the score it has on its own.
    assert out[0].has_text and out[0].error is None
    np.testing.assert_allclose(out[0].scores, model.predict_proba(["football goal"])[0], atol=1e-6)
    assert not out[1].has_text and out[1].scores is None and "encoder crashed" in out[1].error


def test_bad_arguments():
    texts, y, cats = make_data(60)
    with pytest.raises(ValueError, match="label_matrix"):
        tm.train_text_model(texts, y[:, :2], cats, encoder=HashEncoder())
    with pytest.raises(ValueError, match="head"):
        tm.train_text_model(texts, y, cats, encoder=HashEncoder(), head="svm")
    with pytest.raises(ValueError, match="folds"):
        tm.train_text_model(texts, y, cats, encoder=HashEncoder(), folds=1)


def test_prior_head_covers_every_category_and_learns_from_few_labels():
    """The prior head: a head for every category, even one with 3 positives; one pooled calibrator."""
    texts, y, cats = make_data(300, seed=2)
    few = y.copy()
    few[60:] = np.nan  # editors labelled 60 videos
    model = tm.train_text_model(texts, few, cats, encoder=HashEncoder(), head="prior", folds=3)
    assert model.categories == cats and not model.uncovered
    assert model.params["pooled_calibration"] and model.params["prior_lambda"] in (0.01, 0.03, 0.1, 0.3)
    assert len({json.dumps(c.to_dict()) for c in model.calibrators}) == 1
    p = model.predict_proba(texts[60:])
    truth = np.nan_to_num(y[60:], nan=0.0)
    for j in range(3):  # the topics: ranked far above chance on the 240 videos no editor saw
        order = np.argsort(-p[:, j])
        top = truth[order[: int(truth[:, j].sum())], j].mean()
        assert top > truth[:, j].mean() + 0.2, (cats[j], top)  # precision at R against the base rate
    zero = tm.train_text_model([], np.zeros((0, len(cats)), np.float32), cats, encoder=HashEncoder(), head="prior")
    assert zero.categories == cats and np.isfinite(zero.predict_proba(["football"])).all()
    assert zero.params["min_positives"] is None and zero.params["min_negatives"] is None


def test_prior_head_refuses_label_minimums_rather_than_ignoring_them():
    """A minimum would silently do nothing with the prior head, which scores every category by design."""
    texts, y, cats = make_data(60)
    for kw in ({"min_positives": 8}, {"min_negatives": 8}):
        with pytest.raises(ValueError, match="prior head scores every category"):
            tm.train_text_model(texts, y, cats, encoder=HashEncoder(), head="prior", **kw)
    few = tm.train_text_model(texts, y, cats, encoder=HashEncoder(), head="logreg", min_positives=4, min_negatives=4)
    assert "rare" in few.uncovered and few.params["min_positives"] == 4
