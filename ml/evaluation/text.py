"""Real-data check of the text model: YouTube trending videos, train on some countries, test on others.

The task there is YouTube's own category id (one per video), so every system is scored as a
single-label classifier: accuracy and macro-F1 per test country and per detected language. The
question it answers is the one vidcat depends on: does a head trained on English and French editor
labels transfer to German, Spanish, Portuguese and Hindi through the multilingual encoder?

Systems (each trained on the same deduplicated rows):
- ``majority``: the most frequent training category; the floor.
- ``tfidf``: character n-gram (char_wb 2-5) TF-IDF + logistic regression; the no-encoder baseline.
- ``<encoder>/<head>``: vidcat's own TextModel (ml/text/model.py: one calibrated head per category),
  argmax of its calibrated probabilities.
- ``<encoder>/<head>/all``: the same model trained on every country (grouped K-fold over video ids):
  the upper bound a model with in-language labels would reach.

Leakage: a video trending in a train and a test country is removed from training, and the K-fold of
the ``all`` system splits by video id, so no video is ever on both sides.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.errors import InvalidInput, UserFacingError
from ml.text.features import CachedEncoder, TextEncoder, get_encoder, prepare_text

CSV_SUFFIX = "_youtube_trending_data.csv"
CATEGORY_SUFFIX = "_category_id.json"
DEFAULT_SYSTEMS = ("majority", "tfidf", "encoder", "encoder_all")
MIN_LANGUAGE_VIDEOS = 20  # languages with fewer test videos are pooled as 'other'
# e5 costs about 1 ms per token on 2 cores: the production budget (DEFAULT_MAX_CHARS, ~450 tokens) takes
# 10-20 minutes over the 2,093 trending videos, 300 characters (~90 tokens) a few. Measured in
# docs/text-model.md: 300 characters transfer across languages as well as 1,500.
EVAL_MAX_CHARS = 300

Progress = Callable[[str, int, int], None]


class TrendingDataError(UserFacingError, ValueError):
    """The folder is not in the YouTube trending export format; the message says what is missing."""


@dataclass(frozen=True)
class TrendingVideo:
    country: str
    video_id: str
    title: str
    description: str
    tags: str
    category_id: str
    trending_date: str


def available_countries(data_dir: str | Path) -> list[str]:
    return sorted(p.name[: -len(CSV_SUFFIX)] for p in Path(data_dir).glob(f"*{CSV_SUFFIX}"))


def read_trending_csv(path: str | Path) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Rows of one export as dicts, with the cut-off last row dropped.

    The exports end mid-row. The last record is incomplete when the file does not end with a line
    break or ends inside a quoted field (an odd number of quote characters); rows with the wrong
    number of fields are dropped too and counted.
    """
    raw = Path(path).read_bytes().decode("utf-8", errors="replace")
    rows = list(csv.reader(io.StringIO(raw, newline="")))
    if not rows:
        raise TrendingDataError(f"{path} is empty")
    header, body = rows[0], rows[1:]
    for col in ("video_id", "title", "categoryId"):
        if col not in header:
            raise TrendingDataError(f"{path}: no {col!r} column in the header {header[:6]}...")
    cut = bool(body) and (raw.count('"') % 2 == 1 or not raw.endswith(("\n", "\r")))
    if cut:
        body = body[:-1]
    good = [r for r in body if len(r) == len(header)]
    stats = {"rows": len(good), "dropped_cut_off_last_row": cut, "dropped_malformed": len(body) - len(good)}
    return [dict(zip(header, r, strict=True)) for r in good], stats


def category_names(data_dir: str | Path, countries: Iterable[str]) -> dict[str, str]:
    names: dict[str, str] = {}
    for cc in countries:
        p = Path(data_dir) / f"{cc}{CATEGORY_SUFFIX}"
        if p.is_file():
            for item in json.loads(p.read_text(encoding="utf-8")).get("items", []):
                names.setdefault(str(item["id"]), item.get("snippet", {}).get("title", ""))
    return names


