"""The upload inbox: a folder where the platform drops a video and then its sidecar JSON.

The sidecar is written last, so its presence says the video is complete. It carries the manifest
fields (id, title, description, ...) and names the video in `file` (default: same stem). After the
catalog commit the sidecar is renamed `.json.done` (or `.json.rejected`, with the reason in a
`.reason.txt`), so a crash in between only means the next scan reports "already registered".

Uploaders should write the sidecar under another name (``clip.json.part``) and rename it to
``clip.json``: a scan then never sees half of it. One that writes ``clip.json`` in place (a plain copy,
or a slow network share) can be caught mid-write; an unparseable sidecar younger than
``SIDECAR_WRITE_GRACE_S`` is therefore left for a later scan, and only an older one is rejected.
"""

from __future__ import annotations

import contextlib
import json
import time
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
# An unparseable sidecar modified less than this long ago may still be being written (a copy in
# progress, a network share flushing late): the sensor ticks every 30 s, so it is retried at least once
# before it is rejected. Long enough for a slow copy of a few kilobytes, short enough that a truly
# broken sidecar is reported within two ticks.
SIDECAR_WRITE_GRACE_S = 60.0


def scan_inbox(
    catalog: Catalog,
    inbox: Path,
    roots: list[Path],
    ws: WorkingSet,
    limit: int = MAX_DROPS_PER_SCAN,
    max_bytes: int = MAX_BYTES_PER_SCAN,
    write_grace_s: float = SIDECAR_WRITE_GRACE_S,
) -> InboxScan:
    """Register complete drops from ``inbox`` (at most ``limit`` drops or ``max_bytes``); the rest wait.

    A sidecar that does not parse is rejected only once it is ``write_grace_s`` old (by mtime): a
    younger one may be a write in progress, and rejecting it would lose the upload.
    """
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
        except FileNotFoundError:
            continue  # another scan registered or rejected it meanwhile
        except ValueError as exc:
            if _age_s(sidecar) < write_grace_s:
                scan.report.warnings.append(
                    f"{sidecar.name}: not valid JSON yet ({exc}); left for the next scan in case it is still "
                    f"being written (rejected once {write_grace_s:.0f} s old; write it as {sidecar.name}.part "
                    "and rename it when complete)"
                )
                continue
            _reject(
                sidecar,
                f"sidecar {sidecar.name} is not valid JSON: {exc}; fix it and drop it again as "
                f"{sidecar.name} (write {sidecar.name}.part, then rename it)",
            )
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


def _age_s(path: Path) -> float:
    """Seconds since ``path`` was last modified; 0 when it is gone (then a later scan decides)."""
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _reject(sidecar: Path, reason: str) -> None:
    sidecar.with_name(sidecar.stem + ".reason.txt").write_text(reason + "\n")
    with contextlib.suppress(FileNotFoundError):
        sidecar.rename(sidecar.with_name(sidecar.name + ".rejected"))
