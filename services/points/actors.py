"""Background work of the points service: the expiry sweep and hold time-outs."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from services.points import store
from services.runtime.bus import ActorSpec, PeriodicJob
from services.runtime.worker import WorkerContext

log = logging.getLogger("fuli.points.actors")

QUEUE = "points"
SWEEP_BATCH = 200


async def sweep_expired_lots() -> None:
    """Move the remainders of expired lots to the expiry account, in member batches."""
    resources = await WorkerContext.resources()
    total = 0
    while True:
        async with resources.pool.acquire() as conn:
            swept = await store.sweep_expired_lots(conn, datetime.now(UTC), SWEEP_BATCH)
        total += swept
        if swept < SWEEP_BATCH:
            break
    if total:
        log.info("expired lots swept", extra={"fields": {"members": total}})


async def expire_holds() -> None:
    """Void pending holds whose time ran out."""
    resources = await WorkerContext.resources()
    total = 0
    while True:
        async with resources.pool.acquire() as conn:
            voided = await store.expire_holds(conn, datetime.now(UTC), SWEEP_BATCH)
        total += voided
        if voided < SWEEP_BATCH:
            break
    if total:
        log.info("expired holds voided", extra={"fields": {"holds": total}})


ACTORS: list[ActorSpec] = [
    ActorSpec("points.sweep_expired_lots", QUEUE, sweep_expired_lots, max_retries=3),
    ActorSpec("points.expire_holds", QUEUE, expire_holds, max_retries=3),
]
PERIODIC: list[PeriodicJob] = [
    PeriodicJob("points.sweep_expired_lots", QUEUE, every_s=60),
    PeriodicJob("points.expire_holds", QUEUE, every_s=5),
]
