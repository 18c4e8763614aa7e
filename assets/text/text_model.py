"""`text_model`: the multilingual teacher, trained on editor labels, calibrated, versioned."""

import dagster as dg

from assets.core.metering import metered
from assets.core.resources import VidcatResource
from ml.catalog.summary import md_table
from ml.text.stage import train_teacher


@dg.asset(deps=["video_registry"], group_name="text", kinds={"sklearn", "onnx"})
@metered
def text_model(context: dg.AssetExecutionContext, vidcat: VidcatResource) -> dg.MaterializeResult:
    """multilingual-e5-small embeddings -> per-category calibrated logistic heads, on EN/FR editor labels."""
    settings = vidcat.settings()
    ws = vidcat.working_set()
    model, path, stats = train_teacher(vidcat.catalog(), ws.ids, settings)
    m = model.metrics
    per_category = m.get("per_category", {})
    rows = [
        (
            c,
            ws.by_id(c).full_name,
            v.get("n_pos", ""),
            _fmt(v.get("average_precision")),
            _fmt(v.get("ece_uncalibrated")),
            _fmt(v.get("ece_calibrated")),
        )
        for c, v in sorted(per_category.items(), key=lambda kv: -(kv[1].get("n_pos") or 0))
    ]
    context.log.info(f"text_model {model.version}: {len(model.categories)} categories from {stats['with_text']} videos")
    return dg.MaterializeResult(
        metadata={
            "version": model.version,
            "path": dg.MetadataValue.path(str(path)),
            "training_videos": dg.MetadataValue.int(stats["with_text"]),
            "labelled_videos_without_text": dg.MetadataValue.int(stats["videos"] - stats["with_text"]),
            "categories_covered": dg.MetadataValue.int(len(model.categories)),
            "categories_too_rare": dg.MetadataValue.int(len(model.uncovered)),
            "heldout_macro_ap": dg.MetadataValue.float(float(m.get("macro_average_precision") or 0.0)),
            "heldout_macro_ece_calibrated": dg.MetadataValue.float(float(m.get("macro_ece_calibrated") or 0.0)),
            "languages": dg.MetadataValue.json(stats["languages"]),
            "per_category": dg.MetadataValue.md(
                md_table(rows, ["id", "category", "positives", "held-out AP", "ECE raw", "ECE calibrated"])
            ),
        }
    )


def _fmt(x) -> str:
    return "" if x is None else f"{x:.3f}"
