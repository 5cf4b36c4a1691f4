"""The worker, in the test process: its context, and the outbox run through the consumers as the
relay and the worker would."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from proto.events import SUBSCRIPTIONS
from services.composition.registry import SERVICES, jobs
from services.runtime.outbox import (
    MAX_BATCH,
    OUTBOX_COLUMNS,
    WAITING_CONSUMERS,
    mark_sent,
    messages_for,
    route,
)
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from services.runtime.worker import WorkerContext


async def deliver(resources: Resources, settings: Settings, tenant: str,
                  twice: bool = False, max_batch: int = MAX_BATCH) -> int:
    """What the relay and the worker do, in this process: the tenant's unsent outbox events as
    the relay's messages (batches for batch subscribers) to each actor, again and again until
    consumers stop emitting; then every event must have been applied by each of its consumers
    (their inbox has it) and is removed, as the relay would. ``twice`` delivers every message
    twice; ``max_batch`` is the most events in a message to a batch subscriber."""
    actors = {spec.name: spec.fn for spec in jobs()[0]}
    delivered = 0
    WorkerContext.configure(settings, SERVICES)
    try:
        while rows := await resources.pool.fetch(
                f"SELECT {OUTBOX_COLUMNS} FROM fuli.outbox o"
                " WHERE o.tenant_id = $1 AND o.resend_at IS NULL ORDER BY o.id", tenant):
            async with resources.pool.acquire() as conn:
                deliveries = await route(conn, rows, SUBSCRIPTIONS)
            for message in messages_for(deliveries, max_batch):
                for _ in range(2 if twice else 1):
                    await actors[message.actor_name](*message.args)
            async with resources.pool.acquire() as conn:
                await mark_sent(conn, deliveries, resend_after_s=3600)
            delivered += len(rows)
        unapplied = await resources.pool.fetch(
            f"SELECT o.event_type, {WAITING_CONSUMERS} AS waiting FROM fuli.outbox o"
            " WHERE o.tenant_id = $1", tenant)
        assert not [r for r in unapplied if r["waiting"]], \
            f"events not applied by their consumers: {[tuple(r) for r in unapplied]}"
        await resources.pool.execute("DELETE FROM fuli.outbox WHERE tenant_id = $1", tenant)
    finally:
        await WorkerContext.close()
    return delivered


@contextlib.asynccontextmanager
async def worker_context(settings: Settings) -> AsyncIterator[None]:
    """Actors called inside run as in the worker: with every service hosted for them."""
    WorkerContext.configure(settings, SERVICES)
    try:
        yield
    finally:
        await WorkerContext.close()