def load_trending(data_dir: str | Path, countries: Sequence[str]) -> tuple[list[TrendingVideo], dict[str, Any]]:
    """One row per (country, video id): the latest trending day's version of the video."""
    out: list[TrendingVideo] = []
    stats: dict[str, Any] = {}
    for cc in countries:
        path = Path(data_dir) / f"{cc}{CSV_SUFFIX}"
        if not path.is_file():
            raise TrendingDataError(f"no {path.name} in {data_dir}; countries there: {available_countries(data_dir)}")
        rows, st = read_trending_csv(path)
        latest: dict[str, dict[str, str]] = {}
        for r in rows:
            vid, cat = r.get("video_id", "").strip(), r.get("categoryId", "").strip()
            if not vid or not cat:
                continue
            if vid not in latest or r.get("trending_date", "") >= latest[vid].get("trending_date", ""):
                latest[vid] = r
        stats[cc] = {**st, "videos": len(latest)}
        out.extend(
            TrendingVideo(
                cc,
                vid,
                r.get("title", ""),
                r.get("description", ""),
                r.get("tags", ""),
                r["categoryId"].strip(),
                r.get("trending_date", ""),
            )
            for vid, r in latest.items()
        )
    return out, stats


def text_key(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=16).hexdigest()


def load_embedding_cache(cache_dir: Path, encoder_name: str) -> dict[str, np.ndarray]:
    path = cache_dir / f"{encoder_name}.npz"
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as z:
        return dict(zip(z["keys"].tolist(), z["vectors"], strict=True))


def save_embedding_cache(cache_dir: Path, encoder_name: str, cache: dict[str, np.ndarray]) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{encoder_name}.tmp.npz"
    np.savez(tmp, keys=np.array(list(cache), dtype="U32"), vectors=np.stack(list(cache.values())))
    tmp.replace(cache_dir / f"{encoder_name}.npz")


def _embed(
    encoder: TextEncoder, texts: list[str], progress: Progress, stage: str, cache_dir: Path | None, chunk: int = 64
) -> np.ndarray:
    """Embeddings of ``texts``; with ``cache_dir``, texts embedded by an earlier run are not re-encoded."""
    cache = load_embedding_cache(cache_dir, encoder.name) if cache_dir else {}
    keys = [text_key(t) for t in texts]
    todo = list(dict.fromkeys(k for k in keys if k not in cache))
    by_key = dict(zip(keys, texts, strict=True))
    for i in range(0, len(todo), chunk):
        part = todo[i : i + chunk]
        cache.update(zip(part, encoder.encode([by_key[k] for k in part]), strict=True))
        progress(stage, min(i + chunk, len(todo)), len(todo))
    if cache_dir and todo:
        save_embedding_cache(cache_dir, encoder.name, cache)
    if not keys:
        return np.zeros((0, encoder.dim), np.float32)
    return np.stack([cache[k] for k in keys]).astype(np.float32, copy=False)


def _scores(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, Any]:
    """Accuracy, and macro-F1 over the categories present in this test set's truth."""
    from sklearn.metrics import f1_score

    if not len(y_true):
        return {"n": 0, "accuracy": None, "macro_f1": None}
    labels = sorted(set(y_true))
    f1 = f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    return {
        "n": len(y_true),
        "accuracy": round(float(np.mean(np.asarray(y_true) == np.asarray(y_pred))), 4),
        "macro_f1": round(float(f1), 4),
    }


def _argmax_labels(probs: np.ndarray, classes: Sequence[str], fallback: str) -> list[str]:
    if probs.shape[1] == 0:
        return [fallback] * len(probs)
    return [classes[i] for i in probs.argmax(axis=1)]


@dataclass(frozen=True)
class _Titles:
    """One encoder's embedded titles and the split that every system of a run shares."""

    emb: np.ndarray
    vindex: dict[str, int]
    train_ids: list[str]
    train_y: list[str]
    test_sets: dict[str, list[TrendingVideo]]


@dataclass(frozen=True)
class _Fitting:
    """How every teacher of a run is fitted."""

    folds: int
    min_positives: int
    seed: int
    max_chars: int


