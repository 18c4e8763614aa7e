"""Videos no model may learn from: the gold set certifies, the locked test reports, neither trains.

Two sets of videos are held out of every training step (the text teacher, its pseudo-label
thresholds, the visual student, its self-training):

- **gold**: human-verified answers (``vidcat import-gold``). Thresholds and the fusion rule are fitted
  on them, so the precision measured there is only honest if no model ever saw them.
- **locked test**: videos kept for the one evaluation everybody trusts, used for nothing else, not
  even thresholds. In production it is a fixed, hashed share of the gold set (``import-gold
  --test-share``); on the demo catalog it is the videos nobody labelled, scored against the
  synthetic ground truth (their labels never enter the catalog).

Training code never filters by convention: it asks ``held_out_ids`` for the set and builds its training
ids with ``trainable``. Then, independently of the code that built the set, a ``HoldoutGuard`` reads
the held-out ids from the catalog again at the moment of training and raises ``HeldOutLeak`` naming
the offending videos: a bug in the filter (or a set built before a video was locked) cannot pass it.
Every training path takes one (the teacher, the student's rounds and calibration folds, the
label-budget teachers and students, both baselines); ``tests/ml/catalog/test_guard_paths.py`` feeds a
held-out video into each and sees it refused. ``tests/ml/catalog/test_holdout.py`` and the exclusion
tests of the student and teacher prove that removing the held-out videos' labels and embeddings leaves
trained models unchanged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.catalog.store import Catalog, delete_where_in, insert_rows
from ml.errors import InvalidInput, UserFacingError

LOCKED_TEST_SOURCES = ("gold-split", "demo-ground-truth", "manual")
GOLD_SPLIT_SALT = "vidcat-locked-test-v1"


class HeldOutLeak(UserFacingError, ValueError):
    """A held-out video (gold or locked test) was about to be used for training."""


def gold_ids(catalog: Catalog) -> set[str]:
    """Every video with any gold judgement (exhaustive answers and single verdicts alike)."""
    rows = catalog.query(
        "SELECT video_id FROM label_coverage WHERE label_set = 'gold' "
        "UNION SELECT video_id FROM human_labels WHERE label_set = 'gold'"
    )
    return {r[0] for r in rows}


def locked_test_ids(catalog: Catalog, source: str | None = None) -> set[str]:
    """The locked test's videos, or those recorded from one ``source`` (``LOCKED_TEST_SOURCES``)."""
    if source is None:
        return {r[0] for r in catalog.query("SELECT video_id FROM locked_test")}
    return {r[0] for r in catalog.query("SELECT video_id FROM locked_test WHERE source = ?", [source])}


def held_out_ids(catalog: Catalog) -> frozenset[str]:
    """Gold and locked-test videos: what no training step may read."""
    return frozenset(gold_ids(catalog) | locked_test_ids(catalog))


@dataclass(frozen=True)
class LearntTargets:
    """What a visual model learnt from, as ``ml.visual.stage.save_targets`` wrote it beside the model."""

    video_ids: list[str]
    targets: np.ndarray  # (N, C) soft targets over ``categories``
    sources: list[str]  # per video: editor, pseudo or self
    categories: list[str]


def _targets_path(catalog: Catalog, visual_version: str | None) -> Path | None:
    """Where visual model ``visual_version`` keeps its ``targets.npz``; None when the model or the file
    is unknown (a model saved before targets were kept)."""
    from ml.catalog.model_registry import ModelNotTrained, get_model

    if visual_version is None:
        return None
    try:
        path = Path(get_model(catalog, "visual_model", visual_version).artifact_path) / "targets.npz"
    except ModelNotTrained:
        return None
    return path if path.is_file() else None


def student_targets(catalog: Catalog, visual_version: str | None) -> LearntTargets | None:
    """The ``targets.npz`` of visual model ``visual_version``; None when the model or the file is unknown.

    What the student learnt, for the like-for-like baseline; which videos it saw alone is
    `student_trained_on`, which leaves the target matrix compressed on disk.
    """
    path = _targets_path(catalog, visual_version)
    if path is None:
        return None
    with np.load(path, allow_pickle=False) as z:
        return LearntTargets(
            [str(v) for v in z["video_ids"]],
            np.asarray(z["targets"]),
            [str(s) for s in z["sources"]],
            [str(c) for c in z["categories"]],
        )


def student_trained_on(catalog: Catalog, visual_version: str | None) -> frozenset[str]:
    """The videos visual model ``visual_version`` learnt from (its ``targets.npz``): empty when unknown.

    A video becomes gold after the student trained on it when a spot-check sheet (pool videos the
    teacher pseudo-labelled) is imported: the held-out rule keeps it out of the next student, not out
    of the current one. Certification and the locked report leave such videos out until the student
    is retrained (docs/fusion.md). Only the ids are read: an npz decompresses per key, and these
    callers (thresholds, import-gold, the report) never need the target matrix.
    """
    path = _targets_path(catalog, visual_version)
    if path is None:
        return frozenset()
    with np.load(path, allow_pickle=False) as z:
        return frozenset(str(v) for v in z["video_ids"])


def trainable(video_ids: Iterable[str], held_out: frozenset[str] | set[str]) -> list[str]:
    """``video_ids`` without the held-out ones, order kept."""
    return [v for v in video_ids if v not in held_out]


def assert_trainable(video_ids: Iterable[str], held_out: frozenset[str] | set[str], what: str) -> None:
    """Raise HeldOutLeak when any of ``video_ids`` is held out; ``what`` names the training step."""
    leaked = sorted(set(video_ids) & set(held_out))
    if leaked:
        shown = ", ".join(leaked[:5]) + (f" and {len(leaked) - 5} more" if len(leaked) > 5 else "")
        raise HeldOutLeak(
            f"{what} would train on {len(leaked)} held-out video(s) ({shown}): gold and locked-test "
            "videos certify and report, they never train"
        )


class HoldoutGuard:
    """Refuses held-out videos, reading them from the catalog when called (not when the set was built)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def __call__(self, video_ids: Iterable[str], what: str) -> None:
        assert_trainable(video_ids, held_out_ids(self.catalog), what)


def lock_test(catalog: Catalog, video_ids: Iterable[str], source: str) -> int:
    """Record videos as the locked test (idempotent: re-locking replaces their source)."""
    if source not in LOCKED_TEST_SOURCES:
        raise InvalidInput(f"source must be one of {LOCKED_TEST_SOURCES}, got {source!r}")
    ids = sorted(set(video_ids))
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with catalog.transaction() as con:
        delete_where_in(con, "locked_test", "video_id", ids)
        insert_rows(con, "locked_test", ["video_id", "source", "added_at"], [(v, source, now) for v in ids])
    return len(ids)


def in_test_split(video_id: str, share: float, salt: str = GOLD_SPLIT_SALT) -> bool:
    """A fixed place per video: the same gold video is always on the same side, whatever else is imported."""
    digest = hashlib.sha256(f"{salt}\x00{video_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < share


def split_gold(video_ids: Iterable[str], share: float) -> tuple[list[str], list[str]]:
    """(certify, locked test) of gold videos by ``in_test_split``; ``share`` in [0, 1)."""
    if not 0.0 <= share < 1.0:
        raise InvalidInput(f"the locked test's share of gold must be in [0, 1), got {share}")
    certify, test = [], []
    for v in sorted(set(video_ids)):
        (test if in_test_split(v, share) else certify).append(v)
    return certify, test
