"""Background work of the tiers service: folding points facts into metrics (re-evaluating the
member at once), recording activity for value scores and groups, letting rolling windows roll
and stratifying percentile tenants."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from services.runtime.bus import ActorSpec, PeriodicJob, consume
from services.runtime.worker import WorkerContext
from services.tiers import store
from services.tiers.activity import apply_activity
from services.tiers.evaluation import apply_and_evaluate, evaluate

log = logging.getLogger("fuli.tiers.actors")

QUEUE = "tiers"
BATCH = 1000
ROLL_LOOKBACK_DAYS = 31


async def apply_points_event(bodies: str | list[str]) -> None:
    resources = await WorkerContext.resources()
    await consume(resources.pool, "tiers.apply_points_event", bodies, apply_and_evaluate)


async def record_activity(bodies: str | list[str]) -> None:
    resources = await WorkerContext.resources()
    await consume(resources.pool, "tiers.record_activity", bodies, apply_activity)


async def roll_windows(at: str | None = None) -> None:
    """Re-evaluate members of windowed threshold policies whose spend or points just left the
    window (or whose grace is running): they move without any new event. ``at`` (RFC 3339)
    evaluates as of another time. Days that left the window up to ``ROLL_LOOKBACK_DAYS`` ago
    are caught, so the hourly job may miss runs for that long."""
    resources = await WorkerContext.resources()
    now = datetime.fromisoformat(at) if at else datetime.now(UTC)
    after = ("", "")
    while rows := await store.window_candidates(resources.pool, after, now, ROLL_LOOKBACK_DAYS,
                                                BATCH):
        for row in rows:
            async with resources.pool.acquire() as conn, conn.transaction():
                await evaluate(conn, row["tenant_id"], row["member_id"], now)
        after = (rows[-1]["tenant_id"], rows[-1]["member_id"])


async def stratify_all() -> None:
    """The scheduled stratification of every tenant with a percentile policy."""
    resources = await WorkerContext.resources()
    for tenant_id in await store.percentile_tenants(resources.pool):
        async with resources.pool.acquire() as conn, conn.transaction():
            row = await store.stratify(conn, tenant_id, datetime.now(UTC))
        log.info("stratified", extra={"fields": {"tenant": tenant_id, "members": row["members"],
                                                 "changed": row["changed"]}})


ACTORS: list[ActorSpec] = [
    ActorSpec("tiers.apply_points_event", QUEUE, apply_points_event),
    ActorSpec("tiers.record_activity", QUEUE, record_activity),
    ActorSpec("tiers.roll_windows", QUEUE, roll_windows, max_retries=3),
    ActorSpec("tiers.stratify_all", QUEUE, stratify_all, max_retries=3,
              time_limit_ms=3_600_000),
]
PERIODIC: list[PeriodicJob] = [
    PeriodicJob("tiers.roll_windows", QUEUE, every_s=3600),
    PeriodicJob("tiers.stratify_all", QUEUE, every_s=86_400),
]
