"""What services declare to the worker: actors, periodic jobs, and idempotent consumption."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NamedTuple

import msgspec

from proto.events import Envelope
from services.runtime.db import Conn, Pool

_envelope_decoder = msgspec.json.Decoder(Envelope)
log = logging.getLogger("fuli.bus")

Handler = Callable[[Conn, Envelope], Awaitable[None]]
# Applies a batch's first deliveries, given in ``lock_order``, with the result of applying them
# one at a time in that order: set-based statements for a whole batch in place of a few
# statements per event.
BatchHandler = Callable[[Conn, list[Envelope]], Awaitable[None]]


@dataclass(frozen=True)
class ActorSpec:
    """An async function run by the worker. Actors take ids and plain values, never objects."""

    name: str
    queue: str
    fn: Callable[..., Awaitable[None]]
    max_retries: int = 20
    time_limit_ms: int = 300_000


@dataclass(frozen=True)
class PeriodicJob:
    """Enqueue ``actor`` every ``every_s`` seconds, once across all worker replicas."""

    actor: str
    queue: str
    every_s: int


def decode_envelope(body: str) -> Envelope:
    return _envelope_decoder.decode(body)


async def _first_deliveries(conn: Conn, consumer: str, envelopes: list[Envelope]) -> set[str]:
    """Record that ``consumer`` applied these events, in their order; returns the ids it had
    not applied before (the rest are redeliveries). Call inside the transaction that applies
    them, before applying any: a transaction then holds every inbox claim it needs before it
    locks any row of the events, so a redelivery of one event applied alone cannot wait on
    this transaction's rows while holding the claim this transaction waits for."""
    rows = await conn.fetch(
        "INSERT INTO fuli.inbox (tenant_id, consumer, event_id)"
        " SELECT t.tenant_id, $1, t.event_id"
        " FROM unnest($2::text[], $3::uuid[]) WITH ORDINALITY AS t(tenant_id, event_id, n)"
        " ORDER BY t.n ON CONFLICT DO NOTHING RETURNING event_id",
        consumer, [e.tenant_id for e in envelopes], [e.event_id for e in envelopes])
    return {str(row["event_id"]) for row in rows}


class _Subject(msgspec.Struct):
    member_id: str = ""


_subject_decoder = msgspec.json.Decoder(_Subject)


class _Delivery(NamedTuple):
    """An envelope with the member its event is about ("" when none), decoded once."""

    envelope: Envelope
    member_id: str


def _delivery(envelope: Envelope) -> _Delivery:
    return _Delivery(envelope, _subject_decoder.decode(envelope.data).member_id)


def lock_order(deliveries: list[_Delivery]) -> list[_Delivery]:
    """A batch in the order its transaction takes locks: by tenant and member, each member's
    events in delivery order (a stable sort)."""
    return sorted(deliveries, key=lambda d: (d.envelope.tenant_id, d.member_id))


def lock_domain(consumer: str) -> str:
    """The consumers that take turns on a member: those of one service (``tiers.…``), which
    write the same rows of the member. Consumers of different services write rows of their own
    service only, so the four or five consumers of one earning event apply it side by side."""
    return consumer.partition(".")[0]


async def _lock_members(conn: Conn, consumer: str, deliveries: list[_Delivery]) -> None:
    """Takes a transaction lock on each member of the events, in ``lock_order``, in the
    consumer's ``lock_domain``. Two transactions that touch the same member then take turns on
    the member as a whole, however their events order the member's rows (one event's day row,
    then the member row; the next event's day row): batches of one consumer, or of consumers
    of one service that lock only rows of the event's member, cannot deadlock each other."""
    keys = list(dict.fromkeys((d.envelope.tenant_id, d.member_id) for d in deliveries))
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1 || '/' || t.tenant_id), hashtext(t.member_id))"
        " FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS t(tenant_id, member_id, n)"
        " WHERE t.member_id <> '' ORDER BY t.n",
        lock_domain(consumer), [tenant for tenant, _ in keys], [member for _, member in keys])


async def _apply(conn: Conn, consumer: str, deliveries: list[_Delivery],
                 apply_batch: BatchHandler, serialized: bool) -> None:
    if serialized:
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('fuli.consume'),"
                           " hashtext($1))", consumer)
    first = await _first_deliveries(conn, consumer, [d.envelope for d in deliveries])
    deliveries = [d for d in deliveries if d.envelope.event_id in first]
    if deliveries:
        await _lock_members(conn, consumer, deliveries)
        await apply_batch(conn, [d.envelope for d in deliveries])


def one_at_a_time(handle: Handler) -> BatchHandler:
    async def apply_batch(conn: Conn, envelopes: list[Envelope]) -> None:
        for envelope in envelopes:
            await handle(conn, envelope)
    return apply_batch


async def consume(pool: Pool, consumer: str, bodies: str | list[str],
                  handle: Handler, *, serialized: bool = False) -> None:
    """``consume_batches`` with a handler of one event at a time."""
    await consume_batches(pool, consumer, bodies, one_at_a_time(handle), serialized=serialized)


async def consume_batches(pool: Pool, consumer: str, bodies: str | list[str],
                          apply_batch: BatchHandler, *, serialized: bool = False) -> None:
    """The one way to consume bus events: applies each envelope once, in the transaction that
    records it in the inbox (which drops redeliveries). ``consumer`` is the subscriber's actor
    name: the outbox keeps an event until every subscriber's inbox has it.

    A batch goes in one transaction, in ``lock_order``; if that fails, each envelope gets its
    own, so one bad event does not hold the others back, and the first failure is raised for
    the broker to retry the message (what was applied is then skipped). A consumer whose
    events lock rows shared between members (a team, a campaign) is ``serialized``: its
    transactions take turns, so they never deadlock with each other."""
    deliveries = [_delivery(decode_envelope(b))
                  for b in ([bodies] if isinstance(bodies, str) else bodies)]
    if len(deliveries) > 1:
        try:
            async with pool.acquire() as conn, conn.transaction():
                await _apply(conn, consumer, lock_order(deliveries), apply_batch, serialized)
            return
        except Exception as exc:
            log.warning("batch failed; applying its events one by one",
                        extra={"fields": {"consumer": consumer, "events": len(deliveries),
                                          "error": type(exc).__name__}})
    failure: Exception | None = None
    for delivery in deliveries:
        try:
            async with pool.acquire() as conn, conn.transaction():
                await _apply(conn, consumer, [delivery], apply_batch, serialized)
        except Exception as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
