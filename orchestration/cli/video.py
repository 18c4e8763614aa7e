"""Single-video commands: inspect (what the encoder sees), classify (the real-time path), explain."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestration.cli import CommandError, emit, open_context


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="probe facts, sampled timestamps and the encoder's top ImageNet classes")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("classify", help="one file through probe, frames, both models, thresholds and fusion")
    p.add_argument("file")
    p.add_argument("--title")
    p.add_argument("--description")
    p.add_argument("--tags")
    p.add_argument("--language", help="declared ISO 639-1 language of the text")
    p.add_argument(
        "--segments",
        action="store_true",
        help="also the scenes: time ranges, their categories under certified scene thresholds, suggested ad breaks",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("explain", help="why a registered video got (or did not get) a category")
    p.add_argument("video_id")
    p.add_argument("category", nargs="?", help="IAB id; default: every category the video was given")
    p.add_argument("--html", help="also write an HTML page with frame thumbnails to this path")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_explain)


def cmd_inspect(args) -> int:
    from ml.config import load_settings
    from ml.frames.errors import VideoError
    from ml.frames.inspect_video import inspect_video
    from ml.frames.probe import probe

    settings = load_settings(args.config).ensure_dirs()
    path = Path(args.file)
    if not path.exists():
        raise CommandError(f"{path} does not exist")
    try:
        facts = probe(path, timeout_s=settings.decode_timeout_s, max_pixels=settings.max_pixels).as_dict()
    except VideoError as exc:
        raise CommandError(f"{type(exc).__name__}: {exc}") from exc
    try:
        result = {"probe": facts, **inspect_video(path, settings)}
    except VideoError as exc:
        raise CommandError(f"{type(exc).__name__}: {exc}") from exc
    if args.json:
        emit(result, True)
    else:
        print(
            f"{path.name}: {facts['container']} {facts['video_codec']} {facts['width']}x{facts['height']} "
            f"{_seconds(facts['duration_s'])}, {result['n_frames']} frames sampled, "
            f"embeddings {result['embedding_shape']}"
        )
        for c in result["top_classes"]:
            print(f"  {c['probability']:.3f}  {c['id']:>4}  {c['name']}")
    return 0


def _seconds(duration: float | None) -> str:
    return "unknown duration" if duration is None else f"{duration:.1f}s"


def cmd_classify(args) -> int:
    from ml.catalog.model_registry import ModelNotTrained
    from ml.serving.classify import classify_file

    settings, catalog, ws = open_context(args)
    path = Path(args.file)
    if not path.exists():
        raise CommandError(f"{path} does not exist")
    try:
        result = classify_file(
            path,
            settings,
            catalog,
            ws,
            title=args.title,
            description=args.description,
            tags=args.tags,
            language=args.language,
            segments=args.segments,
        )
    except ModelNotTrained as exc:
        raise CommandError(str(exc)) from exc
    probe = result.get("probe") or {}
    if "error" in probe:
        # A file that does not open is never classified, whatever its title says (as in the batch path).
        raise CommandError(f"{path.name} cannot be classified: {probe['error']}: {probe['message']}")
    if args.json:
        emit(result, True)
        return 0
    print(f"{path.name}: fusion {result['fusion_version']} ({result['rule']})")
    ood = result.get("out_of_distribution")
    if ood:
        print(f"  out-of-distribution score {ood['score']} (threshold {ood['threshold']}): {ood['decision']}")
    for key in ("probe", "frames"):
        if isinstance(result.get(key), dict) and "error" in result[key]:
            print(f"  {key}: {result[key]['error']}: {result[key]['message']}")
    if not result["categories"]:
        print("  no category reaches its threshold")
    for c in result["categories"]:
        if c["source"] == "backoff":
            detail = f"parent of what the sources could not tell apart; certified cut {c['backoff_threshold']}"
        else:
            detail = (
                f"text {c['text_score']} / thr {c['text_threshold']}, visual {c['visual_score']} / thr "
                f"{c['visual_threshold']}"
            )
        print(f"  {c['id']:>8}  {c['name']:<45} tier {c['tier']}  {c['score']:.3f}  via {c['source']:<7} ({detail})")
    if args.segments:
        print_segments(result["segments"], ws)
    print(f"  took {result['timings_s']['total_s']}s")
    return 0


def print_segments(seg: dict, ws) -> None:
    """Scenes with their time ranges and categories (or why none), then the suggested mid-roll breaks."""
    from ml.segments.certification import NO_THRESHOLD as NO_SCENE_THRESHOLD

    names = {c.id: c.full_name for c in ws.categories} if ws is not None else {}
    if seg.get("error"):
        print(f"  scenes: {seg['error']}")
        return
    if not seg["scenes"]:
        print("  scenes: none stored yet (its batch has not been segmented)")
        return
    version = seg.get("scene_thresholds_version")
    print(f"  scenes ({'scene thresholds ' + version if version else 'no certified scene threshold'}):")
    for s in seg["scenes"]:
        span = f"{s['start_s']:7.1f} - {s['end_s']:7.1f} s"
        if s["categories"]:
            what = ", ".join(f"{c['id']} {names.get(c['id'], '')} ({c['score']:.3f})" for c in s["categories"])
        else:
            what = s["abstained"] or "no category reaches its scene threshold"
            top = s.get("top")
            if top and not s["abstained"]:
                state = "below its certified scene threshold" if top["certified"] else NO_SCENE_THRESHOLD
                what = f"no category (best: {top['id']} {names.get(top['id'], '')} {top['score']:.3f}, {state})"
        print(f"    {'|' if s['break_before'] else ' '} {span}  {what}")
    breaks = seg.get("breaks") or []
    print(
        "  suggested mid-roll breaks: "
        + (", ".join(f"{t:.1f} s" for t in breaks) if breaks else "none")
        + " (scene boundaries where the categories change, not in the first or last 10 s)"
    )


def cmd_explain(args) -> int:
    from ml.serving.explain import NotClassified, explain_video, write_explanation

    settings, catalog, ws = open_context(args)
    try:
        exp = explain_video(catalog, settings, ws, args.video_id, args.category, thumbnails=bool(args.html))
    except (KeyError, NotClassified) as exc:
        raise CommandError(str(exc).strip("'\"")) from exc
    if args.html:
        path = write_explanation(exp, Path(args.html))
        print(f"wrote {path}", file=sys.stderr)
    if args.json:
        for c in exp["categories"]:
            for f in c.get("top_frames", []):
                f.pop("thumbnail", None)
        emit(exp, True)
        return 0
    print(f"{exp['video_id']}: {exp.get('title') or '(no title)'} [fusion {exp['fusion_version']}, {exp['rule']}]")
    if exp.get("promise"):
        print(f"  promise: {exp['promise']}")
    ood = exp.get("out_of_distribution")
    if ood:
        print(f"  out-of-distribution score {ood['score']} (threshold {ood['threshold']}): {ood['decision']}")
    abstained = {k: v for k, v in (exp.get("abstained") or {}).items() if v}
    if abstained:
        print("  abstained: " + ", ".join(f"{k} ({v})" for k, v in abstained.items()))
    print_segments(exp["segments"], ws)
    if not exp["categories"]:
        print("  no category was emitted; name one to see why not: vidcat explain VIDEO_ID CATEGORY")
    for c in exp["categories"]:
        state = f"emitted via {c['source']} ({c['score']})" if c["emitted"] else "not emitted"
        print(f"  {c['id']} {c['name']} (tier {c.get('tier')}): {state}")
        if "backoff_threshold" in c:
            cert = c.get("backoff_certified") or {}
            held = (
                f"gold precision {cert['precision']:.2f}, certified lower bound {cert['lower_bound']:.2f}"
                if cert.get("lower_bound") is not None
                else f"not certified: {cert.get('reason', 'no threshold')}"
            )
            print(
                f"    back-off parent of {', '.join(c['backoff_over'])}: cut {c['backoff_threshold']} ({held}); "
                "said only where none of them is"
            )
        if c["source"] == "backoff":
            print(f"    best of its subtree: text {c.get('text_score')}, visual {c.get('visual_score')}")
            continue
        for source in ("text", "visual"):
            cert = c.get(f"{source}_certified") or {}
            held = (
                f" (gold precision {cert['precision']:.2f}, certified lower bound {cert['lower_bound']:.2f})"
                if cert.get("lower_bound") is not None
                else f" (not certified: {cert.get('reason', 'no threshold')})"
            )
            print(f"    {source:<6} {c.get(f'{source}_score', '-')} vs threshold {c[f'{source}_threshold']}{held}")
        if c.get("text_words"):
            print("    words: " + ", ".join(f"{w['word']} (-{w['drop']})" for w in c["text_words"]))
        if c.get("top_frames"):
            print("    frames: " + ", ".join(f"t={f['t']}s (-{f['weight']})" for f in c["top_frames"]))
    return 0
