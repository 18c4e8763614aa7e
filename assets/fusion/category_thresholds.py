"""`category_thresholds`: per category and source, the score whose precision on gold is certified (the promise)."""

import dagster as dg

from assets.core.metering import metered
from assets.core.resources import VidcatResource
from ml.catalog.summary import md_table
from ml.fusion.stage import fit_fusion_on_gold
from ml.plots import markdown_image, precision_coverage_png

PROMISE_CHECK = "rule_holds_promise"


@dg.asset(
    deps=["text_predictions", "visual_predictions"],
    group_name="fusion",
    kinds={"duckdb", "sklearn"},
    check_specs=[
        dg.AssetCheckSpec(
            PROMISE_CHECK,
            asset="category_thresholds",
            blocking=False,
            description="The chosen rule holds the promised precision in every category on held-out gold folds",
        )
    ],
)
@metered
def category_thresholds(context: dg.AssetExecutionContext, vidcat: VidcatResource):
    """Thresholds per category and source on human-verified labels, which categories are visual, the fusion rule."""
    settings = vidcat.settings()
    ws = vidcat.working_set()
    policy = settings.threshold_policy()  # one object: the promise stated is the one certified
    fitted = fit_fusion_on_gold(
        vidcat.catalog(),
        ws,
        settings.models_dir,
        policy,
        rule=settings.fusion_rule,
        promised_precision=settings.target_precision,
        backoff=settings.fusion_backoff,
    )
    m = fitted.model
    enabled = {
        "text": sum(t.enabled for t in m.text_thresholds),
        "visual": sum(t.enabled for t in m.visual_thresholds),
        "fused": sum(t.enabled for t in m.fused_thresholds or []),
    }
    comparison_rows = [
        (
            rule,
            f"{r['coverage']:.2f}",
            f"{r['categories_per_video']:.2f}",
            f"{r['precision']:.3f}",
            f"{r['recall']:.3f}",
            f"{r['f1']:.3f}",
            f"{r['macro_precision']:.3f}",
            f"{r['worst_category_precision']:.3f}",
            str(len(r.get("failing_categories", []))),
        )
        for rule, r in fitted.comparison.items()
    ]
    per_category = [
        (c, ws.by_id(c).full_name if c in ws else c, _cell(tt), _cell(vt), "yes" if vis else "no")
        for c, tt, vt, vis in zip(
            fitted.categories, m.text_thresholds, m.visual_thresholds, fitted.is_visual, strict=True
        )
    ]
    context.log.info(
        f"fusion {fitted.version}: rule {fitted.rule} on {fitted.gold_videos} gold videos; "
        f"enabled text {enabled['text']}, visual {enabled['visual']}, fused {enabled['fused']}"
    )
    if fitted.student_trained_on:
        context.log.warning(
            f"{fitted.student_trained_on} certification gold video(s) were training videos of visual model "
            f"{fitted.visual_version} and were left out; retrain the student to certify on them"
        )
    png = precision_coverage_png(fitted.curves, target=settings.target_precision, max_panels=12)
    choice = fitted.choice
    if not choice.holds:
        names = ", ".join(f"{f['category_id']} ({f['precision']:.2f})" for f in choice.failing) or "pooled precision"
        context.log.warning(f"{choice.reason}: {names}")
    yield dg.MaterializeResult(
        metadata={
            "version": fitted.version,
            "promise": policy.promise(),
            "rule": fitted.rule,
            "gold_videos": dg.MetadataValue.int(fitted.gold_videos),
            "gold_left_out_student_trained_on": dg.MetadataValue.int(fitted.student_trained_on),
            "categories": dg.MetadataValue.int(len(fitted.categories)),
            "enabled_text": dg.MetadataValue.int(enabled["text"]),
            "enabled_visual": dg.MetadataValue.int(enabled["visual"]),
            "enabled_fused": dg.MetadataValue.int(enabled["fused"]),
            "visual_categories": dg.MetadataValue.int(sum(fitted.is_visual)),
            "comparison_held_out_gold": dg.MetadataValue.md(
                md_table(
                    comparison_rows,
                    [
                        "rule",
                        "coverage",
                        "categories/video",
                        "precision",
                        "recall",
                        "F1",
                        "macro precision",
                        "worst category",
                        "failing",
                    ],
                )
            ),
            "thresholds": dg.MetadataValue.md(md_table(per_category, ["id", "category", "text", "visual", "visual?"])),
            "precision_coverage": dg.MetadataValue.md(markdown_image(png, "precision-coverage per category")),
            "text_model_version": fitted.text_version,
            "visual_model_version": fitted.visual_version,
            "path": dg.MetadataValue.path(str(fitted.path)),
            "rule_choice": choice.reason,
            **_backoff_metadata(m.backoff),
        }
    )
    failing_rows = [
        (
            f["category_id"],
            ws.by_id(f["category_id"]).full_name if f["category_id"] in ws else "",
            f["emitted"],
            f"{f['precision']:.3f}",
        )
        for f in choice.failing
    ]
    yield dg.AssetCheckResult(
        check_name=PROMISE_CHECK,
        passed=choice.holds,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "rule": fitted.rule,
            "promise": policy.promise(),
            "failing_categories": dg.MetadataValue.md(
                md_table(failing_rows, ["id", "category", "emitted out of fold", "precision"])
                if failing_rows
                else "none"
            ),
        },
        description=choice.reason,
    )


def _cell(t) -> str:
    if t.enabled:
        return f"{t.threshold:.3f} (P {t.precision:.2f}, certified >= {t.lower_bound:.2f}, R {t.recall:.2f})"
    return f"off: {t.reason}"[:60]


def _backoff_metadata(backoff) -> dict:
    """The parents that may be said where their children cannot be told apart, and how the combiner was chosen."""
    if backoff is None:
        return {"backoff": "off"}
    tree = backoff.tree
    rows = [
        (node, tree.paths[col], _cell(th))
        for node, col, th in zip(tree.nodes, tree.node_columns, backoff.thresholds, strict=True)
        if th.positives
    ]
    comparison = [
        (name, f"{r['coverage']:.3f}", f"{r['node_precision']:.3f}", f"{r['mean_tier']:.2f}")
        for name, r in backoff.comparison.items()
    ]
    return {
        "backoff_combiner": backoff.combiner,
        "backoff_certified": dg.MetadataValue.int(sum(t.enabled for t in backoff.thresholds)),
        "backoff_nodes": dg.MetadataValue.md(
            md_table(rows, ["id", "parent", "cut on gold its children leave unsaid"]) if rows else "none"
        ),
        "backoff_comparison_held_out_gold": dg.MetadataValue.md(
            md_table(comparison, ["node score", "coverage", "node precision", "mean tier"])
        ),
    }
