"""Transactional outbox: events are written with the change that caused them, sent through the
broker afterwards, and kept in PostgreSQL until every consumer has applied them.

The broker is transport only. A row is sent once, then sent again, with back-off, to each
consumer that has not yet recorded it in its inbox; it is deleted when all have. So a flushed,
restarted or lost broker, a killed worker or a failed retry delays events but never loses them.
Delivery is at least once; consumers drop repeats through the inbox (``bus.consume``), whose
consumer name is the subscriber's actor name."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC
from typing import Any, NamedTuple

import asyncpg
import dramatiq
import msgspec

from proto.events import EVENT_TYPES, SUBSCRIPTIONS, Event, Subscriber, event_name
from services.runtime.db import Conn, Db, Pool

log = logging.getLogger("fuli.outbox")

_encoder = msgspec.json.Encoder()

Enqueue = Callable[[list[dramatiq.Message[Any]]], None]
Routed = tuple[asyncpg.Record, Sequence[Subscriber]]
MAX_BATCH = 200  # envelopes per message to a batch subscriber
# ... and bytes of them, at most, beside one envelope: a TierChanges of a thousand members is
# over 100 kB (and RabbitMQ refuses a message over 16 MiB by default)
MAX_BATCH_BYTES = 1 << 20
PARKED_AFTER_SENDS = 8  # about half an hour of re-sending: a consumer that keeps failing
# How long a relay leaves a row of a type it does not know to a relay that knows it, the overlap
# of two releases in a rolling upgrade; then it settles the row as consumed by no one (after a
# rollback, no relay that knows it is left), or the row would count as lag for good.
UNKNOWN_TYPE_GRACE_S = 600.0

OUTBOX_COLUMNS = "o.id, o.event_id, o.service, o.tenant_id, o.event_type, o.payload, o.created_at"
# The consumers of row ``o`` that have not applied it yet.
WAITING_CONSUMERS = "fuli.waiting_consumers(o.tenant_id, o.event_id, o.consumers)"


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


class Backlog(NamedTuple):
    pending: int  # events not yet applied by every consumer, parked ones aside
    lag_s: float  # age of the oldest of those (0 when none)
    parked: int  # events a consumer has failed to apply through PARKED_AFTER_SENDS sends:
    # still kept and still sent, but a fault to look at rather than a lag


async def outbox_backlog(conn: Db) -> Backlog:
    """What the outbox still holds for its consumers, in one pass."""
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE sends < $1) AS pending,"
        " coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE sends < $1)), 0)"
        " AS lag, count(*) FILTER (WHERE sends >= $1) AS parked FROM fuli.outbox",
        PARKED_AFTER_SENDS)
    assert row is not None
    return Backlog(int(row["pending"]), float(row["lag"]), int(row["parked"]))


class TenantBacklog(NamedTuple):
    pending: int  # the tenant's events some consumer has not applied yet, unsent ones included
    oldest_age_s: float | None  # age of the oldest of those; None when there is none
    parked: int  # of the tenant's events not applied, those sent PARKED_AFTER_SENDS times


async def tenant_backlog(db: Db, tenant_id: str) -> TenantBacklog:
    """What the outbox still holds for one tenant: rows not sent yet, and sent rows that a
    consumer they were sent to has not applied (recorded in its inbox); parked rows apart, as
    outbox_backlog counts them, since they are a fault to look at rather than a lag. Sent rows
    every consumer has applied are waiting only to be deleted, so they are not counted. Ages are
    on the database's clock, which wrote ``created_at``."""
    row = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE o.sends < $2) AS pending,"
        " extract(epoch FROM clock_timestamp() - min(o.created_at) FILTER (WHERE o.sends < $2)"
        "        )::float8 AS oldest,"
        " count(*) FILTER (WHERE o.sends >= $2) AS parked"
        " FROM fuli.outbox o WHERE o.tenant_id = $1"
        " AND (o.resend_at IS NULL"
        "      OR cardinality(fuli.waiting_consumers(o.tenant_id, o.event_id, o.consumers)) > 0)",
        tenant_id, PARKED_AFTER_SENDS)
    assert row is not None
    oldest = row["oldest"]
    return TenantBacklog(int(row["pending"]), None if oldest is None else max(oldest, 0.0),
                         int(row["parked"]))


def envelope_json(row: asyncpg.Record) -> str:
    envelope = {
        "event_id": str(row["event_id"]), "tenant_id": row["tenant_id"],
        "service": row["service"], "type": row["event_type"],
        "emitted_at": row["created_at"].astimezone(UTC),
        "data": msgspec.Raw(row["payload"]),
    }
    return _encoder.encode(envelope).decode()


def routed(rows: Iterable[asyncpg.Record], subscriptions: Mapping[str, Sequence[Subscriber]],
           tenants_of: Mapping[str, set[str]] | None = None) -> list[Routed]:
    """Each row with the subscribers of its type, less those that name their ``tenants`` and
    do not have the row's tenant among ``tenants_of[relation]``."""
    known = tenants_of or {}
    return [(row, tuple(sub for sub in subscriptions.get(row["event_type"], ())
                        if sub.tenants is None or row["tenant_id"] in known.get(sub.tenants, ())))
            for row in rows]


