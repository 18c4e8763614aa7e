"""Settings checked against the types their fields declare, and against one range rule per key.

Values used to be converted with ``int()`` and ``float()``: ``batch_size = 3.7`` became 3, ``true``
became 1, ``decode_timeout_s = nan`` a deadline that never fires, and ``data_root = ""`` a traceback
far from its cause. Here every value is checked against the annotation of its ``Settings`` field
(nothing is converted that TOML already types), numbers must be finite, and a ``Rule`` adds a range,
a set of choices or a path that must be a writable directory. A new setting needs only its annotation
and default, and a rule when its range matters. Every error names the key, where its value came from
and what to write instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

from ml.errors import UserFacingError


class ConfigError(UserFacingError, ValueError):
    """A setting is missing or invalid; the message says which, where it came from and how to fix it."""


@dataclass(frozen=True)
class Rule:
    """What a value must be beyond its type: a range, one of some choices, or a kind of path."""

    min: float | None = None
    max: float | None = None
    min_open: bool = False  # min itself is excluded
    max_open: bool = False  # max itself is excluded
    choices: tuple[str, ...] | None = None
    writable_dir: bool = False  # a directory we may write to, created if missing
    existing_file: bool = False
    meaning: str = ""  # what the value is, for the message: "videos per batch"

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        parts = []
        if self.min is not None:
            parts.append(f"{'>' if self.min_open else '>='} {self.min:g}")
        if self.max is not None:
            parts.append(f"{'<' if self.max_open else '<='} {self.max:g}")
        return " and ".join(parts)

    def violated_by(self, value: Any) -> bool:
        if self.choices is not None:
            return value not in self.choices
        if isinstance(value, int | float):
            if self.min is not None and (value <= self.min if self.min_open else value < self.min):
                return True
            if self.max is not None and (value >= self.max if self.max_open else value > self.max):
                return True
        return False


def where(key: str, sources: Mapping[str, str]) -> str:
    return sources.get(key, "the settings")


def _fail(key: str, value: Any, need: str, sources: Mapping[str, str], fix: str = "") -> ConfigError:
    origin = where(key, sources)
    fix = fix or f"fix it in {origin}"
    return ConfigError(f"setting {key} = {value!r} (from {origin}) must be {need}; {fix}")


def field_types(cls: type) -> dict[str, Any]:
    """Resolved annotations of a dataclass (they are strings under ``from __future__ import annotations``)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _is_optional(tp: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def convert(key: str, value: Any, tp: Any, sources: Mapping[str, str], from_text: bool = False) -> Any:
    """``value`` as the type ``tp`` declares, or a ConfigError; ``from_text``: it came from an environment
    variable, so a number or a yes/no may be spelt as text."""
    optional, inner = _is_optional(tp)
    if optional:
        if value is None or (isinstance(value, str) and not value.strip() and inner is Path):
            return None
        return convert(key, value, inner, sources, from_text)
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise _fail(key, value, "one of " + ", ".join(repr(c) for c in choices), sources)
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_text and isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.strip().lower()]
        raise _fail(key, value, "true or false", sources, f"write {key} = true or {key} = false")
    if tp is int:
        if isinstance(value, str) and from_text:
            with contextlib.suppress(ValueError):
                value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(key, value, "a whole number", sources, f"write it without quotes or decimals, e.g. {key} = 10")
        return value
    if tp is float:
        if isinstance(value, str) and from_text:
            with contextlib.suppress(ValueError):
                value = float(value.strip())
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(key, value, "a number", sources, f"write it without quotes, e.g. {key} = 1.5")
        if not math.isfinite(value):
            raise _fail(key, value, "a finite number (not nan or inf)", sources)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _fail(key, value, "a string", sources, f'write it in quotes, e.g. {key} = "{value}"')
        return value
    if tp is Path:
        if not isinstance(value, str | os.PathLike) or not str(value).strip():
            raise _fail(key, value, "a path", sources, f'write a directory or file path, e.g. {key} = "/srv/vidcat"')
        return Path(value).expanduser()
    if origin in (tuple, list):
        args = typing.get_args(tp)
        item_tp = args[0] if args else Any
        if isinstance(value, str) and item_tp is Path:
            value = [v for v in value.split(os.pathsep) if v]  # an environment variable: a PATH-like list
        if not isinstance(value, list | tuple):
            raise _fail(key, value, "a list", sources, f'write a list, e.g. {key} = ["..."]')
        items = [convert(key, v, item_tp, sources, from_text) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _fail(key, value, "a table", sources, f"write it as a TOML table: [{key}]")
        return value
    return value


_BOOL_WORDS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


def check_rule(key: str, value: Any, rule: Rule, sources: Mapping[str, str]) -> None:
    if value is None:
        return
    if rule.violated_by(value):
        need = rule.describe() + (f" ({rule.meaning})" if rule.meaning else "")
        raise _fail(key, value, need, sources)
    if rule.writable_dir:
        problem = directory_problem(Path(value))
        if problem:
            raise _fail(
                key,
                str(value),
                "a directory vidcat can write to",
                sources,
                f"{problem}; point {key} at a writable directory (it is created if missing)",
            )
    if rule.existing_file and not Path(value).is_file():
        raise _fail(key, str(value), "an existing file", sources, "fix the path or remove the setting")


def directory_problem(path: Path) -> str | None:
    """Why ``path`` cannot be (or become) a directory we write into; None when it can.

    Checked without creating anything; ``Settings.ensure_dirs`` reports what only creating can show
    (a pseudo file system such as /proc accepts ``access()`` for root but no new directory).
    """
    path = Path(os.path.abspath(path))
    if path.exists():
        if not path.is_dir():
            return f"{path} exists and is not a directory"
        return None if _writable(path) else f"{path} is not writable"
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file, so {path} cannot be created under it"
    if not _writable(parent):
        return f"{path} does not exist and {parent} is not writable"
    return None


def _writable(path: Path) -> bool:
    if not os.access(path, os.W_OK | os.X_OK):
        return False
    try:
        return not os.statvfs(path).f_flag & os.ST_RDONLY
    except OSError:
        return False


def check_values(
    cls: type, values: Mapping[str, Any], sources: Mapping[str, str], text_keys: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Every value as the type of its field in the dataclass ``cls``; ``text_keys`` came from environment
    variables (text). Ranges are checked on the whole object (``check_rule``), defaults included."""
    types_ = field_types(cls)
    out = {}
    for key, value in values.items():
        if key not in types_:
            raise ConfigError(f"unknown setting {key!r} (from {where(key, sources)}); known: {sorted(types_)}")
        out[key] = convert(key, value, types_[key], sources, from_text=key in text_keys)
    return out
