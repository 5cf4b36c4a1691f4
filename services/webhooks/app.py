"""The webhooks service: endpoints of brand systems, and the public events pushed to them as
signed (Standard Webhooks), retried, replayable deliveries."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

from litestar import Router

from services.runtime.resources import Resources
from services.runtime.service import Peers, ServiceSpec
from services.webhooks import metrics, signing
from services.webhooks.deliveries import api as deliveries_api
from services.webhooks.deliveries.deliveries import Deliveries
from services.webhooks.deliveries.sender import Sender
from services.webhooks.endpoints import api as endpoints_api
from services.webhooks.endpoints import store as endpoints_store
from services.webhooks.endpoints.endpoints import Endpoints
from services.webhooks.safety import Guard, Resolver, system_resolver


@dataclass(frozen=True)
class WebhooksComponents:
    endpoints: Endpoints
    deliveries: Deliveries
    sender: Sender


async def deployment_key(resources: Resources) -> bytes:
    """FULI_WEBHOOKS_KEY's key, or the one kept in the database (made on first use)."""
    configured = resources.settings.webhooks_key
    if configured is not None:
        return signing.deployment_key(configured)
    async with resources.pool.acquire() as conn:
        return await endpoints_store.stored_key(conn, secrets.token_bytes(32))


@contextlib.asynccontextmanager
async def open_components(resources: Resources, peers: Peers,
                          resolver: Resolver = system_resolver
                          ) -> AsyncIterator[WebhooksComponents]:
    settings = resources.settings
    guard = Guard(allow_private=settings.webhooks_allow_private,
                  allow_http=settings.webhooks_allow_http, resolver=resolver)
    endpoints = Endpoints(resources.pool, await deployment_key(resources), guard)
    sender = Sender(resources.pool, endpoints, settings)
    try:
        yield WebhooksComponents(endpoints=endpoints,
                                 deliveries=Deliveries(resources.pool, endpoints, sender),
                                 sender=sender)
    finally:
        await sender.close()


WEBHOOKS: ServiceSpec[WebhooksComponents] = ServiceSpec(
    name="webhooks",
    package="services.webhooks",
    description="Endpoints of brand systems and the public events pushed to them: signed by "
                "the Standard Webhooks specification, retried with back-off, replayable.",
    route_handlers=[Router(path="/webhooks/v1", route_handlers=[
        *endpoints_api.CONTROLLERS, *deliveries_api.CONTROLLERS])],
    components=open_components,
    provides={"endpoints": lambda c: c.endpoints, "deliveries": lambda c: c.deliveries},
    metrics=metrics.refresh,
)