def _one_hot(labels: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    col = {c: j for j, c in enumerate(classes)}
    y = np.zeros((len(labels), len(classes)), dtype=np.float32)
    for i, lab in enumerate(labels):
        y[i, col[lab]] = 1.0
    return y


def evaluate_text_model(
    data_dir: str | Path,
    train_countries: Sequence[str],
    test_countries: Sequence[str],
    *,
    encoders: Sequence[str] = ("multilingual-e5-small",),
    heads: Sequence[str] = ("logreg",),
    systems: Sequence[str] = DEFAULT_SYSTEMS,
    max_chars: int = EVAL_MAX_CHARS,
    folds: int = 5,
    min_positives: int = 10,
    target_precision: float = 0.9,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
    budgets: Sequence[float] | None = None,
    budget_videos: int = 300,
) -> dict[str, Any]:
    """Train on ``train_countries``, test on ``test_countries``; a JSON-serialisable report.

    ``budgets``: the few-label regime instead. A seeded sample of ``budget_videos`` training titles
    (a few hundred, as editors label) is cut to each share in ``budgets``, and the e5 teacher is
    trained on it with per-category heads (``logreg``) and with the taxonomy prior (``prior``, YouTube's
    category names as the phrases), plus the prior with no label at all; each is scored on the test
    countries like every system.

    ``systems`` picks among majority, tfidf, encoder (trained on the train countries) and
    encoder_all (grouped K-fold over every country, the upper bound); the encoder systems run for
    each of ``encoders`` x ``heads``. ``cache_dir`` keeps embeddings on disk between runs.
    """
    from ml.text.model import train_text_model
    from ml.text.pseudo_labels import select_thresholds

    progress = progress or (lambda stage, done, total: None)
    t0 = time.perf_counter()
    train_cc = [c.strip().upper() for c in train_countries if c.strip()]
    test_cc = [c.strip().upper() for c in test_countries if c.strip()]
    if not train_cc or not test_cc:
        raise InvalidInput("need at least one train and one test country")
    unknown = set(systems) - set(DEFAULT_SYSTEMS)
    if unknown:
        raise InvalidInput(f"unknown systems {sorted(unknown)}; known: {list(DEFAULT_SYSTEMS)}")
    all_cc = list(dict.fromkeys(train_cc + test_cc))
    rows, file_stats = load_trending(data_dir, all_cc)
    names = category_names(data_dir, all_cc)

    # One text per video id (the latest version of it anywhere), prepared once.
    canonical: dict[str, TrendingVideo] = {}
    for r in rows:
        if r.video_id not in canonical or r.trending_date >= canonical[r.video_id].trending_date:
            canonical[r.video_id] = r
    video_ids = sorted(canonical)
    vindex = {v: i for i, v in enumerate(video_ids)}
    prepared = []
    for i, v in enumerate(video_ids):
        c = canonical[v]
        prepared.append(prepare_text(c.title, c.description, c.tags, max_chars=max_chars))
        if i % 200 == 0:
            progress("prepare", i, len(video_ids))
    texts = [p.text if p.has_text else "" for p in prepared]
    languages = [p.language or "und" for p in prepared]

    test_ids = {r.video_id for r in rows if r.country in test_cc}
    train_label: dict[str, str] = {}
    for r in rows:  # train countries in the order given; first label wins on (rare) disagreement
        if r.country in train_cc and r.video_id not in test_ids and r.video_id not in train_label:
            train_label[r.video_id] = r.category_id
    train_ids = sorted(train_label)
    test_sets = {cc: [r for r in rows if r.country == cc] for cc in test_cc}
    all_label: dict[str, str] = {}
    for r in rows:
        all_label.setdefault(r.video_id, r.category_id)

    lang_counts = Counter(languages[vindex[r.video_id]] for cc in test_cc for r in test_sets[cc])

    def lang_group(lang: str) -> str:
        return lang if lang_counts[lang] >= MIN_LANGUAGE_VIDEOS else "other"

    report: dict[str, Any] = {
        "data": {
            "dir": str(data_dir),
            "files": file_stats,
            "unique_videos": len(video_ids),
            "train_countries": train_cc,
            "test_countries": test_cc,
            "train_videos": len(train_ids),
            "train_videos_removed_as_also_in_test": len({r.video_id for r in rows if r.country in train_cc} & test_ids),
            "test_videos": {cc: len(test_sets[cc]) for cc in test_cc},
            "without_usable_text": sum(1 for p in prepared if not p.has_text),
            "categories": {c: names.get(c, "") for c in sorted(set(all_label.values()), key=int)},
            "test_languages": dict(lang_counts.most_common()),
        },
        "settings": {
            "encoders": list(encoders),
            "heads": list(heads),
            "systems": list(systems),
            "max_chars": max_chars,
            "folds": folds,
            "min_positives": min_positives,
            "target_precision": target_precision,
            "seed": seed,
        },
        "systems": {},
        "timing_s": {},
    }

    def score_system(name: str, description: str, pred: dict[tuple[str, str], str]) -> None:
        per_country, by_lang, overall = {}, {}, ([], [])
        for cc in test_cc:
            yt = [r.category_id for r in test_sets[cc]]
            yp = [pred[(cc, r.video_id)] for r in test_sets[cc]]
            per_country[cc] = _scores(yt, yp)
            overall[0].extend(yt)
            overall[1].extend(yp)
            for r, p in zip(test_sets[cc], yp, strict=True):
                g = by_lang.setdefault(lang_group(languages[vindex[r.video_id]]), ([], []))
                g[0].append(r.category_id)
                g[1].append(p)
        report["systems"][name] = {
            "description": description,
            "per_country": per_country,
            "per_language": {lang: _scores(*v) for lang, v in sorted(by_lang.items())},
            "overall": _scores(*overall),
        }

    train_y = [train_label[v] for v in train_ids]
    fitting = _Fitting(folds=folds, min_positives=min_positives, seed=seed, max_chars=max_chars)
    if "majority" in systems:
        top = Counter(train_y).most_common(1)[0][0]
        score_system(
            "majority",
            f"always '{names.get(top, top)}'",
            {(cc, r.video_id): top for cc in test_cc for r in test_sets[cc]},
        )

    if "tfidf" in systems:
        t = time.perf_counter()
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True, max_features=200_000)
        xtr = vec.fit_transform([texts[vindex[v]] for v in train_ids])
        clf = LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000).fit(xtr, train_y)
        pred = {}
        for cc in test_cc:
            p = clf.predict(vec.transform([texts[vindex[r.video_id]] for r in test_sets[cc]]))
            pred.update({(cc, r.video_id): str(lab) for r, lab in zip(test_sets[cc], p, strict=True)})
        score_system("tfidf", "TF-IDF char_wb 2-5 + logistic regression (balanced)", pred)
        report["timing_s"]["tfidf"] = round(time.perf_counter() - t, 1)

    encoder_systems = [s for s in systems if s.startswith("encoder")]
    for enc_name in encoders if encoder_systems else ():
        t = time.perf_counter()
        enc = CachedEncoder(get_encoder(enc_name))
        emb = _embed(enc, texts, progress, f"embed {enc.name}", Path(cache_dir) if cache_dir else None)
        report["timing_s"][f"embed {enc.name}"] = round(time.perf_counter() - t, 1)
        report["timing_s"][f"embed {enc.name} ms/video"] = round(
            1000 * (time.perf_counter() - t) / max(1, len(texts)), 1
        )
        titles = _Titles(emb, vindex, train_ids, train_y, test_sets)
        if budgets:
            _budget_systems(report, score_system, titles, names, enc, budgets, budget_videos, fitting)
        for head in heads if not budgets else ():
            base = f"{enc.name}/{head}"
            if "encoder" in systems:
                t = time.perf_counter()
                classes = sorted(set(train_y), key=int)
                xtr = emb[[vindex[v] for v in train_ids]]
                model = train_text_model(
                    xtr,
                    _one_hot(train_y, classes),
                    classes,
                    encoder=enc,
                    head=head,
                    min_positives=None if head == "prior" else min_positives,
                    folds=folds,
                    seed=seed,
                    max_chars=max_chars,
                )
                pred = _top_category(model, titles, train_y[0])
                score_system(base, f"{enc.name} + {head} heads, calibrated, trained on {','.join(train_cc)}", pred)
                report["systems"][base]["uncovered"] = sorted(model.uncovered)
                report["systems"][base]["heldout_train_languages"] = {
                    k: (round(v, 4) if isinstance(v, float) else v)
                    for k, v in model.metrics.items()
                    if k != "per_category"
                }
                report["systems"][base]["pseudo_labels"] = _pseudo_label_check(
                    model, titles, target_precision, select_thresholds
                )
                report["timing_s"][base] = round(time.perf_counter() - t, 1)
            if "encoder_all" in systems:
                t = time.perf_counter()
                score_system(
                    f"{base}/all",
                    f"{enc.name} + {head}, trained on all countries ({folds}-fold by video id): upper bound",
                    _all_countries_predictions(titles, video_ids, all_label, enc, head, fitting),
                )
                report["timing_s"][f"{base}/all"] = round(time.perf_counter() - t, 1)
    report["timing_s"]["total"] = round(time.perf_counter() - t0, 1)
    report["table_markdown"] = format_table(report)
    return report


