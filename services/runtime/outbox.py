"""Transactional outbox: events are written with the change that caused them and relayed to the
broker afterwards, so a crash between commit and publish loses nothing (delivery is at least
once; consumers deduplicate on the envelope's event id)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC

import asyncpg
import dramatiq
import msgspec

from proto.events import SUBSCRIPTIONS, Event, Subscriber, event_name

log = logging.getLogger("fuli.outbox")

_encoder = msgspec.json.Encoder()

Enqueue = Callable[[list[dramatiq.Message]], None]


async def emit(conn: asyncpg.Connection, *, service: str, tenant_id: str,
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


async def outbox_backlog(conn: asyncpg.Connection | asyncpg.Pool) -> tuple[int, float]:
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


def messages_for(row: asyncpg.Record,
                 subscriptions: Mapping[str, Sequence[Subscriber]]) -> list[dramatiq.Message]:
    body = envelope_json(row)
    return [
        dramatiq.Message(queue_name=sub.queue, actor_name=sub.actor, args=(body,), kwargs={},
                         options={})
        for sub in subscriptions.get(row["event_type"], ())
    ]


class OutboxRelay:
    """Moves committed outbox rows to the broker. Several relays may run: rows are claimed with
    SKIP LOCKED and deleted only after the broker accepted their messages."""

    def __init__(self, pool: asyncpg.Pool, enqueue: Enqueue, *, batch_size: int = 500,
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
            messages = [m for row in rows for m in messages_for(row, self._subscriptions)]
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
