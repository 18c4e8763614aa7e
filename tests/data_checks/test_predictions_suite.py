"""The predictions suite: every defect in what ad serving reads is critical."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from data_checks.predictions_suite import validate_predictions

CATEGORIES = ["1", "2", "3"]


def clean() -> pd.DataFrame:
    now = dt.datetime(2024, 5, 1)
    return pd.DataFrame(
        {
            "video_id": ["a", "a", "b", "c"],
            "category_id": ["1", "2", "1", "3"],
            "model_version": ["m1"] * 4,
            "score": [0.9, 0.7, 0.6, 0.55],
            "source": ["text", "visual", "both", "text"],
            "text_score": [0.9, None, 0.6, 0.55],
            "visual_score": [None, 0.7, 0.8, 0.1],
            "text_threshold": [0.5, 0.5, 0.5, 0.55 + 1e-9],  # within tolerance
            "visual_threshold": [0.6, 0.6, 0.6, 0.6],
            "thresholds_version": ["t1"] * 4,
            "predicted_at": [now] * 4,
        }
    )


def thresholds_table(text: float = 0.5) -> pd.DataFrame:
    rows = []
    for c in CATEGORIES:
        rows.append(("t1", c, "text", text if c != "3" else 0.55, True))
        rows.append(("t1", c, "visual", 0.6, True))
    return pd.DataFrame(rows, columns=["version", "category_id", "source", "threshold", "enabled"])


def failed(outcome) -> dict[tuple[str, str | None], str]:
    return {(f.name, f.column): f.severity for f in outcome.failed}


def test_clean_predictions_pass():
    assert validate_predictions(clean(), category_ids=CATEGORIES).passed
    assert validate_predictions(clean(), category_ids=CATEGORIES, thresholds=thresholds_table()).passed


def test_score_above_one_and_unknown_category():
    df = clean()
    df.loc[0, "score"] = 1.2
    df.loc[3, "category_id"] = "999"
    outcome = validate_predictions(df, category_ids=CATEGORIES)
    assert failed(outcome) == {
        ("expect_column_values_to_be_between", "score"): "critical",
        ("expect_column_values_to_be_in_set", "category_id"): "critical",
    }


def test_duplicate_key_and_bad_source():
    df = pd.concat([clean(), clean().iloc[[0]]], ignore_index=True)
    df.loc[1, "source"] = "teletext"
    outcome = validate_predictions(df, category_ids=CATEGORIES)
    assert ("expect_compound_columns_to_be_unique", None) in failed(outcome)
    assert ("expect_column_values_to_be_in_set", "source") in failed(outcome)


def test_threshold_inconsistent_decisions():
    df = clean()
    df.loc[0, "text_score"] = 0.3  # text source below the text threshold
    df.loc[2, "visual_score"] = None  # "both" without a visual score
    outcome = validate_predictions(df, category_ids=CATEGORIES)
    assert failed(outcome) == {("expect_column_values_to_be_in_set", "decision_consistent"): "critical"}
    assert [(r["video_id"], r["category_id"]) for r in outcome.examples] == [("a", "1"), ("b", "1")]


def test_thresholds_table_is_authoritative():
    # The rows carry a stale 0.5 text threshold; the table says 0.95 now: text decisions fail.
    outcome = validate_predictions(clean(), category_ids=CATEGORIES, thresholds=thresholds_table(text=0.95))
    assert not outcome.passed
    assert {r["category_id"] for r in outcome.examples} == {"1"}
    # A disabled threshold means the source cannot emit the category.
    table = thresholds_table()
    table.loc[(table["category_id"] == "2") & (table["source"] == "visual"), "enabled"] = False
    outcome = validate_predictions(clean(), category_ids=CATEGORIES, thresholds=table)
    assert [(r["video_id"], r["category_id"]) for r in outcome.examples] == [("a", "2")]


def test_fused_source_needs_the_fused_threshold():
    df = clean()
    df.loc[0, "source"] = "fused"
    df["fused_threshold"] = 0.5
    df.loc[0, "score"] = 0.6
    assert validate_predictions(df, category_ids=CATEGORIES).passed
    df.loc[0, "score"] = 0.4
    outcome = validate_predictions(df, category_ids=CATEGORIES)
    assert failed(outcome) == {("expect_column_values_to_be_in_set", "decision_consistent"): "critical"}


def _with_parent(parent_score: float, child_too: bool) -> pd.DataFrame:
    """Video d gets parent 9 (Root) by back-off; with ``child_too`` also its child 1 (Root > One)."""
    df = clean()
    df["path"] = ["Root > One", "Two", "Root > One", "Three"]
    extra = {
        "video_id": "d",
        "category_id": "9",
        "model_version": "m1",
        "score": parent_score,
        "source": "backoff",
        "text_score": 0.4,
        "visual_score": 0.45,
        "text_threshold": float("nan"),
        "visual_threshold": float("nan"),
        "thresholds_version": "t1",
        "predicted_at": df["predicted_at"][0],
        "path": "Root",
    }
    rows = [extra]
    if child_too:
        rows.append({**df.iloc[0].to_dict(), "video_id": "d"})
    return pd.concat([df, pd.DataFrame(rows)], ignore_index=True)


def _table_with_node(cut: float) -> pd.DataFrame:
    return pd.concat(
        [thresholds_table(), pd.DataFrame([("t1", "9", "backoff", cut, True)], columns=thresholds_table().columns)]
    )


def test_a_backoff_parent_is_checked_against_its_own_certified_cut():
    ids = [*CATEGORIES, "9"]
    assert validate_predictions(_with_parent(0.7, False), category_ids=ids, thresholds=_table_with_node(0.6)).passed
    outcome = validate_predictions(_with_parent(0.5, False), category_ids=ids, thresholds=_table_with_node(0.6))
    assert failed(outcome) == {("expect_column_values_to_be_in_set", "decision_consistent"): "critical"}


def test_a_video_never_carries_a_category_and_its_parent():
    ids = [*CATEGORIES, "9"]
    outcome = validate_predictions(_with_parent(0.7, True), category_ids=ids, thresholds=_table_with_node(0.6))
    assert failed(outcome) == {("expect_column_values_to_be_in_set", "with_its_descendant"): "critical"}
