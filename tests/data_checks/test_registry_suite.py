"""The registry suite passes clean `videos` rows and names each planted defect with its severity."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from data_checks.registry_suite import roots_regex, validate_registry

ROOTS = ["/data/media", "/data/inbox"]


def clean(n: int = 4) -> pd.DataFrame:
    now = dt.datetime(2024, 5, 1, 12, 0)
    return pd.DataFrame(
        {
            "video_id": [f"v{i}" for i in range(n)],
            "seq": list(range(1, n + 1)),
            "uri": [f"/data/media/v{i}.mp4" for i in range(n)],
            "language": ["en", "pt-br", None, "fil"][:n],
            "registered_at": [now] * n,
            "title": ["a title", None, "", "x" * 1000][:n],
        }
    )


def failed(outcome) -> dict[tuple[str, str | None], str]:
    return {(f.name, f.column): f.severity for f in outcome.failed}


def test_clean_rows_pass():
    outcome = validate_registry(clean(), media_roots=ROOTS)
    assert outcome.passed, outcome.summary()
    assert outcome.severity is None and outcome.n_rows == 4
    assert outcome.as_metadata()["failed_expectations"] == []


def test_duplicate_id_is_critical_and_shows_the_rows():
    df = clean()
    df.loc[2, "video_id"] = "v1"
    outcome = validate_registry(df, media_roots=ROOTS)
    assert not outcome.passed and outcome.blocking_failed
    assert failed(outcome) == {("expect_column_values_to_be_unique", "video_id"): "critical"}
    assert [r["seq"] for r in outcome.examples] == [2, 3]
    assert all("expect_column_values_to_be_unique(video_id)" in r["_failed"] for r in outcome.examples)


@pytest.mark.parametrize(
    "uri",
    ["/elsewhere/v.mp4", "/data/media2/v.mp4", "/data/media/../secret/v.mp4", "data/media/v.mp4", None],
)
def test_uri_outside_roots_is_critical(uri):
    df = clean()
    df.loc[0, "uri"] = uri
    outcome = validate_registry(df, media_roots=ROOTS)
    kinds = failed(outcome)
    expected = "expect_column_values_to_not_be_null" if uri is None else "expect_column_values_to_match_regex"
    assert kinds == {(expected, "uri"): "critical"}


def test_soft_defects_are_warnings():
    df = clean()
    df.loc[0, "language"] = "xx"  # looks like a code, is not ISO 639-1
    df.loc[1, "language"] = "English"
    df.loc[2, "title"] = "y" * 1001
    outcome = validate_registry(df, media_roots=ROOTS)
    assert outcome.severity == "warning" and not outcome.blocking_failed
    assert set(failed(outcome)) == {
        ("expect_column_values_to_be_in_set", "language_iso1"),
        ("expect_column_values_to_match_regex", "language"),
        ("expect_column_values_to_be_between", "title_len"),
    }
    long_title = next(r for r in outcome.examples if r["seq"] == 3)
    assert len(long_title["title"]) <= 201  # examples are clipped for metadata


def test_title_len_from_sql_and_null_structure():
    df = clean().drop(columns=["title"]).assign(title_len=[3, None, 0, 5000])
    df.loc[1, "seq"] = 1
    df.loc[3, "registered_at"] = None
    outcome = validate_registry(df, media_roots=ROOTS)
    assert set(failed(outcome)) == {
        ("expect_column_values_to_be_unique", "seq"),
        ("expect_column_values_to_not_be_null", "registered_at"),
        ("expect_column_values_to_be_between", "title_len"),
    }


def test_suite_is_built_once_and_roots_are_a_parameter():
    from data_checks import gx_runner

    validate_registry(clean(), media_roots=ROOTS)
    cached = {k for k in gx_runner._suites if k[0] == "registry"}
    outcome = validate_registry(clean(), media_roots=["/other"])
    assert {k for k in gx_runner._suites if k[0] == "registry"} == cached
    assert not outcome.passed and outcome.context["media_roots"] == ["/other"]


def test_roots_regex_without_roots_allows_nothing():
    import re

    assert re.match(roots_regex([]), "/data/media/v.mp4") is None
    assert re.match(roots_regex(["/a/"]), "/a/b.mp4")
