"""Where a threshold sits in its gap, chosen on certification gold out of fold (never the locked test).

A cut separates the lowest emitted gold score from the highest one left out; the threshold can sit on
the lowest emitted score (``lowest``) or at the logit midpoint of the gap (``midpoint``, the default).
Both make the same decisions on the gold they were fitted on, so the comparison must be held out: the
rules are compared by 5-fold cross-validation over the certification gold of the current catalog
(``VIDCAT_HOME``, e.g. after ``make demo``), each fold's thresholds fitted on the other four.

    VIDCAT_HOME=.vidcat python -m bench threshold_placement
"""

from __future__ import annotations

from typing import Any


def run() -> dict[str, Any]:
    from dataclasses import replace

    from ml.catalog.model_registry import latest_model
    from ml.catalog.store import Catalog
    from ml.config import load_settings
    from ml.fusion.rules import compare_rules
    from ml.fusion.score_matrix import category_union
    from ml.fusion.stage import gold_inputs
    from ml.taxonomy import working_set_for

    settings = load_settings()
    if not settings.catalog_path.is_file():
        return {"skipped": f"no catalog at {settings.catalog_path}: run `make demo` (or set VIDCAT_HOME) first"}
    catalog = Catalog(settings.catalog_path)
    text = latest_model(catalog, "text_model", required=False)
    visual = latest_model(catalog, "visual_model", required=False)
    if text is None or visual is None:
        return {"skipped": "the catalog has no trained teacher and student yet"}
    ws = working_set_for(settings)
    categories = category_union(ws.ids, text.categories, visual.categories)
    ids, t, v, chars, y, _ = gold_inputs(catalog, text, visual, categories)
    policy = settings.threshold_policy()
    out: dict[str, Any] = {"gold_videos": len(ids), "data": "certification gold, 5-fold out of fold"}
    for name in ("midpoint", "lowest"):
        placed = replace(policy, placement=name)
        table = compare_rules(t, v, chars, y, placed, rules=("text", "visual"), categories=categories)
        for rule, m in table.items():
            for key in ("coverage", "precision", "recall", "f1"):
                out[f"{rule} {name} {key}"] = round(float(m[key]), 4)
    return out
