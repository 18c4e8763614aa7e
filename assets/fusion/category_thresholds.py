"""`category_thresholds`: per category and source, the score that holds 80% precision on gold labels."""

import dagster as dg

from ml.catalog.summary import md_table
from ml.fusion.stage import fit_fusion_on_gold
from ml.plots import markdown_image, precision_coverage_png
from orchestration.resources import VidcatResource


@dg.asset(
    deps=["text_predictions", "visual_predictions"],
    group_name="fusion",
    kinds={"duckdb", "sklearn"},
)
def category_thresholds(context: dg.AssetExecutionContext, vidcat: VidcatResource) -> dg.MaterializeResult:
    """Thresholds per category and source on human-verified labels, which categories are visual, the fusion rule."""
    settings = vidcat.settings()
    ws = vidcat.working_set()
    fitted = fit_fusion_on_gold(
        vidcat.catalog(),
        ws,
        settings.models_dir,
        settings.threshold_policy(),
        rule=settings.fusion_rule,
        promised_precision=settings.target_precision,
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
            f"{r['gap']:.3f}",
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
    png = precision_coverage_png(fitted.curves, target=settings.target_precision, max_panels=12)
    return dg.MaterializeResult(
        metadata={
            "version": fitted.version,
            "rule": fitted.rule,
            "gold_videos": dg.MetadataValue.int(fitted.gold_videos),
            "categories": dg.MetadataValue.int(len(fitted.categories)),
            "enabled_text": dg.MetadataValue.int(enabled["text"]),
            "enabled_visual": dg.MetadataValue.int(enabled["visual"]),
            "enabled_fused": dg.MetadataValue.int(enabled["fused"]),
            "visual_categories": dg.MetadataValue.int(sum(fitted.is_visual)),
            "comparison_held_out_gold": dg.MetadataValue.md(
                md_table(
                    comparison_rows, ["rule", "coverage", "categories/video", "precision", "recall", "F1", "GAP@20"]
                )
            ),
            "thresholds": dg.MetadataValue.md(md_table(per_category, ["id", "category", "text", "visual", "visual?"])),
            "precision_coverage": dg.MetadataValue.md(markdown_image(png, "precision-coverage per category")),
            "text_model_version": fitted.text_version,
            "visual_model_version": fitted.visual_version,
            "path": dg.MetadataValue.path(str(fitted.path)),
        }
    )


def _cell(t) -> str:
    if t.enabled:
        return f"{t.threshold:.3f} (P {t.precision:.2f}, R {t.recall:.2f})"
    return f"off: {t.reason}"[:60]