def _top_category(model, titles: _Titles, fallback: str) -> dict[tuple[str, str], str]:
    """Each test video's most probable category, keyed by (country, video id)."""
    pred = {}
    for cc, rows in titles.test_sets.items():
        x = titles.emb[[titles.vindex[r.video_id] for r in rows]]
        labs = _argmax_labels(model.predict_proba(x), model.categories, fallback)
        pred.update({(cc, r.video_id): lab for r, lab in zip(rows, labs, strict=True)})
    return pred


def _budget_systems(
    report: dict[str, Any],
    score_system: Callable[[str, str, dict[tuple[str, str], str]], None],
    titles: _Titles,
    names: dict[str, str],
    enc: TextEncoder,
    budgets: Sequence[float],
    budget_videos: int,
    fitting: _Fitting,
) -> None:
    """Teachers trained on a share of a few hundred titles, with and without the taxonomy prior."""
    from ml.text.model import train_text_model

    emb, vindex, train_ids = titles.emb, titles.vindex, titles.train_ids
    classes = sorted(set(titles.train_y), key=int)
    phrases = [[names.get(c, c)] for c in classes]
    order = np.random.default_rng(fitting.seed).permutation(len(train_ids))[:budget_videos]
    label_of = dict(zip(train_ids, titles.train_y, strict=True))
    report["budgets"] = {"sample": len(order), "shares": [float(b) for b in budgets]}

    def predict(model) -> dict[tuple[str, str], str]:
        return _top_category(model, titles, classes[0])

    zero = train_text_model(
        np.zeros((0, emb.shape[1]), np.float32),
        np.zeros((0, len(classes)), np.float32),
        classes,
        encoder=enc,
        head="prior",
        phrases=phrases,
        folds=fitting.folds,
        seed=fitting.seed,
        max_chars=fitting.max_chars,
    )
    score_system(f"{enc.name}/prior@0", "the taxonomy prior alone: YouTube's category names, no label", predict(zero))
    for b in budgets:
        if not 0 < b <= 1:
            raise InvalidInput(f"a budget is a share of the sampled titles in (0, 1], got {b}")
        ids = [train_ids[i] for i in order[: max(1, round(b * len(order)))]]
        x, y = emb[[vindex[v] for v in ids]], _one_hot([label_of[v] for v in ids], classes)
        for head in ("logreg", "prior"):
            try:
                model = train_text_model(
                    x,
                    y,
                    classes,
                    encoder=enc,
                    head=head,
                    phrases=phrases if head == "prior" else None,
                    min_positives=None if head == "prior" else max(2, round(fitting.min_positives * b)),
                    folds=fitting.folds,
                    seed=fitting.seed,
                    max_chars=fitting.max_chars,
                )
            except ValueError as exc:
                report["systems"][f"{enc.name}/{head}@{b:g}"] = {"error": str(exc)}
                continue
            name = f"{enc.name}/{head}@{b:g}"
            score_system(
                name,
                f"{head} trained on {len(ids)} {'/'.join(report['data']['train_countries'])} titles",
                predict(model),
            )
            report["systems"][name]["categories_covered"] = len(model.categories)


