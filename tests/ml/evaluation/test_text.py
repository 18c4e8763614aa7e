import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from bench.hash_encoder import HashEncoder as BaseHashEncoder
from ml.evaluation import text as te
from ml.text import features as tf

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "youtube_trending"
HEADER = [
    "video_id",
    "title",
    "publishedAt",
    "channelId",
    "channelTitle",
    "categoryId",
    "trending_date",
    "tags",
    "view_count",
    "likes",
    "dislikes",
    "comment_count",
    "thumbnail_link",
    "comments_disabled",
    "ratings_disabled",
    "description",
]
WORDS = {
    "17": {"en": "football match goal league", "fr": "football match but ligue", "de": "fußball spiel tor liga"},
    "10": {
        "en": "official music video song",
        "fr": "clip officiel musique chanson",
        "de": "offizielles musikvideo lied",
    },
    "20": {
        "en": "gameplay minecraft gaming stream",
        "fr": "gameplay minecraft jeu stream",
        "de": "gameplay minecraft spiel stream",
    },
}


class HashEncoder(BaseHashEncoder):
    name = "hash-eval"
    dim = 24


def write_country(folder: Path, cc: str, lang: str, n: int, shared_ids=()):
    rng = np.random.default_rng(sum(map(ord, cc)))
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    w.writerow(HEADER)
    ids = [f"{cc}{i:04d}" for i in range(n)] + list(shared_ids)
    for k, vid in enumerate(ids):
        cat = ["17", "10", "20"][k % 3]
        title = " ".join(rng.choice(WORDS[cat][lang].split(), 3)) + f" {k}"
        row = [
            vid,
            title,
            "",
            "",
            "",
            cat,
            "2020-08-12T00:00:00Z",
            "[None]",
            "1",
            "1",
            "0",
            "0",
            "",
            "False",
            "False",
            "line one\nline two",
        ]
        w.writerow(row)
        if k % 4 == 0:  # trending again the next day: a duplicate row to deduplicate
            w.writerow([*row[:6], "2020-08-13T00:00:00Z", *row[7:]])
    text = buf.getvalue() + '"CUT","half a row, cut off in the mid'
    (folder / f"{cc}{te.CSV_SUFFIX}").write_text(text, encoding="utf-8")
    (folder / f"{cc}{te.CATEGORY_SUFFIX}").write_text(
        json.dumps(
            {
                "items": [
                    {"id": "10", "snippet": {"title": "Music"}},
                    {"id": "17", "snippet": {"title": "Sports"}},
                    {"id": "20", "snippet": {"title": "Gaming"}},
                ]
            }
        )
    )


@pytest.fixture()
def folder(tmp_path, monkeypatch):
    write_country(tmp_path, "AA", "en", 60, shared_ids=["XX0001"])
    write_country(tmp_path, "BB", "fr", 60)
    write_country(tmp_path, "CC", "de", 45, shared_ids=["XX0001"])
    monkeypatch.setitem(tf.ENCODERS, "hash-eval", HashEncoder)
    return tmp_path


def test_read_trending_csv_drops_the_cut_off_row(folder):
    rows, stats = te.read_trending_csv(folder / f"AA{te.CSV_SUFFIX}")
    assert stats["dropped_cut_off_last_row"] and stats["dropped_malformed"] == 0
    assert rows[-1]["video_id"] == "XX0001"
    assert rows[0]["description"] == "line one\nline two"


def test_load_trending_deduplicates_and_reports(folder):
    videos, stats = te.load_trending(folder, ["AA", "CC"])
    assert stats["AA"]["videos"] == 61 and stats["CC"]["videos"] == 46
    assert len(videos) == 107
    assert te.available_countries(folder) == ["AA", "BB", "CC"]
    with pytest.raises(te.TrendingDataError, match="countries there"):
        te.load_trending(folder, ["ZZ"])


