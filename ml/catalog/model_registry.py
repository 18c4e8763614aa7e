"""Model versions in the catalog (`model_registry`): what was trained, on what, and how well.

Predictions record the version that made them, so retraining never silently rewrites old rows; the
"current" model of a name is its most recently registered version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from ml.catalog.store import Catalog, delete_where_in, insert_rows
from ml.errors import UserFacingError

# The `thresholds` table's columns, in the order its writers give them.
THRESHOLD_COLUMNS = (
    "version",
    "category_id",
    "source",
    "threshold",
    "precision",
    "recall",
    "support",
    "lower_bound",
    "enabled",
    "is_visual",
    "created_at",
)


@dataclass(frozen=True)
class ModelRecord:
    model_name: str
    version: str
    created_at: dt.datetime
    artifact_path: Path
    categories: list[str]
    params: dict[str, Any]
    metrics: dict[str, Any]
    training_data: dict[str, Any]


class ModelNotTrained(UserFacingError, RuntimeError):
    """A stage needs a model that has no registered version yet."""


def new_version(*parts: Any) -> str:
    """Time-ordered and content-addressed: sortable by creation, distinct for distinct inputs."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{stamp}-{digest}"


def register_model(
    catalog: Catalog,
    name: str,
    version: str,
    artifact_path: Path,
    categories: list[str],
    params: dict | None = None,
    metrics: dict | None = None,
    training_data: dict | None = None,
) -> None:
    with catalog.transaction() as con:
        register_model_in(con, name, version, artifact_path, categories, params, metrics, training_data)


def register_model_in(
    con: Any,
    name: str,
    version: str,
    artifact_path: Path,
    categories: list[str],
    params: dict | None = None,
    metrics: dict | None = None,
    training_data: dict | None = None,
) -> None:
    """``register_model`` inside the caller's transaction, so a model and what belongs to it land together."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    delete_where_in(con, "model_registry", "version", [version], "AND model_name = ?", [name])
    insert_rows(
        con,
        "model_registry",
        [
            "model_name",
            "version",
            "created_at",
            "artifact_path",
            "categories",
            "params",
            "metrics",
            "training_data",
        ],
        [
            (
                name,
                version,
                now,
                str(artifact_path),
                list(categories),
                json.dumps(params or {}, default=str),
                json.dumps(metrics or {}, default=str),
                json.dumps(training_data or {}, default=str),
            )
        ],
    )


# The asset that registers each model name (the fusion model is what `category_thresholds` fits).
PRODUCING_ASSET = {
    "text_model": "text_model",
    "visual_model": "visual_model",
    "fusion": "category_thresholds",
    "scene_thresholds": "scene_thresholds",
}
_COLUMNS = "model_name, version, created_at, artifact_path, categories, params, metrics, training_data"


def _record(r: tuple) -> ModelRecord:
    return ModelRecord(
        r[0],
        r[1],
        r[2],
        Path(r[3]),
        list(r[4] or []),
        json.loads(r[5] or "{}"),
        json.loads(r[6] or "{}"),
        json.loads(r[7] or "{}"),
    )


def latest_model(catalog: Catalog, name: str, required: bool = True) -> ModelRecord | None:
    rows = catalog.query(
        f"SELECT {_COLUMNS} FROM model_registry WHERE model_name = ? ORDER BY created_at DESC, version DESC LIMIT 1",
        [name],
    )
    if not rows:
        if required:
            asset = PRODUCING_ASSET.get(name, name)
            raise ModelNotTrained(
                f"no {name} is registered yet; materialize the `{asset}` asset (or run `vidcat backfill --train`)"
            )
        return None
    return _record(rows[0])


def get_model(catalog: Catalog, name: str, version: str) -> ModelRecord:
    """One registered version (the ones a fusion model was fitted on, say); raises if it is gone."""
    rows = catalog.query(f"SELECT {_COLUMNS} FROM model_registry WHERE model_name = ? AND version = ?", [name, version])
    if not rows:
        raise ModelNotTrained(f"{name} version {version} is not registered; retrain with `vidcat backfill --train`")
    return _record(rows[0])


def replace_thresholds(
    con: duckdb.DuckDBPyConnection, version: str, rows: Sequence[Sequence[Any]], source: str | None = None
) -> None:
    """Within the caller's transaction: a model version's ``thresholds`` rows (``THRESHOLD_COLUMNS``).

    ``source`` given: only that source's rows of the version are replaced (scene thresholds beside a
    fusion version's); None: every row of the version.
    """
    if source is None:
        delete_where_in(con, "thresholds", "version", [version])
    else:
        delete_where_in(con, "thresholds", "version", [version], "AND source = ?", [source])
    insert_rows(con, "thresholds", list(THRESHOLD_COLUMNS), rows)