def _all_countries_predictions(
    titles: _Titles,
    video_ids: list[str],
    all_label: dict[str, str],
    enc: TextEncoder,
    head: str,
    fitting: _Fitting,
) -> dict[tuple[str, str], str]:
    from ml.text.model import train_text_model

    emb, folds = titles.emb, fitting.folds
    rng = np.random.default_rng(fitting.seed)
    fold = rng.permutation(len(video_ids)) % folds  # video ids are unique: the split is by video
    labels = [all_label[v] for v in video_ids]
    fold_of = dict(zip(video_ids, fold, strict=True))
    vindex = {v: i for i, v in enumerate(video_ids)}
    pred: dict[tuple[str, str], str] = {}
    for k in range(folds):
        tr = np.flatnonzero(fold != k)
        classes = sorted({labels[i] for i in tr}, key=int)
        model = train_text_model(
            emb[tr],
            _one_hot([labels[i] for i in tr], classes),
            classes,
            encoder=enc,
            head=head,
            min_positives=None if head == "prior" else fitting.min_positives,
            folds=folds,
            seed=fitting.seed,
            max_chars=fitting.max_chars,
        )
        for cc, rows in titles.test_sets.items():
            mine = [r for r in rows if fold_of[r.video_id] == k]
            if mine:
                probs = model.predict_proba(emb[[vindex[r.video_id] for r in mine]])
                labs = _argmax_labels(probs, model.categories, classes[0])
                pred.update({(cc, r.video_id): lab for r, lab in zip(mine, labs, strict=True)})
    return pred


