"""Registering videos: manifest rows and inbox drops become `videos` rows, or rejections with a reason.

A video is registered once. Its id is the platform's id; its content hash catches the same file
uploaded again under another id. URIs must resolve (symlinks followed) under a configured media
root, so a manifest cannot make the pipeline read `/etc/passwd` or another tenant's files. Editor
labels may ride along in the manifest (`labels`); they land in `human_labels` as the exhaustive
'editor' set of that video, rolled up to the working set.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ml.catalog.store import Catalog, insert_rows
from ml.errors import UserFacingError
from ml.taxonomy import WorkingSet

MAX_TITLE_CHARS = 1_000
MAX_DESCRIPTION_CHARS = 20_000
MAX_TAGS_CHARS = 2_000
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
LANG_PATTERN = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")
MANIFEST_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")
COLUMNS = ("id", "uri", "title", "description", "tags", "language", "creator", "uploaded_at", "labels")


class ManifestError(UserFacingError, ValueError):
    """The manifest as a whole is unusable (missing file, unknown format, no id/uri columns)."""


@dataclass
class Rejection:
    row: int
    video_id: str | None
    reason: str


@dataclass
class RegistrationReport:
    registered: list[str] = field(default_factory=list)
    already_registered: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "registered": len(self.registered),
            "already_registered": len(self.already_registered),
            "rejected": [r.__dict__ for r in self.rejected],
            "warnings": self.warnings,
        }


@dataclass
class VideoRow:
    video_id: str
    path: Path
    sha256: str
    size_bytes: int
    title: str | None
    description: str | None
    tags: str | None
    language: str | None
    creator: str | None
    uploaded_at: dt.datetime | None
    labels: list[str] | None


def read_manifest(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a CSV or JSONL manifest as (row number, dict). Bytes that are not UTF-8 are replaced."""
    path = Path(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.suffix.lower() in MANIFEST_SUFFIXES)[:5]
        hint = f" (it holds {', '.join(inside)})" if inside else ""
        raise ManifestError(
            f"{path} is a folder, not a manifest{hint}; give the manifest file itself: a .csv, .tsv or .jsonl "
            "with an id and a uri per video (videos dropped in a folder go through the inbox, docs/architecture.md)"
        )
    if not path.is_file():
        raise ManifestError(f"manifest {path} not found")
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield lineno, {"__error__": f"line is not valid JSON: {exc.msg}"}
                continue
            yield lineno, obj if isinstance(obj, dict) else {"__error__": "line is not a JSON object"}
    elif suffix in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
        fields = {f.strip().lower() for f in reader.fieldnames or []}
        if not ({"id", "video_id"} & fields) or "uri" not in fields:
            raise ManifestError(f"{path}: the header must have 'id' and 'uri' columns, found {sorted(fields)}")
        for lineno, row in enumerate(reader, start=2):
            clean = {(k or "").strip().lower(): v for k, v in row.items() if k is not None}
            if None in row:
                n_header = len(reader.fieldnames or [])
                clean["__error__"] = f"row has {len(row[None]) + n_header} fields, header has {n_header}"
            if isinstance(clean.get("labels"), str):
                clean["labels"] = [x for x in re.split(r"[|;,\s]+", clean["labels"]) if x]
            yield lineno, clean
    else:
        raise ManifestError(f"{path}: unknown manifest format {suffix!r}; use .csv, .tsv or .jsonl")


