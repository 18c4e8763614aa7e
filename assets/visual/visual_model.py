"""`visual_model`: NeXtVLAD over frame embeddings, trained on editor labels and the teacher's pseudo-labels."""

import dagster as dg

from assets.core.metering import metered
from assets.core.resources import VidcatResource
from ml.catalog.summary import md_table
from ml.plots import curves_png, markdown_image
from ml.visual.stage import NotEnoughLabels, record_not_trained, train_student


@dg.asset(deps=["frame_embeddings", "pseudo_labels"], group_name="visual", kinds={"pytorch", "onnx"})
@metered
def visual_model(context: dg.AssetExecutionContext, vidcat: VidcatResource) -> dg.MaterializeResult:
    """The student: editor labels, soft pseudo-labels and certified self-training; never gold or the locked test."""
    settings = vidcat.settings()
    try:
        r = train_student(vidcat.catalog(), settings, vidcat.working_set().ids)
    except NotEnoughLabels as exc:
        # Too little data is a state of the catalog, not a failure: fusion runs on text alone until
        # there is enough, and `vidcat status` says what is missing.
        record_not_trained(settings.models_dir, str(exc))
        context.log.warning(f"no visual model: {exc}")
        return dg.MaterializeResult(metadata={"status": "not trained", "reason": str(exc)})
    history = r.history
    png = curves_png(
        {
            "train loss": [h.get("train_loss", float("nan")) for h in history],
            "val loss": [h.get("val_loss", float("nan")) for h in history],
            "val GAP@20": [h.get("val_gap", float("nan")) for h in history],
        },
        title=f"visual_model {r.version}",
    )
    gold_rows = [(arch, g.get("videos", 0), _fmt(g.get("gap_at_20")), _fmt(g.get("map"))) for arch, g in r.gold.items()]
    context.log.info(
        f"visual_model {r.version}: {len(r.categories)} categories, {r.train_seconds:.0f}s, targets {r.sources}, "
        f"self-training accepted {r.self_training.get('accepted_videos', 0)} video(s)"
    )
    source_rows = [(k, n) for k, n in r.sources.items()]
    ood = r.ood
    return dg.MaterializeResult(
        metadata={
            "version": r.version,
            "path": dg.MetadataValue.path(str(r.model_dir)),
            "teacher_version": r.teacher_version,
            "categories": dg.MetadataValue.int(len(r.categories)),
            "training_videos": dg.MetadataValue.int(r.training_videos),
            "parameters": dg.MetadataValue.int(r.param_count),
            "train_seconds": dg.MetadataValue.float(round(r.train_seconds, 1)),
            "val_gap": dg.MetadataValue.float(float(r.metrics.get("val_gap_at_20") or 0.0)),
            "targets_by_source": dg.MetadataValue.md(md_table(source_rows, ["source", "videos"])),
            "self_training_accepted": dg.MetadataValue.int(int(r.self_training.get("accepted_videos", 0))),
            "self_training_certified_categories": dg.MetadataValue.int(
                len(r.self_training.get("certified_categories", []))
            ),
            "ood_threshold": dg.MetadataValue.float(round(float(ood.get("threshold", float("nan"))), 4)),
            "ood_reference_videos": dg.MetadataValue.int(int(ood.get("reference_videos", 0))),
            "ood_heldout_flagged_share": dg.MetadataValue.float(
                round(float(ood.get("heldout_flagged_share", float("nan"))), 4)
            ),
            "gold": dg.MetadataValue.md(md_table(gold_rows, ["architecture", "gold videos", "GAP@20", "mAP"])),
            "training_curve": dg.MetadataValue.md(markdown_image(png, "training curve")),
        }
    )


def _fmt(x) -> str:
    return "" if x is None else f"{x:.3f}"
