"""The worker, in the test process: its context, and the outbox run through the consumers as the
relay and the worker would."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from proto.events import SUBSCRIPTIONS
from services.composition.registry import SERVICES, jobs
from services.runtime.outbox import messages_for
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from services.runtime.worker import WorkerContext


async def deliver(resources: Resources, settings: Settings, tenant: str,
                  twice: bool = False) -> int:
    """What the relay and the worker do, in this process: the tenant's outbox events as the
    relay's messages (batches for batch subscribers) to each actor, again and again until
    consumers stop emitting, then removed. ``twice`` delivers every message twice."""
    actors = {spec.name: spec.fn for spec in jobs()[0]}
    delivered = 0
    WorkerContext.configure(settings, SERVICES)
    try:
        while rows := await resources.pool.fetch(
                "SELECT id, event_id, service, tenant_id, event_type, payload, created_at"
                " FROM fuli.outbox WHERE tenant_id = $1 ORDER BY id", tenant):
            for message in messages_for(rows, SUBSCRIPTIONS):
                for _ in range(2 if twice else 1):
                    await actors[message.actor_name](*message.args)
            await resources.pool.execute("DELETE FROM fuli.outbox WHERE id = any($1::bigint[])",
                                         [r["id"] for r in rows])
            delivered += len(rows)
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