async def route(db: Db, rows: Sequence[asyncpg.Record],
                subscriptions: Mapping[str, Sequence[Subscriber]]) -> list[Routed]:
    """``routed``, with the tenants of the rows each subscriber that names its ``tenants`` has
    now (one read of each such relation)."""
    relations = {sub.tenants for row in rows for sub in subscriptions.get(row["event_type"], ())
                 if sub.tenants is not None}
    tenants = list({row["tenant_id"] for row in rows})
    tenants_of: dict[str, set[str]] = {}
    for relation in relations:  # names written in proto/events.py, never input
        tenants_of[relation] = {r["tenant_id"] for r in await db.fetch(
            f"SELECT tenant_id FROM {relation} WHERE tenant_id = any($1::text[])", tenants)}
    return routed(rows, subscriptions, tenants_of)


def messages_for(deliveries: Iterable[Routed], max_batch: int = MAX_BATCH,
                 max_bytes: int = MAX_BATCH_BYTES) -> list[dramatiq.Message[Any]]:
    """One message per row and subscriber, except that a batch subscriber gets its rows
    together, in the order given (outbox order), up to ``max_batch`` bodies and ``max_bytes``
    of them per message (a larger body goes alone)."""
    messages: list[dramatiq.Message[Any]] = []
    batches: dict[Subscriber, list[str]] = {}
    for row, subscribers in deliveries:
        body = envelope_json(row)
        for sub in subscribers:
            if sub.batch:
                batches.setdefault(sub, []).append(body)
            else:
                messages.append(dramatiq.Message(queue_name=sub.queue, actor_name=sub.actor,
                                                 args=(body,), kwargs={}, options={}))
    for sub, bodies in batches.items():
        for batch in _batches(bodies, max_batch, max_bytes):
            messages.append(dramatiq.Message(queue_name=sub.queue, actor_name=sub.actor,
                                             args=(batch,), kwargs={}, options={}))
    return messages


