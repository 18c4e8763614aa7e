"""Export of one batch of 2,000 videos into the PostgreSQL serving store (ml/serving/export.py).

Measured on a throwaway local server (bench/postgres_server.py) unless VIDCAT_SERVING_DSN points at
one: the first export of a batch (inserts), the same batch again (idempotent re-run: every row
rewritten with the same values), a rescore (newer results: categories replaced), and an old batch's
export after the rescore (the newer-wins guard: nothing written). Two categories per video, as on the
demo catalog.

Baseline, in the same run and on the same server: the same rows COPYed into two fresh tables shaped
like the store's (same columns and keys), one transaction, no newer-wins comparison and no upsert:
the cost of moving the bytes into PostgreSQL at all. Each export prints as a ratio to it (best of
the baseline measured before and after the exports).
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


def plain_copy(conn, payload) -> float:
    """Seconds to COPY ``payload``'s rows into fresh tables like the store's, committed; then dropped."""
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE bench_plain_classification (LIKE video_classification INCLUDING ALL)")
        cur.execute("CREATE TABLE bench_plain_category (LIKE video_category INCLUDING ALL)")
        with cur.copy("COPY bench_plain_classification FROM STDIN") as copy:
            for r in payload.serve:
                copy.write_row((r.video_id, r.model_version, r.classified_at, len(r.categories)))
        with cur.copy(
            "COPY bench_plain_category (video_id, category_id, score, source, tier, path) FROM STDIN"
        ) as copy:
            for r in payload.serve:
                for cat, score, source, tier, path in r.categories:
                    copy.write_row((r.video_id, cat, score, source, tier, path))
    conn.commit()
    elapsed = time.perf_counter() - started
    conn.execute("DROP TABLE bench_plain_category, bench_plain_classification")
    conn.commit()
    return elapsed


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
            baseline = [plain_copy(conn, old)]
            times = {}
            for name, payload in (
                ("first_export", old),
                ("same_batch_again", old),
                ("rescore", new),
                ("old_batch_after", old),
            ):
                started = time.perf_counter()
                result = export_batch(conn, payload)
                times[f"{name}_s"] = time.perf_counter() - started
                times[f"{name}_updated"] = result.updated
            baseline.append(plain_copy(conn, old))
    plain = min(baseline)
    ratios = {f"{k[:-2]}_over_plain_copy": round(v / plain, 2) for k, v in times.items() if k.endswith("_s")}
    return {
        "videos_per_batch": VIDEOS,
        "plain_copy_s": round(plain, 3),
        **ratios,
        **{k: round(v, 3) if k.endswith("_s") else v for k, v in times.items()},
        "server": "VIDCAT_SERVING_DSN" if os.environ.get("VIDCAT_SERVING_DSN") else "local throwaway",
    }