def _pseudo_label_check(model, titles: _Titles, target_precision: float, select_thresholds) -> dict[str, Any]:
    """Thresholds chosen on the training languages' held-out scores, applied to the test countries.

    This is the pseudo-label rule's real risk: a threshold reaching 0.9 precision in English and
    French may not in Hindi. Reported per test country: how many videos get a positive pseudo-label
    and how many of those agree with YouTube's category.
    """
    from ml.text.pseudo_labels import default_policy

    thresholds = select_thresholds(
        model.heldout_scores, model.heldout_labels, model.categories, default_policy(target_precision)
    )
    cut = np.array([t.threshold if t.enabled else np.inf for t in thresholds])
    out: dict[str, Any] = {"enabled_categories": [t.category_id for t in thresholds if t.enabled]}
    for cc, rows in titles.test_sets.items():
        probs = model.predict_proba(titles.emb[[titles.vindex[r.video_id] for r in rows]])
        hit = probs >= cut[None, :]
        r_idx, c_idx = np.nonzero(hit)
        correct = sum(rows[i].category_id == model.categories[j] for i, j in zip(r_idx, c_idx, strict=True))
        out[cc] = {
            "videos": len(rows),
            "videos_with_positive": int(hit.any(axis=1).sum()),
            "positives": len(r_idx),
            "precision": round(correct / len(r_idx), 4) if len(r_idx) else None,
        }
    return out


def format_table(report: dict[str, Any]) -> str:
    """Markdown: one row per system, accuracy / macro-F1 per test country, then overall."""
    test_cc = report["data"]["test_countries"]
    head = "| system | " + " | ".join(f"{cc} acc / F1" for cc in test_cc) + " | all acc / F1 |"
    lines = [head, "|" + " --- |" * (len(test_cc) + 2)]

    def cell(m: dict[str, Any]) -> str:
        return "-" if m["accuracy"] is None else f"{m['accuracy']:.3f} / {m['macro_f1']:.3f}"

    systems = {name: s for name, s in report["systems"].items() if "error" not in s}
    for name, s in report["systems"].items():
        if "error" in s:
            lines.append(f"| {name} | {s['error']} |")
            continue
        cells = [cell(s["per_country"][cc]) for cc in test_cc] + [cell(s["overall"])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    langs = sorted({lang for s in systems.values() for lang in s["per_language"]})
    if langs:
        lines += [
            "",
            "| system | " + " | ".join(f"{lang} acc / F1" for lang in langs) + " |",
            "|" + " --- |" * (len(langs) + 1),
        ]
        for name, s in systems.items():
            cells = [cell(s["per_language"][lang]) if lang in s["per_language"] else "-" for lang in langs]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
