"""Background work of the webhooks service: recording deliveries of public events (a bus
consumer) and sending the due ones."""

from __future__ import annotations

from services.runtime.bus import ActorSpec, PeriodicJob, consume
from services.runtime.worker import WorkerContext
from services.webhooks.app import WebhooksComponents
from services.webhooks.deliveries.deliveries import record_handler

QUEUE = "webhooks"


async def record_events(bodies: str | list[str]) -> None:
    resources = await WorkerContext.resources()
    await consume(resources.pool, "webhooks.record_events", bodies, record_handler())


async def send_due() -> None:
    """Starts sending what is due; the sends run on in the worker's event loop (each claimed
    for a while, sent again if the worker dies), so a slow receiver holds no worker thread."""
    components = await WorkerContext.components("webhooks", WebhooksComponents)
    await components.sender.pump()


ACTORS: list[ActorSpec] = [
    ActorSpec("webhooks.record_events", QUEUE, record_events),
    ActorSpec("webhooks.send_due", QUEUE, send_due, max_retries=0, time_limit_ms=60_000),
]
PERIODIC: list[PeriodicJob] = [
    PeriodicJob("webhooks.send_due", QUEUE, every_s=1),
]
