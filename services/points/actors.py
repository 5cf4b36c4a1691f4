"""Background work of the points service: the expiry sweep and hold time-outs."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

from services.points import store
from services.runtime.bus import ActorSpec, PeriodicJob
from services.runtime.worker import WorkerContext

log = logging.getLogger("fuli.points.actors")

QUEUE = "points"
SWEEP_BATCH = 200


async def _in_batches(step: Callable[[asyncpg.Connection, datetime, int], Awaitable[int]],
                      what: str) -> None:
    """Run a sweep step until it handles less than a full batch."""
    resources = await WorkerContext.resources()
    total = 0
    while True:
        async with resources.pool.acquire() as conn:
            done = await step(conn, datetime.now(UTC), SWEEP_BATCH)
        total += done
        if done < SWEEP_BATCH:
            break
    if total:
        log.info("%s swept", what, extra={"fields": {"count": total}})


async def sweep_expired_lots() -> None:
    """Move the remainders of expired lots to the expiry account."""
    await _in_batches(store.sweep_expired_lots, "members with expired lots")


async def expire_holds() -> None:
    """Void pending holds whose time ran out."""
    await _in_batches(store.expire_holds, "expired holds")


ACTORS: list[ActorSpec] = [
    ActorSpec("points.sweep_expired_lots", QUEUE, sweep_expired_lots, max_retries=3),
    ActorSpec("points.expire_holds", QUEUE, expire_holds, max_retries=3),
]
PERIODIC: list[PeriodicJob] = [
    PeriodicJob("points.sweep_expired_lots", QUEUE, every_s=60),
    PeriodicJob("points.expire_holds", QUEUE, every_s=5),
]
