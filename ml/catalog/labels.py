"""Human labels: editor labels (training) and the gold, human-verified set (measuring precision).

Two shapes of gold answers are accepted:
- exhaustive: {"video_id", "labels": [...], "exhaustive": true}: every working-set category judged,
  the listed ones positive, all others negative (a reviewer labelled the whole video);
- verdicts: {"video_id", "category_id", "verdict": yes/no} (a spot-check sheet row): one category judged.
Labels below tier 2 roll up to the working set. Re-importing the same answers changes nothing.
A gold answer may also carry the video's verified scene ranges (``scenes``: `ml/catalog/gold_scenes.py`),
which scene thresholds are certified on; a row whose ranges do not hold is rejected whole, saying what
to fix.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml.catalog.gold_scenes import (
    SceneRangeError,
    parse_scene_ranges,
    replace_scene_ranges,
    validate_scene_ranges,
)
from ml.catalog.store import Catalog, delete_where_in, insert_rows
from ml.catalog.videos import probed_durations
from ml.errors import InvalidInput
from ml.taxonomy import WorkingSet

LABEL_SETS = ("editor", "gold")
YES = {"1", "yes", "y", "true", "t", "positive", "correct", "ok"}
NO = {"0", "no", "n", "false", "f", "negative", "wrong", "incorrect"}


@dataclass
class ImportReport:
    videos: int = 0
    positives: int = 0
    negatives: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    scene_videos: int = 0  # videos whose verified scene ranges were (re)placed
    scene_ranges: int = 0
    # Videos whose ranges could not be checked against a duration (not probed yet): the certification
    # leaves out what lies past their end once they are.
    scenes_unchecked_duration: int = 0
    # Gold rows left out because their video carries editor labels: it trains the models, so it
    # cannot also certify them (ml/catalog/holdout.py).
    excluded_editor_overlap: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "videos": self.videos,
            "positives": self.positives,
            "negatives": self.negatives,
            "rejected": [{"row": r, "reason": m} for r, m in self.rejected],
            "excluded_editor_overlap": list(self.excluded_editor_overlap),
            "scene_videos": self.scene_videos,
            "scene_ranges": self.scene_ranges,
            "scenes_unchecked_duration": self.scenes_unchecked_duration,
        }


def read_label_file(path: str | Path) -> list[tuple[int, dict]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label file {path} not found")
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = []
        for i, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append((i, json.loads(line)))
                except json.JSONDecodeError as exc:
                    rows.append((i, {"__error__": f"invalid JSON: {exc.msg}"}))
        return rows
    if path.suffix.lower() == ".csv":
        return [(i, dict(r)) for i, r in enumerate(csv.DictReader(io.StringIO(text)), start=2)]
    raise InvalidInput(f"{path}: use a .jsonl or .csv label file")


def import_labels(
    catalog: Catalog, rows: list[tuple[int, dict]], ws: WorkingSet, label_set: str, annotator: str = "import"
) -> ImportReport:
    """Validate rows against the registry and taxonomy, then write them in one transaction."""
    if label_set not in LABEL_SETS:
        raise InvalidInput(f"label_set must be one of {LABEL_SETS}")
    report = ImportReport()
    wanted = sorted({str(r.get("video_id") or r.get("id") or "").strip() for _, r in rows if isinstance(r, dict)})
    known = {
        r[0]
        for r in catalog.query("SELECT video_id FROM videos WHERE video_id IN (SELECT unnest(?::VARCHAR[]))", [wanted])
    }
    editor = editor_labelled(catalog, wanted) if label_set == "gold" else set()
    durations = probed_durations(catalog, wanted)
    judgements: dict[tuple[str, str], bool] = {}
    exhaustive: set[str] = set()
    scenes: dict[str, list[tuple[float, float, str]]] = {}
    for lineno, row in rows:
        if "__error__" in row:
            report.rejected.append((lineno, row["__error__"]))
            continue
        vid = str(row.get("video_id") or row.get("id") or "").strip()
        if vid not in known:
            report.rejected.append((lineno, f"video {vid!r} is not registered"))
            continue
        if vid in editor:
            if vid not in report.excluded_editor_overlap:
                report.excluded_editor_overlap.append(vid)
            continue
        try:
            found: dict[tuple[str, str], bool] = {}
            is_exhaustive = False
            if "labels" in row and row.get("labels") is not None:
                labels = row["labels"]
                if isinstance(labels, str):
                    labels = [x for x in labels.replace(";", "|").split("|") if x.strip()]
                cats = {_rolled(ws, str(c).strip()) for c in labels} - {None}
                is_exhaustive = _truthy(row.get("exhaustive", True))
                for c in cats:
                    found[(vid, c)] = True
            else:
                cat = _rolled(ws, str(row.get("category_id", "")).strip())
                if cat is None:
                    raise ValueError(f"category {row.get('category_id')!r} is outside the working set")
                verdict = str(row.get("verdict", row.get("is_positive", ""))).strip().lower()
                if verdict not in YES | NO:
                    raise ValueError(f"verdict {verdict!r} must be yes or no")
                found[(vid, cat)] = verdict in YES
            raw = parse_scene_ranges(row.get("scenes"))
            if raw and label_set != "gold":
                raise SceneRangeError("scene ranges certify scene thresholds: import them with --label-set gold")
            ranges = validate_scene_ranges(
                raw,
                lambda c: _rolled(ws, c),
                durations.get(vid),
                labels={c for (_, c), pos in found.items() if pos} if is_exhaustive else None,
            )
        except ValueError as exc:
            report.rejected.append((lineno, str(exc)))
            continue
        judgements.update(found)
        if is_exhaustive:
            exhaustive.add(vid)
        if ranges:
            scenes[vid] = ranges
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with catalog.transaction() as con:
        if exhaustive:
            # An exhaustive answer replaces whatever this set said about the video before.
            ids = sorted(exhaustive)
            delete_where_in(con, "human_labels", "video_id", ids, "AND label_set = ?", [label_set])
            delete_where_in(con, "label_coverage", "video_id", ids, "AND label_set = ?", [label_set])
            insert_rows(
                con, "label_coverage", ["video_id", "label_set", "exhaustive"], [(v, label_set, True) for v in ids]
            )
        insert_rows(
            con,
            "human_labels",
            ["video_id", "category_id", "label_set", "is_positive", "annotator", "created_at"],
            [(v, c, label_set, pos, annotator, now) for (v, c), pos in sorted(judgements.items())],
            replace=True,
        )
        report.scene_ranges = replace_scene_ranges(con, scenes, annotator, now) if scenes else 0
    report.scene_videos = len(scenes)
    report.scenes_unchecked_duration = sum(v not in durations for v in scenes)
    report.videos = len({v for v, _ in judgements} | exhaustive)
    report.positives = sum(judgements.values())
    report.negatives = len(judgements) - report.positives
    return report


def covered_ids(catalog: Catalog, label_set: str) -> list[str]:
    """Videos with a coverage row in ``label_set`` (exhaustive or not), sorted: what its imports covered."""
    rows = catalog.query("SELECT video_id FROM label_coverage WHERE label_set = ?", [label_set])
    return sorted({r[0] for r in rows})


def pseudo_label_rows(catalog: Catalog, teacher_version: str) -> list[tuple]:
    """(video_id, category_id, target, weight, kind) of the pseudo-labels teacher ``teacher_version`` gave."""
    return catalog.query(
        "SELECT video_id, category_id, target, weight, kind FROM pseudo_labels WHERE model_version = ?",
        [teacher_version],
    )


def judgements(catalog: Catalog, label_set: str, video_ids: list[str] | None = None) -> list[tuple[str, str, bool]]:
    """(video_id, category_id, is_positive) of every label in ``label_set``, optionally among ``video_ids``."""
    if video_ids is None:
        return catalog.query(
            "SELECT video_id, category_id, is_positive FROM human_labels WHERE label_set = ?", [label_set]
        )
    return catalog.query(
        "SELECT video_id, category_id, is_positive FROM human_labels WHERE label_set = ? "
        "AND video_id IN (SELECT unnest(?::VARCHAR[]))",
        [label_set, list(video_ids)],
    )


def exhaustive_ids(catalog: Catalog, label_set: str, video_ids: list[str] | None = None) -> list[str]:
    """Videos ``label_set`` judged exhaustively (every category), optionally among ``video_ids``."""
    if video_ids is None:
        rows = catalog.query("SELECT video_id FROM label_coverage WHERE label_set = ? AND exhaustive", [label_set])
    else:
        rows = catalog.query(
            "SELECT video_id FROM label_coverage WHERE label_set = ? AND exhaustive "
            "AND video_id IN (SELECT unnest(?::VARCHAR[]))",
            [label_set, list(video_ids)],
        )
    return [r[0] for r in rows]


def pseudo_labelled_ids(catalog: Catalog, teacher_version: str | None) -> list[str]:
    """Videos teacher ``teacher_version`` gave any pseudo-label, sorted."""
    rows = catalog.query(
        "SELECT DISTINCT video_id FROM pseudo_labels WHERE model_version = ? ORDER BY video_id", [teacher_version]
    )
    return [r[0] for r in rows]


def review_candidates(catalog: Catalog, teacher_version: str, category_id: str) -> list[tuple]:
    """Videos teacher ``teacher_version`` pseudo-labelled positive for ``category_id`` that could become gold.

    Rows (video_id, the teacher's score vector, title, description, uri, batch_id), by video; videos with
    editor labels are left out: they train the models, so they can never certify them.
    """
    return catalog.query(
        "SELECT p.video_id, t.scores, v.title, v.description, v.uri, m.batch_id FROM pseudo_labels p "
        "JOIN videos v USING (video_id) JOIN batch_members m USING (video_id) "
        "LEFT JOIN text_predictions t ON t.video_id = p.video_id AND t.model_version = p.model_version "
        "WHERE p.model_version = ? AND p.category_id = ? AND p.kind = 'positive' "
        "AND p.video_id NOT IN (SELECT video_id FROM human_labels WHERE label_set = 'editor' "
        "UNION SELECT video_id FROM label_coverage WHERE label_set = 'editor') ORDER BY p.video_id",
        [teacher_version, category_id],
    )


def editor_labelled(catalog: Catalog, video_ids: list[str] | None = None) -> set[str]:
    """Videos with any editor label (the training labels), optionally among ``video_ids``."""
    sql = (
        "SELECT video_id FROM label_coverage WHERE label_set = 'editor' "
        "UNION SELECT video_id FROM human_labels WHERE label_set = 'editor'"
    )
    ids = {r[0] for r in catalog.query(sql)}
    return ids if video_ids is None else ids & set(video_ids)


def _rolled(ws: WorkingSet, category_id: str) -> str | None:
    if category_id not in ws.taxonomy:
        raise ValueError(f"category {category_id!r} is not an IAB Content Taxonomy 3.1 id")
    return ws.taxonomy.roll_up(category_id, ws.ids)


def _truthy(v: Any) -> bool:
    return v if isinstance(v, bool) else str(v).strip().lower() in YES


def label_matrix(catalog: Catalog, label_set: str, categories: list[str], exclude: set[str] | None = None):
    """(video_ids, Y) for every video this set judged exhaustively, Y[i, j] in {0, 1}.

    Non-exhaustive verdicts are not in the matrix: a single yes/no says nothing of other categories.
    Videos in ``exclude`` are left out (the locked test, when fitting on gold).
    """
    import numpy as np

    rows = catalog.query(
        "SELECT c.video_id, list(h.category_id) FILTER (WHERE h.is_positive) "
        "FROM label_coverage c LEFT JOIN human_labels h ON h.video_id = c.video_id AND h.label_set = c.label_set "
        "WHERE c.label_set = ? AND c.exhaustive GROUP BY c.video_id ORDER BY c.video_id",
        [label_set],
    )
    if exclude:
        rows = [r for r in rows if r[0] not in exclude]
    index = {c: j for j, c in enumerate(categories)}
    ids = [r[0] for r in rows]
    y = np.zeros((len(ids), len(categories)), dtype=np.float32)
    for i, (_, cats) in enumerate(rows):
        for c in cats or []:
            if c in index:
                y[i, index[c]] = 1.0
    return ids, y


def certification_matrix(catalog: Catalog, categories: list[str]):
    """The gold labels thresholds and rules are fitted on: gold without its locked-test share."""
    from ml.catalog.holdout import locked_test_ids

    return label_matrix(catalog, "gold", categories, exclude=locked_test_ids(catalog))


def certification_gold(catalog: Catalog, categories: list[str], visual_version: str | None):
    """Certification gold less the videos visual model ``visual_version`` learnt from, and how many those were.

    A spot-checked pool video imported as gold after the student trained on it has scores that are not
    held out: certifying or ranking on it would measure the student on its own training data.
    """
    from ml.catalog.holdout import student_trained_on

    ids, y = certification_matrix(catalog, categories)
    trained = student_trained_on(catalog, visual_version)
    keep = [i for i, v in enumerate(ids) if v not in trained]
    if len(keep) == len(ids):
        return ids, y, 0
    return [ids[i] for i in keep], y[keep], len(ids) - len(keep)
