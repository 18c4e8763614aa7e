"""The segment benchmark: deterministic for a seed, scenes within the documented ranges, splits disjoint,
built once and reused, and the demo catalog untouched."""

from __future__ import annotations

import hashlib
import itertools
import json

import pytest

from ml.demo.catalog import DEMO_CATEGORIES, plan_catalog
from ml.demo.segments import (
    BENCH_VERSION,
    FPS,
    GOLD_VIDEOS,
    LOCKED_VIDEOS,
    SCENE_S,
    SCENES,
    SHOT_MIN_S,
    VIDEO_S,
    bench_dir,
    bench_frames,
    build_benchmark,
    load_benchmark,
    plan_benchmark,
)


def test_plans_are_deterministic_for_a_seed_and_differ_across_seeds():
    a, b, c = plan_benchmark(7), plan_benchmark(7), plan_benchmark(8)
    assert [v.__dict__ for v in a] == [v.__dict__ for v in b]
    assert [v.scenes for v in a] != [v.scenes for v in c]


def test_scenes_lie_within_the_documented_ranges():
    videos = plan_benchmark(7)
    assert sum(v.split == "gold" for v in videos) == GOLD_VIDEOS
    assert sum(v.split == "locked" for v in videos) == LOCKED_VIDEOS
    for v in videos:
        assert SCENES[0] <= len(v.scenes) <= SCENES[1]
        assert VIDEO_S[0] <= v.duration_s <= VIDEO_S[1]
        assert v.scenes[0][0] == 0.0
        for (s0, s1, c), nxt in zip(v.scenes, [*v.scenes[1:], None], strict=True):
            assert SCENE_S[0] - 1 / FPS <= s1 - s0 <= SCENE_S[1] + 1 / FPS
            assert c in DEMO_CATEGORIES
            assert nxt is None or nxt[0] == s1
        assert len(v.fades) == len(v.scenes) - 1
        assert set(v.categories) == {c for *_, c in v.scenes}
        assert all(a[2] != b[2] for a, b in itertools.pairwise(v.scenes))  # every boundary changes the context
        for t in v.shot_changes:  # a new shot inside a scene, away from its edges: not a boundary
            assert any(s0 + SHOT_MIN_S / 2 - 1 / FPS <= t <= s1 - SHOT_MIN_S / 2 + 1 / FPS for s0, s1, _ in v.scenes)
        shots, fades = v.shots()
        assert len(shots) == len(v.scenes) + len(v.shot_changes) == len(v.style_seeds)
        assert len(fades) == len(shots) - 1 and sum(f > 0 for f in fades) == sum(f > 0 for f in v.fades)
    assert any(f > 0 for v in videos for f in v.fades) and any(f == 0 for v in videos for f in v.fades)
    assert any(v.shot_changes for v in videos)
    # every category appears in gold scenes: certification has something to work on
    assert {c for v in videos if v.split == "gold" for *_, c in v.scenes} == set(DEMO_CATEGORIES)


def test_gold_and_locked_are_disjoint_and_ids_are_unique():
    videos = plan_benchmark(7)
    ids = [v.video_id for v in videos]
    assert len(set(ids)) == len(ids)
    gold = {v.video_id for v in videos if v.split == "gold"}
    locked = {v.video_id for v in videos if v.split == "locked"}
    assert gold and locked and not gold & locked and gold | locked == set(ids)


def test_the_demo_catalog_plan_is_untouched_by_the_benchmark():
    before = [v.__dict__.copy() for v in plan_catalog(60, 7)]
    plan_benchmark(7)
    assert [v.__dict__ for v in plan_catalog(60, 7)] == before


def _frame_counts(folder):
    import av

    counts = {}
    for path in sorted((folder / "media").iterdir()):
        with av.open(str(path)) as container:
            counts[path.name] = sum(1 for _ in container.decode(video=0))
    return counts


def test_the_drawn_frames_are_identical_for_a_seed():
    video = plan_benchmark(3, gold_videos=1, locked_videos=0)[0]

    def digest() -> str:
        h = hashlib.sha256()
        for rgb in bench_frames(video):
            h.update(rgb.tobytes())
        return h.hexdigest()

    assert digest() == digest()


def test_a_built_benchmark_is_the_same_for_a_seed_and_reused(tmp_path):
    a = build_benchmark(tmp_path / "a", 3, gold_videos=2, locked_videos=1, workers=1)
    b = build_benchmark(tmp_path / "b", 3, gold_videos=2, locked_videos=1, workers=1)
    assert a.name == b.name and a.parent.name == "segment_bench"
    assert f"v{BENCH_VERSION}-seed3" in a.name
    # The truth and the frames drawn repeat exactly; the H.264 bytes need not (docs/demo-catalog.md).
    assert (a / "truth.jsonl").read_bytes() == (b / "truth.jsonl").read_bytes()
    assert _frame_counts(a) == _frame_counts(b)
    rows = load_benchmark(a)
    assert [r["split"] for r in rows] == ["gold", "gold", "locked"]
    assert all((a / "media" / r["file"]).is_file() and r["uri"] == str(a / "media" / r["file"]) for r in rows)
    manifest = [json.loads(line) for line in (a / "manifest.jsonl").read_text().splitlines()]
    assert all("split" not in m and "scenes" not in m for m in manifest)  # the truth stays beside, not inside
    stamp = (a / "truth.jsonl").stat().st_mtime_ns
    assert build_benchmark(tmp_path / "a", 3, gold_videos=2, locked_videos=1) == a  # reused, not rendered again
    assert (a / "truth.jsonl").stat().st_mtime_ns == stamp
    assert not list(a.parent.glob(".*tmp*"))


def test_the_default_benchmark_lives_under_the_data_root(tmp_path):
    assert bench_dir(tmp_path, 7) == tmp_path / "segment_bench" / f"v{BENCH_VERSION}-seed7"


def test_load_benchmark_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="build the segment benchmark"):
        load_benchmark(tmp_path)
