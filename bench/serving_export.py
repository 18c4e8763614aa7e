"""Export of one batch of 2,000 videos into the PostgreSQL serving store (ml/serving/export.py).

Measured on a throwaway local server (bench/postgres_server.py) unless VIDCAT_SERVING_DSN points at
one: the first export of a batch (inserts), the same batch again (idempotent re-run: every row
rewritten with the same values), a rescore (newer results: categories replaced), and an old batch's
export after the rescore (the newer-wins guard: nothing written). Two categories per video, as on the
demo catalog.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from typing import Any

VIDEOS = 2000


def _payload(version: str, at: dt.datetime, shift: int):
    from ml.serving.export import BatchPayload, VideoRecord

    return BatchPayload(
        "bench",
        [
            VideoRecord(
                f"v{i:07d}",
                version,
                at,
                [
                    (str(100 + (i + shift) % 200), 0.9, "visual", 2, "Parent > Leaf"),
                    (str(300 + (i + shift) % 100), 0.8, "text", 1, "Parent"),
                ],
            )
            for i in range(VIDEOS)
        ],
    )


def run() -> dict[str, Any]:
    from bench.postgres_server import postgres_server
    from ml.serving.export import connect, ensure_schema, export_batch

    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with contextlib.ExitStack() as stack:
        dsn = os.environ.get("VIDCAT_SERVING_DSN") or stack.enter_context(postgres_server())
        with connect(dsn) as conn:
            ensure_schema(conn)
            conn.execute("TRUNCATE video_classification CASCADE")
            conn.commit()
            old, new = _payload("f1", t0, 0), _payload("f2", t0 + dt.timedelta(hours=1), 7)
            times = {}
            for name, payload in (
                ("first_export", old),
                ("same_batch_again", old),
                ("rescore", new),
                ("old_batch_after", old),
            ):
                started = time.perf_counter()
                result = export_batch(conn, payload)
                times[f"{name}_s"] = round(time.perf_counter() - started, 3)
                times[f"{name}_updated"] = result.updated
    return {
        "videos_per_batch": VIDEOS,
        **times,
        "server": "VIDCAT_SERVING_DSN" if os.environ.get("VIDCAT_SERVING_DSN") else "local throwaway",
    }
