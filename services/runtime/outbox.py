"""Transactional outbox: events are written with the change that caused them and relayed to the
broker afterwards, so a crash between commit and publish loses nothing (delivery is at least
once; consumers deduplicate on the envelope's event id)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC
from typing import Any

import asyncpg
import dramatiq
import msgspec

from proto.events import SUBSCRIPTIONS, Event, Subscriber, event_name
from services.runtime.db import Conn, Db, Pool

log = logging.getLogger("fuli.outbox")

_encoder = msgspec.json.Encoder()

Enqueue = Callable[[list[dramatiq.Message[Any]]], None]
MAX_BATCH = 200  # envelopes per message to a batch subscriber


async def emit(conn: Conn, *, service: str, tenant_id: str,
               events: Sequence[Event]) -> None:
    """Write events in the caller's transaction."""
    if not events:
        return
    await conn.execute(
        "INSERT INTO fuli.outbox (service, tenant_id, event_type, payload)"
        " SELECT $1, $2, t.event_type, t.payload"
        " FROM unnest($3::text[], $4::bytea[]) AS t(event_type, payload)",
        service, tenant_id, [event_name(e) for e in events], [_encoder.encode(e) for e in events],
    )


async def outbox_backlog(conn: Db) -> tuple[int, float]:
    """Events waiting to be relayed, and the age in seconds of the oldest (0 when empty)."""
    row = await conn.fetchrow(
        "SELECT count(*) AS pending,"
        " coalesce(extract(epoch FROM now() - min(created_at)), 0) AS lag FROM fuli.outbox")
    assert row is not None
    return int(row["pending"]), float(row["lag"])


def envelope_json(row: asyncpg.Record) -> str:
    envelope = {
        "event_id": str(row["event_id"]), "tenant_id": row["tenant_id"],
        "service": row["service"], "type": row["event_type"],
        "emitted_at": row["created_at"].astimezone(UTC),
        "data": msgspec.Raw(row["payload"]),
    }
    return _encoder.encode(envelope).decode()


def messages_for(rows: Sequence[asyncpg.Record],
                 subscriptions: Mapping[str, Sequence[Subscriber]],
                 max_batch: int = MAX_BATCH) -> list[dramatiq.Message[Any]]:
    """One message per row and subscriber, except that a batch subscriber gets the rows of its
    types together, in outbox order, up to ``max_batch`` bodies per message."""
    messages: list[dramatiq.Message[Any]] = []
    batches: dict[Subscriber, list[str]] = {}
    for row in rows:
        body = envelope_json(row)
        for sub in subscriptions.get(row["event_type"], ()):
            if sub.batch:
                batches.setdefault(sub, []).append(body)
            else:
                messages.append(dramatiq.Message(queue_name=sub.queue, actor_name=sub.actor,
                                                 args=(body,), kwargs={}, options={}))
    for sub, bodies in batches.items():
        for start in range(0, len(bodies), max_batch):
            messages.append(dramatiq.Message(queue_name=sub.queue, actor_name=sub.actor,
                                             args=(bodies[start:start + max_batch],),
                                             kwargs={}, options={}))
    return messages


class OutboxRelay:
    """Moves committed outbox rows to the broker. Several relays may run: rows are claimed with
    SKIP LOCKED and deleted only after the broker accepted their messages."""

    def __init__(self, pool: Pool, enqueue: Enqueue, *, batch_size: int = 500,
                 subscriptions: Mapping[str, Sequence[Subscriber]] = SUBSCRIPTIONS) -> None:
        self._pool = pool
        self._enqueue = enqueue
        self._batch_size = batch_size
        self._subscriptions = subscriptions

    async def relay_batch(self) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, event_id, service, tenant_id, event_type, payload, created_at"
                " FROM fuli.outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch_size,
            )
            if not rows:
                return 0
            messages = messages_for(rows, self._subscriptions)
            if messages:
                await asyncio.to_thread(self._enqueue, messages)
            await conn.execute("DELETE FROM fuli.outbox WHERE id = any($1::bigint[])",
                               [row["id"] for row in rows])
            return len(rows)

    async def run(self, stop: asyncio.Event, poll_s: float) -> None:
        while not stop.is_set():
            try:
                moved = await self.relay_batch()
            except Exception:
                log.exception("outbox relay failed; retrying")
                moved = 0
            if moved < self._batch_size:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=poll_s)
                except TimeoutError:
                    pass
