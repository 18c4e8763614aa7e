"""Drift of a batch against the training reference, with Evidently 0.7's data-drift preset.

Evidently picks each column's test by type and sample size (up to 1,000 rows: Kolmogorov-Smirnov
for numbers, chi-square or a Z-test for categories, p-value below 0.05 means drift; above: normed
Wasserstein and Jensen-Shannon distances, 0.1 or more means drift). We keep its per-column verdicts
and turn the share of drifted columns into a warning above a configurable threshold. Drift never
blocks a batch: the data arriving is what it is; it tells a person that the models' training data no
longer looks like production.

The HTML is for people and large (about 5 MB); the JSON summary is for machines and tiny, and is
what retention always keeps (see report_retention.py).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from data_checks.outcome import jsonable

DEFAULT_WARN_SHARE = 0.3
# Evidently's display names, by which direction means drift. A method in neither set is judged from
# Evidently's own verdict (see _strength).
_P_VALUE_METHODS = frozenset(
    {
        "K-S p_value",
        "chi-square p_value",
        "Z-test p_value",
        "Anderson-Darling",
        "Cramer-von Mises",
        "Epps-Singleton",
        "Fisher's Exact test",
        "g_test",
        "Mann-Whitney U-rank test",
        "t_test",
        "empirical_mmd",
        "Total-Variation-Distance",
    }
)
_DISTANCE_METHODS = frozenset(
    {
        "Wasserstein distance (normed)",
        "Jensen-Shannon distance",
        "Hellinger distance",
        "Kullback-Leibler divergence",
        "PSI",
        "Energy-distance",
    }
)


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    method: str
    score: float  # Evidently's drift score: a p-value or a distance, depending on method
    threshold: float
    drifted: bool
    strength: float  # >= 1 when drifted, comparable across methods: how far past the threshold


@dataclass(frozen=True)
class DriftSummary:
    share_drifted: float
    n_columns: int
    n_drifted: int
    drifted_columns: tuple[str, ...]  # strongest first
    columns: dict[str, ColumnDrift]
    warn_share: float
    warning: bool  # share_drifted >= warn_share: tell a person, never block
    n_reference: int
    n_current: int
    html_path: Path | None = None
    skipped_columns: tuple[str, ...] = field(default=())  # empty on one side: nothing to compare

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["html_path"] = str(self.html_path) if self.html_path else None
        out["columns"] = {k: asdict(v) for k, v in self.columns.items()}
        return jsonable(out)

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=1, sort_keys=True))
        tmp.replace(path)
        return path


def drift_report(
    reference: Any,
    current: Any,
    html_path: Path | None = None,
    *,
    warn_share: float = DEFAULT_WARN_SHARE,
    columns: list[str] | None = None,
) -> DriftSummary:
    """Compare ``current`` with ``reference`` column by column (the columns both have, or ``columns``).

    Feature frames from drift_features.py are indexed by video_id; the index is ignored. Booleans and
    strings are categorical, numbers numerical: declared, not guessed, so an integer column with few
    values is not silently tested as a category in one batch and a number in the next.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    wanted = columns if columns is not None else [c for c in reference.columns if c in set(current.columns)]
    ref = reference[wanted].reset_index(drop=True)
    cur = current[wanted].reset_index(drop=True)
    skipped = tuple(c for c in wanted if ref[c].isna().all() or cur[c].isna().all())
    used = [c for c in wanted if c not in skipped]
    ref, cur = ref[used].copy(), cur[used].copy()
    categorical = [c for c in used if _is_categorical(ref[c]) or _is_categorical(cur[c])]
    numerical = [c for c in used if c not in categorical]
    for frame in (ref, cur):
        for c in categorical:
            frame[c] = [None if _missing(v) else str(v) for v in frame[c]]
        for c in numerical:
            frame[c] = frame[c].astype("float64")
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's divide-by-zero on constant columns; the verdict stands
        snapshot = Report([DataDriftPreset()], include_tests=True).run(
            current_data=Dataset.from_pandas(cur, data_definition=definition),
            reference_data=Dataset.from_pandas(ref, data_definition=definition),
        )
    per_column = _column_drifts(snapshot.dict())
    if html_path is not None:
        html_path = Path(html_path)
        html_path.parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(html_path))
    drifted = sorted((c for c in per_column.values() if c.drifted), key=lambda c: (-c.strength, c.column))
    n_columns = len(per_column)
    share = len(drifted) / n_columns if n_columns else 0.0
    return DriftSummary(
        share_drifted=share,
        n_columns=n_columns,
        n_drifted=len(drifted),
        drifted_columns=tuple(c.column for c in drifted),
        columns=per_column,
        warn_share=warn_share,
        warning=n_columns > 0 and share >= warn_share,
        n_reference=len(ref),
        n_current=len(cur),
        html_path=html_path,
        skipped_columns=skipped,
    )


def _is_categorical(series: Any) -> bool:
    import pandas as pd

    return bool(
        pd.api.types.is_bool_dtype(series)
        or pd.api.types.is_object_dtype(series)
        or isinstance(series.dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(series)
    )


def _missing(value: Any) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))


def _column_drifts(snapshot: dict[str, Any]) -> dict[str, ColumnDrift]:
    """Per-column score, method and threshold from the ValueDrift metrics; the verdict from their tests."""
    verdicts: dict[str, bool] = {}
    for test in snapshot.get("tests", []):
        params = (test.get("metric_config") or {}).get("params") or {}
        if params.get("type", "").endswith("ValueDrift") and "column" in params:
            verdicts[params["column"]] = test.get("status") == "FAIL"
    out: dict[str, ColumnDrift] = {}
    for metric in snapshot.get("metrics", []):
        config = metric.get("config") or {}
        if not config.get("type", "").endswith("ValueDrift"):
            continue
        column, method = config["column"], str(config.get("method"))
        score = float(metric["value"])
        threshold = float(config.get("threshold") or 0.0)
        drifted = verdicts.get(column, _drifted_by_rule(method, score, threshold))
        out[column] = ColumnDrift(
            column=column,
            method=method,
            score=score,
            threshold=threshold,
            drifted=drifted,
            strength=_strength(method, score, threshold, drifted),
        )
    return out


def _higher_is_drift(method: str, score: float, threshold: float, drifted: bool) -> bool:
    if method in _DISTANCE_METHODS:
        return True
    if method in _P_VALUE_METHODS:
        return False
    return drifted == (score >= threshold)


def _drifted_by_rule(method: str, score: float, threshold: float) -> bool:
    return score >= threshold if method in _DISTANCE_METHODS else score < threshold


def _strength(method: str, score: float, threshold: float, drifted: bool) -> float:
    """Distance / threshold, or threshold / p-value: at least 1 when drifted, larger is stronger."""
    if _higher_is_drift(method, score, threshold, drifted):
        return score / threshold if threshold > 0 else math.inf
    return threshold / score if score > 0 else math.inf