def test_evaluate_small_folder(folder):
    calls = []
    report = te.evaluate_text_model(
        folder,
        ["AA", "BB"],
        ["CC"],
        encoders=["hash-eval"],
        heads=["logreg"],
        folds=3,
        min_positives=5,
        progress=lambda *a: calls.append(a),
    )
    json.dumps(report)  # JSON-serialisable, as the CLI prints it
    assert report["data"]["train_videos_removed_as_also_in_test"] == 1
    assert report["data"]["train_videos"] == 120
    systems = report["systems"]
    assert set(systems) == {"majority", "tfidf", "hash-eval/logreg", "hash-eval/logreg/all"}
    cc = {name: s["per_country"]["CC"] for name, s in systems.items()}
    assert all(m["n"] == 46 for m in cc.values())
    assert cc["majority"]["accuracy"] < 0.5
    assert cc["hash-eval/logreg/all"]["accuracy"] > 0.8  # in-language training: easy
    assert cc["tfidf"]["accuracy"] > cc["majority"]["accuracy"]  # shared words: gameplay, minecraft
    assert "pseudo_labels" in systems["hash-eval/logreg"]
    assert "| hash-eval/logreg |" in report["table_markdown"]
    assert any(stage.startswith("embed") for stage, _, _ in calls)


def test_budgets_train_teachers_on_shares_of_a_sample_with_and_without_the_prior(folder):
    report = te.evaluate_text_model(
        folder,
        ["AA", "BB"],
        ["CC"],
        encoders=["hash-eval"],
        systems=["encoder"],
        folds=3,
        min_positives=4,
        budgets=[1.0, 0.5],
        budget_videos=60,
    )
    systems = report["systems"]
    assert report["budgets"] == {"sample": 60, "shares": [1.0, 0.5]}
    assert {"hash-eval/prior@0", "hash-eval/logreg@1", "hash-eval/prior@1", "hash-eval/prior@0.5"} <= set(systems)
    assert all(s["per_country"]["CC"]["n"] == 46 for s in systems.values() if "error" not in s)
    # The full share sees twice the titles of the half share.
    assert "60 AA/BB titles" in systems["hash-eval/prior@1"]["description"]
    assert "30 AA/BB titles" in systems["hash-eval/prior@0.5"]["description"]


def test_embedding_cache_is_reused_across_runs(folder, tmp_path, monkeypatch):
    encoded = []

    class Counting(HashEncoder):
        def encode(self, texts):
            encoded.extend(texts)
            return super().encode(texts)

    monkeypatch.setitem(tf.ENCODERS, "hash-eval", Counting)
    kw = {
        "encoders": ["hash-eval"],
        "systems": ["encoder"],
        "folds": 3,
        "min_positives": 5,
        "cache_dir": tmp_path / "cache",
    }
    first = te.evaluate_text_model(folder, ["AA"], ["CC"], **kw)
    n_first = len(encoded)
    second = te.evaluate_text_model(folder, ["AA"], ["CC"], **kw)
    assert n_first > 0 and len(encoded) == n_first
    assert first["systems"] == second["systems"]


def test_evaluate_rejects_bad_arguments(folder):
    with pytest.raises(ValueError):
        te.evaluate_text_model(folder, [], ["CC"])
    with pytest.raises(ValueError, match="unknown systems"):
        te.evaluate_text_model(folder, ["AA"], ["CC"], systems=["bert"])


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/youtube_trending is not on this machine")
def test_real_files_parse():
    rows, stats = te.read_trending_csv(SHARED / f"GB{te.CSV_SUFFIX}")
    assert stats["dropped_cut_off_last_row"] and stats["rows"] > 500
    assert {r["categoryId"] for r in rows} <= set(te.category_names(SHARED, ["GB"]))


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/youtube_trending is not on this machine")
def test_real_data_small_evaluation():
    # Fast encoder and a short budget keep this under a minute; the full run is documented.
    report = te.evaluate_text_model(
        SHARED,
        ["GB", "FR"],
        ["DE"],
        encoders=["use-multilingual-v3"],
        max_chars=300,
        systems=["majority", "tfidf", "encoder"],
        folds=3,
    )
    de = {name: s["per_country"]["DE"] for name, s in report["systems"].items()}
    assert de["majority"]["n"] > 300
    assert de["use-multilingual-v3/logreg"]["accuracy"] > de["majority"]["accuracy"] + 0.1
    assert de["tfidf"]["accuracy"] > de["majority"]["accuracy"]
