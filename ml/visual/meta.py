"""Non-text metadata of a video as a fixed-length vector for the visual model's classifier.

The visual model must stand on what a video *is*, not on what its uploader wrote: the text teacher
already reads titles and descriptions, and a student that read them too would copy the teacher's
mistakes instead of adding an independent view (fusion is only worth something when the two
sources err differently). So the vector holds only facts the catalog knows about every video without
text: the declared language, the container's duration, frame rate and geometry, whether there is
an audio track, and when it was uploaded.

Layout (version ``META_LAYOUT_VERSION``, ``META_DIM`` floats, names in ``META_FEATURES``):

- declared language one-hot over ``LANGUAGES`` + ``other`` (declared, not in the list) + ``unknown``.
  Language shifts the category mix (regional sports, music scenes) and is declared, not read from
  the title.
- log duration, standardised around one minute, + missing flag: clips, music videos, tutorials and
  long-form streams have very different length distributions.
- log frame rate around 30 fps + missing flag: 60 fps is typical of gaming captures, 24 of film.
- log aspect ratio of the displayed picture (rotation applied), log short side relative to 720 px,
  + missing flag: portrait phone footage versus landscape productions.
- has audio / has no audio (both 0 when unknown): silent slideshows and GIFs versus music.
- upload time: sine and cosine of the hour of day and of the hour of week (UTC) + missing flag. A
  weak signal (news and sports follow the week), kept because it costs four floats.

Frame count is left out on purpose: the number of decoded frames is duration x frame rate, so its
log is the sum of two features already here, and the number of sampled frames is min(duration, cap)
at 1 fps, again a function of duration; a linear classifier gains nothing from it.

Every numeric feature is scaled by fixed constants (not fitted), so the layout needs no statistics
file, the same row always gives the same vector, and values land around unit scale like the
BatchNorm-ed hidden vector they are concatenated to. Missing values are 0 with a flag set, so a
video without probe data still gets a well-defined vector: ``meta_vector({})`` is the all-missing
placeholder. Changing any of this is a new ``META_LAYOUT_VERSION``; model manifests record the
version they were trained with.

NumPy only: the assets that build these vectors must not import torch.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ml.catalog.videos import VIDEO_FACT_COLUMNS

META_LAYOUT_VERSION = 1

# The most common upload languages on large video platforms; the demo catalog's six are among them.
LANGUAGES: tuple[str, ...] = (
    "en",
    "es",
    "pt",
    "fr",
    "de",
    "it",
    "ru",
    "ja",
    "ko",
    "zh",
    "ar",
    "hi",
    "id",
    "tr",
    "nl",
    "pl",
)

# Centre and scale of each log feature: value = (ln(x) - ln(centre)) / scale, clipped to +-CLIP.
DURATION_CENTRE_S, DURATION_SCALE = 60.0, 1.5  # 6 s -> -1.5, 1 min -> 0, 10 min -> +1.5
FPS_CENTRE, FPS_SCALE = 30.0, 0.5  # 15 fps -> -1.4, 24 -> -0.45, 60 -> +1.4
ASPECT_SCALE = 0.5  # 16:9 -> +1.15, 9:16 -> -1.15
SHORT_SIDE_CENTRE, SHORT_SIDE_SCALE = 720.0, 0.7  # 240 px -> -1.6, 1080 -> +0.6
CLIP = 4.0

# Row keys meta_vector reads: exactly what ml.catalog.videos.video_facts selects from the catalog.
META_COLUMNS: tuple[str, ...] = VIDEO_FACT_COLUMNS


def _feature_names() -> tuple[str, ...]:
    names = [f"lang_{code}" for code in LANGUAGES] + ["lang_other", "lang_unknown"]
    names += ["log_duration", "duration_missing", "log_fps", "fps_missing"]
    names += ["log_aspect", "log_short_side", "geometry_missing", "has_audio", "no_audio"]
    names += ["hour_of_day_sin", "hour_of_day_cos", "hour_of_week_sin", "hour_of_week_cos", "upload_time_missing"]
    return tuple(names)


META_FEATURES: tuple[str, ...] = _feature_names()
META_DIM = len(META_FEATURES)
_INDEX = {name: i for i, name in enumerate(META_FEATURES)}


def _number(value: Any) -> float | None:
    """A finite float, or None for None, NaN, pandas NA and anything not numeric."""
    if value is None or isinstance(value, str):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _missing(value: Any) -> bool:
    """None, NaN, pandas NaT (a datetime subclass unequal to itself) and pandas NA (which refuses bool())."""
    if value is None:
        return True
    try:
        return bool(value != value)
    except (TypeError, ValueError):
        return True


def _flag(value: Any) -> bool | None:
    if isinstance(value, str) or _missing(value):
        return None
    return bool(value)


def _log_scaled(x: float | None, centre: float, scale: float) -> float | None:
    if x is None or x <= 0:
        return None
    return float(np.clip((math.log(x) - math.log(centre)) / scale, -CLIP, CLIP))


def normalise_language(code: Any) -> str | None:
    """'en-US', 'EN', 'en_GB' -> 'en'; empty, unknown or malformed -> None (the catalog stores raw codes)."""
    if not isinstance(code, str):
        return None
    text = code.strip().lower().replace("_", "-")
    if not text or text in {"und", "unknown", "none", "null", "zxx"}:
        return None
    base = text.split("-")[0]
    return base if base.isalpha() and 2 <= len(base) <= 3 else None


def _timestamp(value: Any) -> dt.datetime | None:
    """UTC wall time of a datetime, pandas Timestamp or ISO string; naive values are taken as UTC."""
    if _missing(value):
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    elif not isinstance(value, dt.datetime):
        to_py = getattr(value, "to_pydatetime", None)  # pandas Timestamp (NaT is not a datetime)
        value = to_py() if callable(to_py) else None
        if not isinstance(value, dt.datetime):
            return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def meta_vector(row: Mapping[str, Any]) -> np.ndarray:
    """float32 (META_DIM,) from one catalog row (keys: ``META_COLUMNS``; any may be missing)."""
    out = np.zeros(META_DIM, dtype=np.float32)

    lang = normalise_language(row.get("language"))
    if lang is None:
        out[_INDEX["lang_unknown"]] = 1.0
    elif lang in LANGUAGES:
        out[_INDEX[f"lang_{lang}"]] = 1.0
    else:
        out[_INDEX["lang_other"]] = 1.0

    duration = _log_scaled(_number(row.get("duration_s")), DURATION_CENTRE_S, DURATION_SCALE)
    if duration is None:
        out[_INDEX["duration_missing"]] = 1.0
    else:
        out[_INDEX["log_duration"]] = duration

    fps = _log_scaled(_number(row.get("fps")), FPS_CENTRE, FPS_SCALE)
    if fps is None:
        out[_INDEX["fps_missing"]] = 1.0
    else:
        out[_INDEX["log_fps"]] = fps

    width, height = _number(row.get("width")), _number(row.get("height"))
    if width is None or height is None or width <= 0 or height <= 0:
        out[_INDEX["geometry_missing"]] = 1.0
    else:
        rotation = _number(row.get("rotation")) or 0.0
        if round(rotation) % 180 == 90:  # a display matrix turning the picture: shown the other way up
            width, height = height, width
        out[_INDEX["log_aspect"]] = float(np.clip(math.log(width / height) / ASPECT_SCALE, -CLIP, CLIP))
        short_side = _log_scaled(min(width, height), SHORT_SIDE_CENTRE, SHORT_SIDE_SCALE)
        out[_INDEX["log_short_side"]] = short_side or 0.0

    audio = _flag(row.get("has_audio"))
    if audio is True:
        out[_INDEX["has_audio"]] = 1.0
    elif audio is False:
        out[_INDEX["no_audio"]] = 1.0

    when = _timestamp(row.get("uploaded_at"))
    if when is None:
        out[_INDEX["upload_time_missing"]] = 1.0
    else:
        hour = when.hour + when.minute / 60.0
        day_angle = 2.0 * math.pi * hour / 24.0
        week_angle = 2.0 * math.pi * (when.weekday() * 24.0 + hour) / 168.0
        out[_INDEX["hour_of_day_sin"]] = math.sin(day_angle)
        out[_INDEX["hour_of_day_cos"]] = math.cos(day_angle)
        out[_INDEX["hour_of_week_sin"]] = math.sin(week_angle)
        out[_INDEX["hour_of_week_cos"]] = math.cos(week_angle)
    return out


MISSING_META = meta_vector({})  # the placeholder for a video the catalog knows nothing about


def meta_by_video(rows: Iterable[Mapping[str, Any] | Sequence[Any]]) -> dict[str, np.ndarray]:
    """video_id -> vector: the ``meta`` mapping the visual model's training and scoring take.

    Rows are mappings or tuples in ``META_COLUMNS`` order (what ``ml.catalog.videos.video_facts`` returns).
    """
    out = {}
    for row in rows:
        r = row if isinstance(row, Mapping) else dict(zip(META_COLUMNS, row, strict=True))
        out[str(r["video_id"])] = meta_vector(r)
    return out


def meta_layout() -> dict[str, Any]:
    """What a model manifest records so a scorer can refuse vectors of another layout."""
    return {
        "version": META_LAYOUT_VERSION,
        "dim": META_DIM,
        "features": list(META_FEATURES),
        "languages": list(LANGUAGES),
        "constants": {
            "duration_centre_s": DURATION_CENTRE_S,
            "duration_scale": DURATION_SCALE,
            "fps_centre": FPS_CENTRE,
            "fps_scale": FPS_SCALE,
            "aspect_scale": ASPECT_SCALE,
            "short_side_centre": SHORT_SIDE_CENTRE,
            "short_side_scale": SHORT_SIDE_SCALE,
            "clip": CLIP,
        },
    }