def resolve_uri(uri: str, base_dir: Path, roots: Iterable[Path]) -> Path:
    """The real path of a URI, which must be a local file under one of ``roots``.

    Raises ValueError with the reason otherwise. Resolution follows symlinks, so a link inside a
    root that points outside is refused like a `..` escape.
    """
    if not uri or not str(uri).strip():
        raise ValueError("uri is empty")
    uri = str(uri).strip()
    parsed = urlparse(uri)
    if parsed.scheme and parsed.scheme != "file" and len(parsed.scheme) > 1:
        raise ValueError(f"uri scheme {parsed.scheme!r} is not supported; give a local path or file:// URI")
    raw = unquote(parsed.path) if parsed.scheme == "file" else uri
    candidate = Path(raw).expanduser()
    if not candidate.is_absolute():
        candidate = base_dir / candidate
    real = Path(candidate).resolve(strict=False)
    roots = [Path(r).resolve() for r in roots]
    if not any(real == r or r in real.parents for r in roots):
        raise ValueError(
            f"{uri} resolves to {real}, outside the media roots {[str(r) for r in roots]}; "
            "move the file under a root or add its folder to media_roots"
        )
    if not real.exists():
        raise ValueError(f"file {real} does not exist")
    if not real.is_file():
        raise ValueError(f"{real} is not a regular file")
    return real


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    s = str(value).replace("\x00", "").strip()
    return s[:limit] if s else None


def _timestamp(value: Any) -> dt.datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)):
        try:
            return dt.datetime.fromtimestamp(float(value), tz=dt.UTC).replace(tzinfo=None)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError(f"uploaded_at {value!r} is not a valid Unix time") from exc
    try:
        parsed = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"uploaded_at {value!r} is not an ISO-8601 timestamp") from exc
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def validate_row(
    raw: dict[str, Any], base_dir: Path, roots: Iterable[Path], ws: WorkingSet, warnings: list[str]
) -> VideoRow:
    """One manifest row checked and normalised; raises ValueError with the reason to report."""
    if "__error__" in raw:
        raise ValueError(raw["__error__"])
    video_id = raw.get("id", raw.get("video_id"))
    video_id = str(video_id).strip() if video_id is not None else ""
    if not video_id:
        raise ValueError("missing id")
    if not ID_PATTERN.match(video_id):
        raise ValueError(f"id {video_id[:40]!r} must be 1-128 characters of letters, digits, _ . : -")
    path = resolve_uri(str(raw.get("uri") or ""), base_dir, roots)
    language = _text(raw.get("language"), 16)
    if language is not None:
        language = language.lower().replace("_", "-")
        if not LANG_PATTERN.match(language):
            warnings.append(f"{video_id}: language {language!r} is not an ISO 639 code; stored as unknown")
            language = None
    labels = raw.get("labels")
    rolled: list[str] | None = None
    if labels not in (None, "", []):
        if isinstance(labels, str):
            labels = [x for x in re.split(r"[|;,\s]+", labels) if x]
        if not isinstance(labels, list):
            raise ValueError(f"labels must be a list of IAB ids or a '|'-separated string, got {type(labels).__name__}")
        rolled = []
        for label in labels:
            cid = str(label).strip()
            if cid not in ws.taxonomy:
                raise ValueError(f"label {cid!r} is not an IAB Content Taxonomy 3.1 id")
            target = ws.taxonomy.roll_up(cid, ws.ids)
            if target is None:
                warnings.append(f"{video_id}: label {cid} is outside the working set; ignored")
            elif target not in rolled:
                rolled.append(target)
    size = path.stat().st_size
    return VideoRow(
        video_id=video_id,
        path=path,
        sha256=file_sha256(path),
        size_bytes=size,
        title=_text(raw.get("title"), MAX_TITLE_CHARS),
        description=_text(raw.get("description"), MAX_DESCRIPTION_CHARS),
        tags=_text(raw.get("tags"), MAX_TAGS_CHARS),
        language=language,
        creator=_text(raw.get("creator"), 256),
        uploaded_at=_timestamp(raw.get("uploaded_at")),
        labels=rolled,
    )


