"""`visual_model`: NeXtVLAD over frame embeddings, trained on the teacher's pseudo-labels (Lightning)."""

import dagster as dg

from ml.catalog.summary import md_table
from ml.plots import curves_png, markdown_image
from ml.visual.stage import train_student
from orchestration.resources import VidcatResource


@dg.asset(deps=["frame_embeddings", "pseudo_labels"], group_name="visual", kinds={"pytorch", "onnx"})
def visual_model(context: dg.AssetExecutionContext, vidcat: VidcatResource) -> dg.MaterializeResult:
    """The student: trained on pseudo-labelled videos, validated on held-out pseudo-labels, reported on gold."""
    settings = vidcat.settings()
    r = train_student(vidcat.catalog(), settings, vidcat.working_set().ids)
    history = r.history
    png = curves_png(
        {
            "train loss": [h.get("train_loss", float("nan")) for h in history],
            "val loss": [h.get("val_loss", float("nan")) for h in history],
            "val GAP@20 (pseudo-labels)": [h.get("val_gap", float("nan")) for h in history],
        },
        title=f"visual_model {r.version}",
    )
    gold_rows = [(arch, g.get("videos", 0), _fmt(g.get("gap_at_20")), _fmt(g.get("map"))) for arch, g in r.gold.items()]
    context.log.info(f"visual_model {r.version}: {len(r.categories)} categories, {r.train_seconds:.0f}s")
    return dg.MaterializeResult(
        metadata={
            "version": r.version,
            "path": dg.MetadataValue.path(str(r.model_dir)),
            "teacher_version": r.teacher_version,
            "categories": dg.MetadataValue.int(len(r.categories)),
            "training_videos": dg.MetadataValue.int(r.training_videos),
            "parameters": dg.MetadataValue.int(r.param_count),
            "train_seconds": dg.MetadataValue.float(round(r.train_seconds, 1)),
            "val_gap_pseudo_labels": dg.MetadataValue.float(float(r.metrics.get("val_gap_at_20") or 0.0)),
            "gold": dg.MetadataValue.md(md_table(gold_rows, ["architecture", "gold videos", "GAP@20", "mAP"])),
            "training_curve": dg.MetadataValue.md(markdown_image(png, "training curve")),
        }
    )


def _fmt(x) -> str:
    return "" if x is None else f"{x:.3f}"