def _batches(bodies: Sequence[str], max_batch: int, max_bytes: int) -> Iterator[list[str]]:
    batch: list[str] = []
    size = 0
    for body in bodies:
        if batch and (len(batch) == max_batch or size + len(body) > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(body)
        size += len(body)
    if batch:
        yield batch


async def mark_sent(conn: Conn, deliveries: Sequence[Routed], resend_after_s: float) -> None:
    """Records whom each row was sent to, and when to send it again. A row nobody consumes
    is sent to no one and settled (deleted) as applied."""
    await conn.execute(
        "UPDATE fuli.outbox o SET consumers = string_to_array(s.consumers, ','),"
        " sends = 1, resend_at = now() + make_interval(secs => $3)"
        " FROM unnest($1::bigint[], $2::text[]) AS s(id, consumers) WHERE o.id = s.id",
        [row["id"] for row, _ in deliveries],
        [",".join(sub.actor for sub in subs) for _, subs in deliveries], resend_after_s)


class OutboxRelay:
    """Sends committed outbox rows through the broker, re-sends what a consumer has not applied
    after ``resend_after_s`` (doubling up to ``resend_max_s``), and deletes what every consumer
    has applied. Several relays may run: rows are claimed with SKIP LOCKED."""

    def __init__(self, pool: Pool, enqueue: Enqueue, *, batch_size: int = 500,
                 settle_batch: int = 5000, resend_after_s: float = 20.0,
                 resend_max_s: float = 600.0,
                 subscriptions: Mapping[str, Sequence[Subscriber]] = SUBSCRIPTIONS,
                 unknown_type_grace_s: float = UNKNOWN_TYPE_GRACE_S) -> None:
        self._pool = pool
        self._enqueue = enqueue
        self._batch_size = batch_size
        self._settle_batch = settle_batch
        self._resend_after_s = resend_after_s
        self._resend_max_s = resend_max_s
        self._subscriptions = subscriptions
        self._by_actor = {sub.actor: sub for subs in subscriptions.values() for sub in subs}
        # A row of a type this relay does not know (one a newer release writes, while this
        # release still runs beside it) is left unsent for a relay that knows it, for
        # ``unknown_type_grace_s``: routed here, it goes to no one and is deleted as applied.
        self._known_types = frozenset({*EVENT_TYPES, *subscriptions})
        self._known_type_list = sorted(self._known_types)  # the query's, built once
        self._unknown_type_grace_s = unknown_type_grace_s
        self.settled_up_to = 0
        self._checked_at = 0.0

    async def send_new(self) -> int:
        """Sends the oldest rows never sent, of the types it knows and of others older than
        the grace period; returns how many."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT {OUTBOX_COLUMNS} FROM fuli.outbox o WHERE o.resend_at IS NULL"
                " AND (o.event_type = any($2::text[])"
                "      OR o.created_at < now() - make_interval(secs => $3))"
                " ORDER BY o.id LIMIT $1 FOR UPDATE SKIP LOCKED", self._batch_size,
                self._known_type_list, self._unknown_type_grace_s)
            if not rows:
                return 0
            unknown = Counter(row["event_type"] for row in rows
                              if row["event_type"] not in self._known_types)
            if unknown:
                log.error("settling events of types no running relay knows, as consumed by"
                          " no one", extra={"fields": {"events": dict(unknown)}})
            deliveries = await route(conn, rows, self._subscriptions)
            await self._send(deliveries)
            await mark_sent(conn, deliveries, self._resend_after_s)
            return len(rows)

    async def settle(self) -> int:
        """Deletes sent rows that every consumer has applied, a chunk of the sent rows per
        call (resuming where the last call stopped, so old unapplied rows at the head never
        hold the rest back); returns how many were deleted."""
        async with self._pool.acquire() as conn, conn.transaction():
            result = await conn.fetchrow(
                "WITH chunk AS (SELECT id, tenant_id, event_id, consumers FROM fuli.outbox"
                "  WHERE resend_at IS NOT NULL AND id > $1 ORDER BY id LIMIT $2"
                "  FOR UPDATE SKIP LOCKED),"
                # WAITING_CONSUMERS as an anti-join rather than a function call per row; the
                # ids as an array, which the planner looks up by key (a join with the chunk
                # made it hash the whole outbox, backlog and all)
                " applied AS (DELETE FROM fuli.outbox o WHERE o.id = ANY (ARRAY("
                "  SELECT c.id FROM chunk c WHERE NOT EXISTS ("
                "   SELECT FROM unnest(c.consumers) AS k(consumer) WHERE NOT EXISTS ("
                "    SELECT FROM fuli.inbox i WHERE i.tenant_id = c.tenant_id"
                "     AND i.consumer = k.consumer AND i.event_id = c.event_id))))"
                "  RETURNING o.id)"
                " SELECT (SELECT max(id) FROM chunk) AS last_id,"
                " (SELECT count(*) FROM chunk) AS scanned, (SELECT count(*) FROM applied) AS n",
                self.settled_up_to, self._settle_batch)
        assert result is not None
        whole_chunk = result["scanned"] == self._settle_batch
        self.settled_up_to = result["last_id"] if whole_chunk else 0
        return int(result["n"])

    async def resend_due(self) -> int:
        """Sends rows whose resend time has come again, to the consumers that have not applied
        them (deleting those that all have); returns how many were sent again."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT {OUTBOX_COLUMNS}, o.sends, {WAITING_CONSUMERS} AS waiting"
                " FROM fuli.outbox o WHERE o.resend_at <= now() ORDER BY o.resend_at LIMIT $1"
                " FOR UPDATE SKIP LOCKED", self._batch_size)
            if not rows:
                return 0
            deliveries: list[Routed] = []
            for row in sorted(rows, key=lambda r: r["id"]):
                # A consumer this relay does not know (one added by a newer release) is not
                # sent to, and its row is kept for a relay that knows it.
                waiting_subs = [self._by_actor[c] for c in row["waiting"] if c in self._by_actor]
                if waiting_subs:
                    deliveries.append((row, waiting_subs))
            await self._send(deliveries)
            await conn.execute(
                "DELETE FROM fuli.outbox WHERE id = any($1::bigint[])",
                [row["id"] for row in rows if not row["waiting"]])
            await conn.execute(
                "UPDATE fuli.outbox SET sends = sends + 1, resend_at = now()"
                " + make_interval(secs => least($2 * 2 ^ sends, $3)) WHERE id = any($1::bigint[])",
                [row["id"] for row in rows if row["waiting"]], self._resend_after_s,
                self._resend_max_s)
        if deliveries:
            waiting: dict[str, int] = {}
            for _, subs in deliveries:
                for sub in subs:
                    waiting[sub.actor] = waiting.get(sub.actor, 0) + 1
            parked = sum(1 for row, _ in deliveries if row["sends"] + 1 >= PARKED_AFTER_SENDS)
            (log.error if parked else log.warning)(
                "sending again events not applied in time",
                extra={"fields": {"events": len(deliveries), "consumers": waiting,
                                  "parked": parked}})
        return len(deliveries)

    async def _send(self, deliveries: Sequence[Routed]) -> None:
        messages = messages_for(deliveries)
        if messages:
            await asyncio.to_thread(self._enqueue, messages)

    async def cycle(self, check_every_s: float = 1.0) -> int:
        """Sends new rows and, at most every ``check_every_s``, re-sends and settles; returns
        how many new rows were sent."""
        sent = await self.send_new()
        now = time.monotonic()
        if now - self._checked_at >= check_every_s:
            self._checked_at = now
            await self.resend_due()
            await self.settle()
        return sent

    async def run(self, stop: asyncio.Event, poll_s: float) -> None:
        while not stop.is_set():
            try:
                sent = await self.cycle()
            except Exception:
                log.exception("outbox relay failed; retrying")
                sent = 0
            if sent < self._batch_size:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=poll_s)
                except TimeoutError:
                    pass
