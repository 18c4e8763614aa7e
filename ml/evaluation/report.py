"""What `vidcat report` and `vidcat eval-visual` print: each a dict for ``--json`` and the same as text.

- ``pipeline_report``: the fusion rules compared out of fold on certification gold (the choice the
  fusion model records), the visual student's training sources and gold figures, and the locked test.
- ``student_report``: the student on the locked test, either its architectures (and, asked for, each
  ingredient switched off alone) or its label budgets.

Both use the same locked test: the demo's ground truth when the catalog is the demo's, else the locked
share of gold (``reported_locked_test``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ml.catalog.model_registry import ModelNotTrained
from ml.catalog.store import Catalog
from ml.errors import UserFacingError
from ml.evaluation.locked import LockedTest


class NoLockedTest(UserFacingError, LookupError):
    """The catalog keeps no locked test to measure on."""


def _f(x) -> str:
    return "n/a" if x is None or x != x else f"{x:.3f}"


def reported_locked_test(catalog: Catalog, demo_dir: Path) -> LockedTest:
    """The demo's locked test against its ground truth on a demo catalog, else gold's locked share."""
    from ml.evaluation.demo import demo_locked_test, has_demo_test
    from ml.evaluation.locked import gold_locked_test

    test = demo_locked_test(catalog, demo_dir) if has_demo_test(catalog, demo_dir) else None
    if test is None or not test.video_ids:
        test = gold_locked_test(catalog)
    return test


def fusion_comparison(fusion) -> tuple[dict, str]:
    """The rules fusion model ``fusion`` (its registry record) compared on certification gold, as data and
    as a table."""
    from ml.catalog.summary import md_table

    comparison = fusion.metrics["comparison"]
    rows = [
        (
            ("* " if rule == fusion.params.get("rule") else "") + rule,
            f"{m['coverage']:.3f}",
            f"{m['categories_per_video']:.2f}",
            _f(m["precision"]),
            _f(m["recall"]),
            _f(m["f1"]),
            _f(m.get("macro_precision")),
            _f(m.get("worst_category_precision")),
            len(m.get("failing_categories", [])),
        )
        for rule, m in comparison.items()
    ]
    table = md_table(
        rows,
        ["rule", "coverage", "categories/video", "precision", "recall", "F1", "macro P", "worst category P", "failing"],
    )
    choice = fusion.metrics.get("choice", {})
    return {
        "fusion_version": fusion.version,
        "chosen_rule": fusion.params.get("rule"),
        "gold_videos": fusion.training_data.get("gold_videos"),
        "comparison": comparison,
        "choice": choice,
    }, table


def locked_test_report(settings, catalog: Catalog, ws=None, record=None) -> tuple[dict | None, str]:
    """The locked-test table (demo ground truth, or the locked share of gold), or a line saying why not.

    ``record``: the fusion model's registry row to report (default: the latest one).
    """
    from ml.catalog.holdout import locked_test_ids
    from ml.evaluation.locked import evaluate_locked_test, format_report
    from ml.frames.embedding_store import list_shards
    from ml.fusion.stage import load_current_fusion, served_policy

    if not locked_test_ids(catalog):
        return None, (
            "No locked test: import gold with `vidcat import-gold FILE --test-share 0.3` (or run the demo) to "
            "keep a share that nothing trains or tunes on."
        )
    test = reported_locked_test(catalog, settings.demo_dir)
    fusion = load_current_fusion(catalog, record)
    shards = list_shards(settings.embeddings_dir, settings.image_encoder)
    report = evaluate_locked_test(catalog, fusion, test, shards, policy=served_policy(catalog, settings, fusion))
    names = {c.id: c.full_name for c in ws.categories} if ws is not None else None
    return report, format_report(report, names)


def pipeline_report(settings, catalog: Catalog, ws=None) -> tuple[dict, str]:
    """`vidcat report`: the promise, the fusion comparison, the visual student's training, and the locked test.

    The promise heads it because the audit below checks it: a reader must see what was certified
    (under the policy the current fusion recorded) before the verdict on it.
    """
    from ml.catalog.model_registry import get_model, latest_model
    from ml.fusion.stage import served_policy

    # One fusion model for the whole report: the promise at its head, its rule comparison, its student and
    # the locked-test audit all describe the same one, even if a newer one is registered meanwhile.
    record = latest_model(catalog, "fusion", required=False)
    if record is None:
        raise ModelNotTrained("no fusion model yet: materialize category_thresholds (`vidcat backfill --train --wait`)")
    data, table = fusion_comparison(record)
    data["promise"] = served_policy(catalog, settings, record=record).promise()
    choice = data.get("choice") or {}
    lines = [
        f"The promise: {data['promise']}.",
        "",
        f"Fusion {data['fusion_version']}: rules compared out of fold on {data['gold_videos']} gold videos "
        f"(certification share; * = chosen: {choice.get('reason', 'best held-out F1')})",
        table,
    ]
    if choice and not choice.get("holds", True):
        failing = ", ".join(f"{f['category_id']} ({f['precision']:.2f})" for f in choice.get("failing", []))
        lines.append(f"WARNING: the chosen rule misses the promise on held-out gold in: {failing}")
    student = record.params.get("visual_model_version")
    visual = get_model(catalog, "visual_model", student) if student else None
    if visual is not None:
        data["visual_training"] = {
            "sources": visual.training_data.get("sources"),
            "self_training": visual.training_data.get("self_training"),
            "gold": visual.metrics.get("gold"),
        }
        gold = visual.metrics.get("gold") or {}
        gold_line = ", ".join(f"{a} GAP@20 {_f(g.get('gap_at_20'))}" for a, g in gold.items())
        lines += [
            "",
            f"Visual student {visual.version}: targets by source {visual.training_data.get('sources')}; "
            f"self-training accepted {(visual.training_data.get('self_training') or {}).get('accepted_videos', 0)} "
            f"video(s); on certification gold (never trained on, locked test left out): {gold_line}",
        ]
    test, text = locked_test_report(settings, catalog, ws, record)
    data["locked_test"] = test
    lines += ["", text]
    return data, "\n".join(lines)


def student_report(
    settings,
    catalog: Catalog,
    ws,
    budgets: Sequence[float] | None = None,
    *,
    ablation: bool = False,
    seeds: int = 1,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict, str]:
    """`vidcat eval-visual`: architectures (and ``ablation``) without ``budgets``, else the label budgets."""
    from ml.catalog.labels import pseudo_label_rows
    from ml.catalog.model_registry import latest_model
    from ml.catalog.summary import md_table
    from ml.evaluation.architectures import compare_student_architectures
    from ml.evaluation.demo import has_demo_test
    from ml.evaluation.label_budget import label_budget
    from ml.evaluation.student import ablation as ablate
    from ml.evaluation.student import eval_context, format_rows
    from ml.visual.targets import TargetPolicy, pseudo_targets

    test = reported_locked_test(catalog, settings.demo_dir)
    if not test.video_ids:
        raise NoLockedTest("no locked test: `vidcat import-gold FILE --test-share 0.3`, or run `vidcat demo`")
    ctx = eval_context(catalog, settings, test, ws.ids)
    teacher = latest_model(catalog, "text_model", required=False)
    pseudo: tuple[dict, dict] = ({}, {})
    if teacher is not None:
        pseudo = pseudo_targets(
            pseudo_label_rows(catalog, teacher.version), ctx.categories, TargetPolicy.from_settings(settings)
        )
    result: dict = {"locked_test": {"videos": len(test.video_ids), "labels": test.source}}
    sections = [f"Locked test: {len(test.video_ids)} videos, labels from {test.source}; thresholds on gold."]
    if budgets is None:
        result["architectures"] = compare_student_architectures(ctx, pseudo)
        rows, head = format_rows(result["architectures"], "student")
        sections += ["", "NeXtVLAD against mean pooling (same targets, seed, epochs) and the baseline:"]
        sections.append(md_table(rows, head))
        if ablation:
            result["ablation"] = ablate(ctx, pseudo)
            rows, head = format_rows(result["ablation"])
            sections += ["", "Each ingredient switched off alone:", md_table(rows, head)]
        return result, "\n".join(sections)
    pool_truth = None
    if has_demo_test(catalog, settings.demo_dir):  # the demo's pool: its truth measures the teacher
        from ml.demo.truth import load_truth

        pool_truth = {v: r["labels"] for v, r in load_truth(settings.demo_dir).items() if r["split"] == "pool"}
    result["label_budget"] = label_budget(catalog, ctx, budgets, progress=progress, seeds=seeds, pool_truth=pool_truth)
    for b, entry in result["label_budget"]["budgets"].items():
        systems = ("editor only", "editor + pseudo-labels", "baseline", "baseline, pool's true labels")
        rows, head = format_rows({k: entry[k] for k in systems if k in entry}, f"budget {b}")
        sections += [
            "",
            f"Editor labels {b} ({entry['editor_videos']} videos); teacher pseudo-labels "
            f"{entry.get('pseudo_labelled_videos', 0)} videos {entry.get('teacher_error', '')}".rstrip(),
            md_table(rows, head),
        ]
        for name in ("teacher on pool", "teacher without prior on pool"):
            t = entry.get(name) or {}
            if "videos" in t:
                f = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
                sections.append(
                    f"{name}: {t['videos']} videos with text, {t['calls']} calls at its pseudo-label cut, "
                    f"precision {f(t['precision'])}, recall {f(t['recall'])}, GAP@20 {t['gap']:.3f}"
                )
    return result, "\n".join(sections)