def register_rows(
    catalog: Catalog,
    rows: Iterable[tuple[int, dict[str, Any]]],
    base_dir: Path,
    roots: Iterable[Path],
    ws: WorkingSet,
    origin: str,
) -> RegistrationReport:
    """Validate every row, then insert the accepted ones in one transaction (all or nothing)."""
    report = RegistrationReport()
    roots = list(roots)
    accepted: list[VideoRow] = []
    seen_ids: dict[str, int] = {}
    seen_sha: dict[str, str] = {}
    for lineno, raw in rows:
        rid = raw.get("id", raw.get("video_id")) if isinstance(raw, dict) else None
        try:
            row = validate_row(raw, base_dir, roots, ws, report.warnings)
        except (ValueError, TypeError, OverflowError, OSError) as exc:  # one bad row never stops the others
            report.rejected.append(Rejection(lineno, None if rid is None else str(rid), str(exc)))
            continue
        if row.video_id in seen_ids:
            report.rejected.append(
                Rejection(lineno, row.video_id, f"duplicate id: already on row {seen_ids[row.video_id]}")
            )
            continue
        # Every 0-byte upload hashes alike: an empty file is not a duplicate of another, it is empty
        # (registered, it fails the probe as EmptyFile with its own failure row).
        if row.size_bytes and row.sha256 in seen_sha:
            report.rejected.append(
                Rejection(lineno, row.video_id, f"identical content to {seen_sha[row.sha256]} in this manifest")
            )
            continue
        seen_ids[row.video_id] = lineno
        if row.size_bytes:
            seen_sha[row.sha256] = row.video_id
        accepted.append(row)
    if not accepted:
        return report
    with catalog.transaction() as con:
        con.execute("CREATE TEMP TABLE incoming (video_id VARCHAR, sha VARCHAR)")
        insert_rows(con, "incoming", ["video_id", "sha"], [(r.video_id, r.sha256) for r in accepted])
        existing_ids = dict(
            con.execute("SELECT v.video_id, v.content_sha256 FROM videos v JOIN incoming i USING (video_id)").fetchall()
        )
        existing_sha = dict(
            con.execute(
                "SELECT v.content_sha256, v.video_id FROM videos v JOIN incoming i ON v.content_sha256 = i.sha"
            ).fetchall()
        )
        con.execute("DROP TABLE incoming")
        to_insert: list[VideoRow] = []
        for r in accepted:
            if r.video_id in existing_ids:
                if existing_ids[r.video_id] == r.sha256:
                    report.already_registered.append(r.video_id)
                else:
                    report.rejected.append(
                        Rejection(
                            seen_ids[r.video_id],
                            r.video_id,
                            "duplicate id: registered before with different content; use a new id",
                        )
                    )
                continue
            if r.size_bytes and r.sha256 in existing_sha:
                report.rejected.append(
                    Rejection(
                        seen_ids[r.video_id],
                        r.video_id,
                        f"identical content to already registered video {existing_sha[r.sha256]}",
                    )
                )
                continue
            to_insert.append(r)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        # seq continues the registry in row order; the writer lock makes max()+k safe.
        first_seq = con.execute("SELECT coalesce(max(seq), 0) + 1 FROM videos").fetchone()[0]
        insert_rows(
            con,
            "videos",
            [
                "video_id",
                "seq",
                "uri",
                "content_sha256",
                "size_bytes",
                "title",
                "description",
                "tags",
                "language",
                "creator",
                "uploaded_at",
                "registered_at",
                "origin",
            ],
            [
                (
                    r.video_id,
                    first_seq + k,
                    str(r.path),
                    r.sha256,
                    r.size_bytes,
                    r.title,
                    r.description,
                    r.tags,
                    r.language,
                    r.creator,
                    r.uploaded_at,
                    now,
                    origin,
                )
                for k, r in enumerate(to_insert)
            ],
        )
        labelled = [r for r in to_insert if r.labels is not None]
        insert_rows(
            con,
            "human_labels",
            ["video_id", "category_id", "label_set", "is_positive", "annotator", "created_at"],
            [(r.video_id, c, "editor", True, origin, now) for r in labelled for c in r.labels or []],
        )
        insert_rows(
            con,
            "label_coverage",
            ["video_id", "label_set", "exhaustive"],
            [(r.video_id, "editor", True) for r in labelled],
        )
        report.registered.extend(r.video_id for r in to_insert)
    return report


def register_manifest(
    catalog: Catalog, manifest: str | Path, roots: Iterable[Path], ws: WorkingSet, origin: str | None = None
) -> RegistrationReport:
    manifest = Path(manifest).resolve()
    return register_rows(catalog, read_manifest(manifest), manifest.parent, roots, ws, origin or manifest.name)
