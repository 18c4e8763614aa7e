"""The upload inbox: a folder where the platform drops a video and then its sidecar JSON.

The sidecar is written last, so its presence says the video is complete. It carries the manifest
fields (id, title, description, ...) and names the video in `file` (default: same stem). After the
catalog commit the sidecar is renamed `.json.done` (or `.json.rejected`, with the reason in a
`.reason.txt`), so a crash in between only means the next scan reports "already registered".
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ml.catalog.registration import RegistrationReport, register_rows
from ml.catalog.store import Catalog
from ml.taxonomy import WorkingSet

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif", ".m4v", ".mpg", ".mpeg", ".ts")


@dataclass
class InboxScan:
    report: RegistrationReport = field(default_factory=RegistrationReport)
    sidecars: int = 0


def _video_for(sidecar: Path, meta: dict) -> Path | None:
    if meta.get("file"):
        return sidecar.parent / str(meta["file"])
    for suffix in VIDEO_SUFFIXES:
        candidate = sidecar.with_suffix(suffix)
        if candidate.exists():
            return candidate
    return None


# Registration hashes every file; a sensor tick must end far below Dagster's 60 s, so one scan takes at
# most this many drops or bytes (about 2 s of hashing) and leaves the rest for the next tick.
MAX_DROPS_PER_SCAN = 5000
MAX_BYTES_PER_SCAN = 2 * 1024**3


def scan_inbox(
    catalog: Catalog,
    inbox: Path,
    roots: list[Path],
    ws: WorkingSet,
    limit: int = MAX_DROPS_PER_SCAN,
    max_bytes: int = MAX_BYTES_PER_SCAN,
) -> InboxScan:
    """Register complete drops from ``inbox`` (at most ``limit`` drops or ``max_bytes``); the rest wait."""
    scan = InboxScan()
    if not inbox.is_dir():
        return scan
    rows: list[tuple[int, dict]] = []
    sidecars: list[Path] = []
    taken_bytes = 0
    for sidecar in sorted(inbox.glob("*.json"))[:limit]:
        if rows and taken_bytes >= max_bytes:
            break
        scan.sidecars += 1
        try:
            meta = json.loads(sidecar.read_bytes().decode("utf-8", errors="replace"))
            if not isinstance(meta, dict):
                raise ValueError("sidecar is not a JSON object")
        except ValueError as exc:
            _reject(sidecar, f"sidecar {sidecar.name} is not valid JSON: {exc}")
            scan.report.warnings.append(f"{sidecar.name}: invalid JSON, moved aside")
            continue
        video = _video_for(sidecar, meta)
        if video is None:
            _reject(sidecar, f"no video file next to {sidecar.name} (expected one of {VIDEO_SUFFIXES})")
            scan.report.warnings.append(f"{sidecar.name}: no video file, moved aside")
            continue
        meta.setdefault("id", sidecar.stem)
        meta["uri"] = str(video)
        with contextlib.suppress(OSError):
            taken_bytes += video.stat().st_size
        rows.append((len(sidecars) + 1, meta))
        sidecars.append(sidecar)
    if not rows:
        return scan
    report = register_rows(catalog, rows, inbox, roots, ws, origin="inbox")
    rejected = {r.row: r.reason for r in report.rejected}
    for i, sidecar in enumerate(sidecars, start=1):
        if i in rejected:
            _reject(sidecar, rejected[i])
        else:
            # Another scan (the sensor and a registry materialization) may have moved it already.
            with contextlib.suppress(FileNotFoundError):
                sidecar.rename(sidecar.with_name(sidecar.name + ".done"))
    report.warnings[:0] = scan.report.warnings
    scan.report = report
    return scan


def _reject(sidecar: Path, reason: str) -> None:
    sidecar.with_name(sidecar.stem + ".reason.txt").write_text(reason + "\n")
    with contextlib.suppress(FileNotFoundError):
        sidecar.rename(sidecar.with_name(sidecar.name + ".rejected"))
