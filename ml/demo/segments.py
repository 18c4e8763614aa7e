"""The segment benchmark: longer demo videos made of scenes, with the truth of where each scene is.

SYNTHETIC EVALUATION DATA. No model trains on it: the stage that finds and scores scenes
(``ml/segments/``) is measured on it (``vidcat eval-segments``, ``python -m bench segments``). Each
video is 1-3 minutes of 2-6 scenes of 8-60 s, every scene one demo category (another than the scene
before) drawn by the demo's own scene drawers (``ml/demo/catalog.py``: ``DRAW``, ``draw_styles``) in
its own style, joined by hard cuts and some cross-fades; a quarter of the scenes of 16 s or more
change shot inside (the same category in a new style: not a boundary). The demo's small resolutions;
a title and description written as the demo writes them (``_text``). Beside the files, ``truth.jsonl`` holds each
video's scenes (start, end, category), its boundaries and how each was made; it is never registered
in a catalog.

Split like the catalog: ``gold`` videos stand for scenes an editor verified (scene thresholds are
certified on them, detector parameters chosen on them) and ``locked`` videos only report.

Cheap: 4 frames per second (the sampler takes one a second; the drawers' content at the sampled
instants is the same at any rate, and a 2 s fade still spans 8 frames), H.264 at the demo's encoder
settings, rendered in worker processes. Deterministic for a seed (same plans, same pixels), written
once under ``<data root>/segment_bench/v<version>-seed<seed>/`` (rendered under a temporary name, then
renamed) and reused by every later run. The main demo catalog is not touched.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ml.demo.catalog import (
    DEMO_CATEGORIES,
    DRAW,
    LANGUAGE_WEIGHTS,
    RELATED,
    SYNTHETIC_NOTICE,
    VISUALLY_IDENTICAL,
    _grid,
    _text,
    draw_styles,
    render_in_processes,
)

BENCH_VERSION = 1
DEFAULT_SEED = 7
GOLD_VIDEOS = 126  # 7 per category as the main one: enough verified scenes to certify most categories
LOCKED_VIDEOS = 90  # 5 per category
SPLITS = ("gold", "locked")
FPS = 4
SIZES = ((160, 120), (192, 108), (176, 144))  # the demo's landscape sizes
SCENES = (2, 6)
SCENE_S = (8.0, 60.0)
VIDEO_S = (60.0, 180.0)
FADE_SHARE = 0.25
FADE_S = (1.0, 1.5, 2.0)
# A scene of 16 s or more may hold a second shot: the same category drawn in a new style from a point
# inside it, a hard cut that is NOT a scene boundary (the context goes on). Why not a boundary: a new
# style of one drawer barely moves the encoder's embedding (docs/segments.md: the cosine step at such
# a cut is 0.01-0.06 on gold, below the 0.10-0.25 a scene's own motion reaches), so as truth it would
# be a boundary no viewer sees; as a shot inside a scene it tests that the detector does not cut there.
SHOT_CHANGE_SHARE = 0.25
SHOT_MIN_S = 16.0
TRUTH_FILE = "truth.jsonl"
MANIFEST_FILE = "manifest.jsonl"


@dataclass
class BenchVideo:
    """One planned benchmark video: its scenes (start, end, category) tile ``[0, duration_s]``."""

    video_id: str
    split: str
    categories: list[str]  # the categories its scenes show, longest on screen first
    scenes: list[tuple[float, float, str]]
    fades: list[float]  # per boundary: cross-fade length in seconds (0: a hard cut)
    shot_changes: list[float]  # times inside scenes where a new shot (same category, new style) begins
    language: str
    title: str | None
    description: str | None
    text_kind: str
    width: int
    height: int
    fps: int = FPS
    file: str = ""
    style_seeds: list[int] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.scenes[-1][1]

    @property
    def boundaries(self) -> list[float]:
        return [s[0] for s in self.scenes[1:]]

    def shots(self) -> tuple[list[tuple[float, float, str]], list[float]]:
        """What is drawn: the scenes split at their shot changes, and the fade before each shot after the first."""
        shots: list[tuple[float, float, str]] = []
        fades: list[float] = []
        for k, (s0, s1, c) in enumerate(self.scenes):
            cuts = [t for t in self.shot_changes if s0 < t < s1]
            edges = [s0, *cuts, s1]
            for j in range(len(edges) - 1):
                if shots:
                    fades.append(self.fades[k - 1] if j == 0 else 0.0)
                shots.append((edges[j], edges[j + 1], c))
        return shots, fades


def bench_dir(data_root: Path, seed: int = DEFAULT_SEED) -> Path:
    """Where the benchmark of this version and seed lives under a data root."""
    return Path(data_root) / "segment_bench" / f"v{BENCH_VERSION}-seed{seed}"


def _video_categories(primary: str, rng: random.Random) -> list[str]:
    """2-3 categories that go together (the demo's RELATED pairs), never two visually identical ones."""
    chosen = [primary]
    k = rng.choices([2, 3], weights=[0.6, 0.4])[0]
    while len(chosen) < k:
        pool = [c for c in RELATED.get(chosen[-1], ()) if c not in chosen]
        extra = rng.choice(pool) if pool and rng.random() < 0.7 else rng.choice(DEMO_CATEGORIES)
        if extra not in chosen and not any({extra, c} in ({a, b} for a, b in VISUALLY_IDENTICAL) for c in chosen):
            chosen.append(extra)
    return chosen


def _scene_lengths(rng: random.Random) -> list[float]:
    """2-6 scene lengths of 8-60 s on the frame grid, summing to 60-180 s (rejection sampling)."""
    while True:
        n = rng.randint(*SCENES)
        lengths = [round(rng.uniform(*SCENE_S) * FPS) / FPS for _ in range(n)]
        if VIDEO_S[0] <= sum(lengths) <= VIDEO_S[1]:
            return lengths


def _scene_categories(topic: list[str], n: int, rng: random.Random) -> list[str]:
    """Which category each scene shows: another than the scene before, one not shown yet first."""
    out = [topic[0]]
    while len(out) < n:
        others = [c for c in topic if c != out[-1]]
        unseen = [c for c in others if c not in out]
        out.append(rng.choice(unseen or others))
    return out


def plan_benchmark(
    seed: int = DEFAULT_SEED, gold_videos: int = GOLD_VIDEOS, locked_videos: int = LOCKED_VIDEOS
) -> list[BenchVideo]:
    """Every video's scenes, transitions, text and size (no pixels yet); deterministic for the arguments."""
    rng = random.Random(f"vidcat-segment-bench-v{BENCH_VERSION}-{seed}")
    cats = list(DEMO_CATEGORIES)
    videos = []
    n_total = gold_videos + locked_videos
    for i in range(n_total):
        split = "gold" if i < gold_videos else "locked"
        index = i if split == "gold" else i - gold_videos
        topic = _video_categories(cats[index % len(cats)], rng)
        lengths = _scene_lengths(rng)
        per_scene = _scene_categories(topic, len(lengths), rng)
        edges = np.concatenate([[0.0], np.cumsum(lengths)]).round(6).tolist()
        scenes = [(float(edges[k]), float(edges[k + 1]), per_scene[k]) for k in range(len(lengths))]
        fades = [rng.choice(FADE_S) if rng.random() < FADE_SHARE else 0.0 for _ in range(len(lengths) - 1)]
        shot_changes = [
            round(rng.uniform(s0 + SHOT_MIN_S / 2, s1 - SHOT_MIN_S / 2) * FPS) / FPS
            for s0, s1, _ in scenes
            if s1 - s0 >= SHOT_MIN_S and rng.random() < SHOT_CHANGE_SHARE
        ]
        on_screen: dict[str, float] = {}
        for s0, s1, c in scenes:
            on_screen[c] = on_screen.get(c, 0.0) + s1 - s0
        shown = sorted(on_screen, key=lambda c: (-on_screen[c], cats.index(c)))
        language = rng.choices(list(LANGUAGE_WEIGHTS), weights=list(LANGUAGE_WEIGHTS.values()))[0]
        title, description, text_kind = _text(shown, language, rng, i)
        width, height = rng.choice(SIZES)
        video_id = f"seg-{i:05d}"
        videos.append(
            BenchVideo(
                video_id=video_id,
                split=split,
                categories=shown,
                scenes=scenes,
                fades=fades,
                shot_changes=shot_changes,
                language=language,
                title=title,
                description=description,
                text_kind=text_kind,
                width=width,
                height=height,
                file=f"{video_id}.mp4",
                style_seeds=[(i + 1) * 16 + k for k in range(len(scenes) + len(shot_changes))],
            )
        )
    return videos


def _frame(
    shots: list[tuple[float, float, str]],
    fades: list[float],
    styles: list[Any],
    yy: np.ndarray,
    xx: np.ndarray,
    t: float,
) -> np.ndarray:
    """The picture at time ``t``: the shot on screen, blended with its neighbour inside a cross-fade.

    A fade of length ``f`` at boundary ``b`` runs over ``[b - f/2, b + f/2)``; the later shot's share
    grows linearly across it, so the boundary (the truth) is the fade's midpoint.
    """
    starts = [s[0] for s in shots]
    k = max(0, int(np.searchsorted(starts, t, side="right")) - 1)

    def draw(j: int) -> np.ndarray:
        return DRAW[shots[j][2]](yy, xx, t, styles[j])

    if k > 0 and fades[k - 1] > 0 and t < starts[k] + fades[k - 1] / 2:
        alpha = (t - (starts[k] - fades[k - 1] / 2)) / fades[k - 1]
        return (1 - alpha) * draw(k - 1) + alpha * draw(k)
    if k < len(fades) and fades[k] > 0 and t >= starts[k + 1] - fades[k] / 2:
        alpha = (t - (starts[k + 1] - fades[k] / 2)) / fades[k]
        return (1 - alpha) * draw(k) + alpha * draw(k + 1)
    return draw(k)


def bench_frames(video: BenchVideo) -> Iterator[np.ndarray]:
    """The video's pictures as drawn (RGB, uint8), one per frame: what is deterministic for a seed.

    The encoded bytes are not always: libx264 as PyAV ships it can encode the same frames to different
    bytes from one render to the next (docs/demo-catalog.md), so reproducibility is of these frames.
    """
    yy, xx = _grid(video.height, video.width)
    rng = np.random.default_rng(zlib.crc32(video.video_id.encode()))
    shots, fades = video.shots()
    styles = [draw_styles([c], rng, seed)[c] for (_, _, c), seed in zip(shots, video.style_seeds, strict=True)]
    for i in range(round(video.duration_s * video.fps)):
        yield (np.clip(_frame(shots, fades, styles, yy, xx, i / video.fps), 0, 1) * 255).astype(np.uint8)


def render_bench_video(video: BenchVideo, path: Path) -> None:
    """Encode one planned video with PyAV, as the demo encodes its H.264 files."""
    import av

    container = av.open(str(path), mode="w")
    try:
        stream = container.add_stream("libx264", rate=Fraction(video.fps))
        stream.width, stream.height = video.width, video.height
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "26", "g": str(video.fps * 2), "threads": "1"}
        for rgb in bench_frames(video):
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()


