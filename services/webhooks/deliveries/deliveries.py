"""Deliveries: one per (public event, subscribed enabled endpoint), written in the transaction
that records the event in the consumer's inbox; listing them, sending one again, replaying a
time range, and the signed test ping."""

from __future__ import annotations

from datetime import UTC, datetime

from proto import webhooks as w
from proto.events import Envelope
from services.runtime.bus import Handler
from services.runtime.db import Conn, Pool
from services.runtime.errors import NotFound, ValidationFailed
from services.runtime.pagination import before_cursor, newest_first_cursor
from services.webhooks.deliveries import rules, store
from services.webhooks.deliveries.sender import Sender
from services.webhooks.endpoints.endpoints import Endpoints


def record_handler() -> Handler:
    """The bus handler of one delivery of events (``webhooks.record_events``): a pending
    delivery of each public event to every enabled endpoint of its tenant subscribed to its
    type. Each tenant's endpoints are read once per delivery (a batch), not once per event:
    every earned point passes here, most tenants with no endpoint at all."""
    read: dict[str, list[store.Subscription]] = {}

    async def record(conn: Conn, envelope: Envelope) -> None:
        public_type = rules.public_type(envelope.type)
        if public_type is None:
            return
        if envelope.tenant_id not in read:
            read[envelope.tenant_id] = await store.subscriptions(conn, envelope.tenant_id)
        endpoint_ids = rules.subscribers(read[envelope.tenant_id], public_type)
        if not endpoint_ids:
            return
        deliveries = []
        for event in rules.public_events(envelope.event_id, envelope.type, bytes(envelope.data)):
            body = rules.body(event, envelope.emitted_at)
            deliveries += [store.NewDelivery(rules.delivery_id(event.event_id, endpoint_id),
                                             endpoint_id, event.event_id, event.event_type, body)
                           for endpoint_id in endpoint_ids]
        await store.insert(conn, envelope.tenant_id, deliveries)

    return record


class Deliveries:
    def __init__(self, pool: Pool, endpoints: Endpoints, sender: Sender) -> None:
        self._pool = pool
        self._endpoints = endpoints
        self._sender = sender

    async def listed(self, tenant_id: str, endpoint_id: str, status: str | None, limit: int,
                     cursor: str | None) -> w.DeliveryList:
        await self._endpoints.row(tenant_id, endpoint_id)
        before = before_cursor(cursor)
        items = await store.page(self._pool, tenant_id, endpoint_id, status, before, limit + 1)
        more = len(items) > limit
        items = items[:limit]
        return w.DeliveryList(items=items, next_cursor=newest_first_cursor(
            items[-1].created_at, items[-1].delivery_id) if more else None)

    async def get(self, tenant_id: str, endpoint_id: str, delivery_id: str) -> w.Delivery:
        found = await store.get(self._pool, tenant_id, endpoint_id, delivery_id)
        if found is None:
            raise _unknown_delivery(endpoint_id, delivery_id)
        return found

    async def retry(self, tenant_id: str, endpoint_id: str, delivery_id: str) -> w.Delivery:
        """The delivery due again now, its retry schedule started over."""
        found = await store.send_again(self._pool, tenant_id, endpoint_id, delivery_id)
        if found is None:
            raise _unknown_delivery(endpoint_id, delivery_id)
        return found

    async def replay(self, tenant_id: str, endpoint_id: str, body: w.ReplayBody) -> w.Replayed:
        if body.from_ >= body.to:
            raise ValidationFailed("`from` must be before `to`", field="from")
        await self._endpoints.row(tenant_id, endpoint_id)
        count = await store.replay(self._pool, tenant_id, endpoint_id, body.from_, body.to)
        return w.Replayed(deliveries=count)

    async def ping(self, tenant_id: str, endpoint_id: str) -> w.PingResult:
        endpoint = await self._endpoints.row(tenant_id, endpoint_id)
        return await self._sender.ping(endpoint, datetime.now(UTC))


def _unknown_delivery(endpoint_id: str, delivery_id: str) -> NotFound:
    return NotFound(f"no delivery {delivery_id!r} of endpoint {endpoint_id!r}",
                    code="unknown_delivery", delivery_id=delivery_id)
