"""The synthetic demo catalog: deterministic, says it is synthetic, has the properties the demo relies on."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np

from ml.demo.catalog import DEMO_CATEGORIES, SYNTHETIC_NOTICE, VISUALLY_IDENTICAL, build_demo_catalog, plan_catalog


def test_plan_is_deterministic_and_shaped_as_documented(ws):
    a, b = plan_catalog(300, seed=11), plan_catalog(300, seed=11)
    assert [(v.categories, v.title, v.language, v.split) for v in a] == [
        (v.categories, v.title, v.language, v.split) for v in b
    ]
    other = plan_catalog(300, seed=12)
    assert [(v.categories, v.title) for v in other] != [(v.categories, v.title) for v in a]
    assert 15 <= len(DEMO_CATEGORIES) <= 25 and all(c in ws for c in DEMO_CATEGORIES)
    assert all(1 <= len(v.categories) <= 3 for v in a)
    assert {v.language for v in a} == {"en", "fr", "de", "es", "it", "pt"}
    kinds = {v.text_kind for v in a}
    assert {"none", "uninformative", "misleading", "partial", "full"} <= kinds
    assert sum(v.text_kind in ("none", "uninformative") for v in a) > 0.1 * len(a)
    editors = [v for v in a if v.split == "editor"]
    assert editors and all(v.language in ("en", "fr") for v in editors)
    assert any(v.split == "gold" and v.language not in ("en", "fr") for v in a)
    for x, y in VISUALLY_IDENTICAL:
        assert not any({x, y} <= set(v.categories) for v in a)


def test_build_writes_real_videos_and_files(tmp_path):
    media, out = tmp_path / "media", tmp_path / "demo"
    summary = build_demo_catalog(12, seed=3, media_dir=media, out_dir=out)
    assert summary["notice"] == SYNTHETIC_NOTICE and "SYNTHETIC" in (out / "README.txt").read_text()
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) == 12 + summary["bad_files"] + 1  # videos, bad uploads, one duplicate
    truth = {json.loads(line)["video_id"] for line in (out / "ground_truth.jsonl").read_text().splitlines()}
    assert all(r["id"] in truth for r in manifest if not r["id"].startswith("dup-"))
    first = media / "demo-00000.mp4" if (media / "demo-00000.mp4").exists() else next(media.glob("demo-00000.*"))
    frames_before = [f.to_ndarray(format="rgb24") for f in av.open(str(first)).decode(video=0)]
    first.unlink()
    build_demo_catalog(12, seed=3, media_dir=media, out_dir=out)  # re-renders only the missing file
    frames_after = [f.to_ndarray(format="rgb24") for f in av.open(str(first)).decode(video=0)]
    assert len(frames_before) == len(frames_after)
    assert all(np.array_equal(x, y) for x, y in zip(frames_before, frames_after, strict=True))


def test_v2_split_is_the_platform_in_miniature():
    from ml.demo.catalog import GENERATOR_VERSION, SPLITS, split_sizes

    assert GENERATOR_VERSION == 2 and SPLITS == ("editor", "gold", "locked", "pool")
    plans = plan_catalog(1200, seed=7)
    by = {s: [v for v in plans if v.split == s] for s in SPLITS}
    assert sum(len(v) for v in by.values()) == len(plans)  # every video in exactly one split
    assert len({v.video_id for v in plans}) == len(plans)
    sizes = split_sizes(1200)
    assert all(len(by[s]) == n for s, n in sizes.items()) and len(by["pool"]) == 1200 - sum(sizes.values())
    assert len(by["locked"]) == 200 and len(by["editor"]) <= 0.05 * len(plans)
    assert abs(len(by["gold"]) - 0.2 * len(plans)) <= 1 and len(by["pool"]) >= len(plans) / 2
    assert all(v.language in ("en", "fr") for v in by["editor"])
    assert {v.language for v in by["pool"]} == {v.language for v in plans}
    assert {v.text_kind for v in by["pool"]} >= {"none", "uninformative", "misleading", "partial", "full"}
    primary = [v.categories[0] for v in by["editor"]]
    assert len(set(primary)) == len(DEMO_CATEGORIES)  # a few per category


def test_only_editor_and_gold_labels_are_written(tmp_path):
    summary = build_demo_catalog(40, seed=3, media_dir=tmp_path / "media", out_dir=tmp_path / "demo")
    truth = {
        r["video_id"]: r["split"]
        for r in map(json.loads, (tmp_path / "demo" / "ground_truth.jsonl").read_text().splitlines())
    }
    manifest = [json.loads(line) for line in (tmp_path / "demo" / "manifest.jsonl").read_text().splitlines()]
    labelled = {r["id"] for r in manifest if r.get("labels")}
    assert labelled and {truth[v] for v in labelled} == {"editor"}
    gold_lines = Path(summary["gold_file"]).read_text().splitlines()
    gold = {json.loads(line)["video_id"] for line in gold_lines}
    assert gold and {truth[v] for v in gold} == {"gold"}
    assert "Generator version 2" in (tmp_path / "demo" / "README.txt").read_text()
