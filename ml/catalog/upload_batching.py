"""The upload sensor's decision, without Dagster: which batches to open and which to request.

Kept apart from the sensor so the rule is tested on its own and timed on a million-video registry.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ml.catalog.batching import BatchInfo, batch_number, batches_after, create_batches, pending
from ml.catalog.store import Catalog

SENSOR_ORIGIN = "sensor"


@dataclass
class TickPlan:
    new_batches: list[BatchInfo] = field(default_factory=list)
    to_request: list[str] = field(default_factory=list)
    cursor: int = 0
    pending: int = 0
    reason: str = ""


def plan_tick(
    catalog: Catalog,
    cursor: int,
    batch_size: int,
    max_wait_s: float,
    max_batches: int,
    now: dt.datetime | None = None,
) -> TickPlan:
    """Close full batches, and a partial one when its oldest video has waited ``max_wait_s``.

    ``cursor`` is the highest batch number already requested by the sensor; every sensor batch
    above it is requested (again, if a crash lost the previous tick's result: run keys dedupe).
    """
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    state = pending(catalog)
    plan = TickPlan(cursor=cursor, pending=state.count)
    if state.count:
        waited = (now - state.oldest_registered_at).total_seconds() if state.oldest_registered_at else 0.0
        close_partial = waited >= max_wait_s
        if state.count >= batch_size or close_partial:
            plan.new_batches = create_batches(
                catalog, batch_size, SENSOR_ORIGIN, close_partial=close_partial, max_batches=max_batches
            )
        if not plan.new_batches:
            plan.reason = (
                f"{state.count} video(s) pending, fewer than {batch_size}; the oldest waited "
                f"{waited:.0f}s of {max_wait_s:.0f}s"
            )
    plan.to_request = batches_after(catalog, cursor, origin=SENSOR_ORIGIN)
    if plan.to_request:
        plan.cursor = max(cursor, *(batch_number(b) for b in plan.to_request))
    elif not plan.reason:
        plan.reason = "no new videos"
    return plan
