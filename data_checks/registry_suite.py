"""Expectations on `videos` rows: what every later stage assumes about the registry.

Critical (blocking): identity and location. A duplicate id or seq breaks batching and the idempotent
replace-by-key writes; a URI outside the media roots is a file the decoders must never open (the
registration validator refuses them, so one here means a write bypassed it).
Warning: declared language and title length. Registration normalises both; a bad value means a
normaliser regressed, and the text model copes (unknown language, truncated title), so the batch goes on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from data_checks.gx_runner import param, run_suite
from data_checks.outcome import CheckOutcome

SUITE = "registry"
MAX_TITLE_CHARS = 1000
# Same shape registration accepts: ISO 639 primary subtag (2 or 3 letters) plus an optional subtag.
LANGUAGE_PATTERN = r"^[a-z]{2,3}(?:-[a-z0-9]{2,8})?$"
_ISO_639_1_CODES = (
    "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz "
    "ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik "
    "io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml "
    "mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd "
    "se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi "
    "vo wa wo xh yi yo za zh zu"
)
ISO_639_1 = frozenset(_ISO_639_1_CODES.split())


def roots_regex(roots: Iterable[str | Path]) -> str:
    """A regex matching absolute paths strictly inside one of ``roots`` with no ``..`` segment.

    ``/media`` must not admit ``/media2/x``, hence the separator after the root.
    """
    alternatives = sorted({re.escape(str(r).rstrip("/")) for r in roots})
    if not alternatives:
        return r"(?!)"  # no roots configured: nothing is allowed
    return r"^(?!.*(?:^|/)\.\.(?:/|$))(?:" + "|".join(alternatives) + r")/."


def _expectations() -> list[Any]:
    import great_expectations.expectations as gxe

    crit, warn = "critical", "warning"
    return [
        gxe.ExpectColumnValuesToNotBeNull(column="video_id", severity=crit, meta={"why": "the key of every table"}),
        gxe.ExpectColumnValuesToBeUnique(
            column="video_id", severity=crit, meta={"why": "replace-by-key writes would mix two videos"}
        ),
        gxe.ExpectColumnValuesToNotBeNull(column="seq", severity=crit, meta={"why": "batching walks seq"}),
        gxe.ExpectColumnValuesToBeUnique(
            column="seq", severity=crit, meta={"why": "a repeated seq puts a video in two batches or none"}
        ),
        gxe.ExpectColumnValuesToNotBeNull(column="uri", severity=crit, meta={"why": "nothing to decode"}),
        gxe.ExpectColumnValuesToMatchRegex(
            column="uri",
            regex=param("roots_regex"),
            severity=crit,
            meta={"why": "decoders only open files under the configured media roots"},
        ),
        gxe.ExpectColumnValuesToNotBeNull(
            column="registered_at", severity=crit, meta={"why": "the upload sensor's wait clock"}
        ),
        gxe.ExpectColumnValuesToMatchRegex(
            column="language", regex=LANGUAGE_PATTERN, severity=warn, meta={"why": "registration normalises codes"}
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="language_iso1",
            value_set=sorted(ISO_639_1),
            severity=warn,
            meta={"why": "a two-letter code that is not ISO 639-1 is a typo or a country code"},
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="title_len",
            min_value=0,
            max_value=param("max_title_chars"),
            severity=warn,
            meta={"why": "registration caps titles; longer means the cap regressed"},
        ),
    ]


def validate_registry(
    df: Any, *, media_roots: Iterable[str | Path], max_title_chars: int = MAX_TITLE_CHARS
) -> CheckOutcome:
    """Validate `videos` rows. ``df`` may carry ``title`` or, cheaper at scale, ``title_len`` only."""
    import pandas as pd

    frame = df.copy()
    if "title_len" not in frame.columns:
        titles = frame["title"] if "title" in frame.columns else pd.Series([None] * len(frame), dtype=object)
        frame["title_len"] = titles.str.len()
    language = frame["language"] if "language" in frame.columns else pd.Series([None] * len(frame), dtype=object)
    frame["language"] = language
    primary = language.where(language.notna()).astype(object).str.split("-").str[0]
    frame["language_iso1"] = primary.where(primary.str.len() == 2)
    frame["uri"] = frame["uri"].astype(object)
    roots = sorted(str(Path(r)) for r in media_roots)
    roots_re = roots_regex(roots)
    return run_suite(
        SUITE,
        frame,
        _expectations,
        parameters={"roots_regex": roots_re, "max_title_chars": max_title_chars},
        context={"media_roots": roots, "max_title_chars": max_title_chars},
    )