def _render_into(video: BenchVideo, media: Path) -> str:
    render_bench_video(video, media / video.file)
    return video.video_id


def truth_row(video: BenchVideo) -> dict[str, Any]:
    """What ``truth.jsonl`` records of a video: its file (under ``media/``), split, text, scenes and transitions."""
    row = asdict(video)
    row.pop("style_seeds")
    row.update(
        duration_s=video.duration_s,
        boundaries=video.boundaries,
        scenes=[list(s) for s in video.scenes],
    )
    return row


def build_benchmark(
    data_root: Path,
    seed: int = DEFAULT_SEED,
    *,
    gold_videos: int = GOLD_VIDEOS,
    locked_videos: int = LOCKED_VIDEOS,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> Path:
    """Render the benchmark once and return its folder; a complete folder already there is reused.

    Rendered into a temporary sibling folder, then renamed: a crash never leaves a half-built benchmark
    that a later run would take for a whole one.
    """
    sizes = (gold_videos, locked_videos) != (GOLD_VIDEOS, LOCKED_VIDEOS)
    final = bench_dir(data_root, seed)
    if sizes:
        final = final.with_name(f"{final.name}-g{gold_videos}-l{locked_videos}")
    if (final / TRUTH_FILE).is_file():
        return final
    videos = plan_benchmark(seed, gold_videos, locked_videos)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    media = tmp / "media"
    media.mkdir(parents=True)
    render_in_processes(_render_into, videos, media, chunksize=2, progress=progress, workers=workers)
    rows = [truth_row(v) for v in videos]
    _write_jsonl(tmp / TRUTH_FILE, rows)
    manifest = [
        {
            "id": r["video_id"],
            "uri": f"media/{r['file']}",
            "title": r["title"],
            "description": r["description"],
            "language": r["language"],
        }
        for r in rows
    ]
    _write_jsonl(tmp / MANIFEST_FILE, manifest)
    (tmp / "README.txt").write_text(
        f"{SYNTHETIC_NOTICE}\nSegment benchmark version {BENCH_VERSION}, seed {seed}: "
        + ", ".join(f"{s} {sum(v.split == s for v in videos)}" for s in SPLITS)
        + " videos; truth.jsonl holds each video's scenes (docs/segments.md). Never trained on.\n"
    )
    try:
        tmp.rename(final)
    except OSError:  # another run finished the same benchmark first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def load_benchmark(folder: Path) -> list[dict[str, Any]]:
    """The truth rows of a built benchmark, in order, each with ``uri``: its file's path where it lies now."""
    path = Path(folder) / TRUTH_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: build the segment benchmark first (build_benchmark)")
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    for r in rows:
        r["uri"] = str(Path(folder) / "media" / r["file"])
    return rows


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
