"""What services declare to the worker: actors, periodic jobs, and idempotent consumption."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec

from proto.events import Envelope
from services.runtime.db import Conn, Pool

_envelope_decoder = msgspec.json.Decoder(Envelope)
log = logging.getLogger("fuli.bus")

Handler = Callable[[Conn, Envelope], Awaitable[None]]


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


async def _first_delivery(conn: Conn, consumer: str, envelope: Envelope) -> bool:
    """Record that ``consumer`` applied this event; False if it already had (a redelivery).
    Call inside the transaction that applies the event."""
    inserted = await conn.fetchval(
        "INSERT INTO fuli.inbox (tenant_id, consumer, event_id) VALUES ($1, $2, $3::uuid)"
        " ON CONFLICT DO NOTHING RETURNING true",
        envelope.tenant_id, consumer, envelope.event_id,
    )
    return bool(inserted)


async def consume(pool: Pool, consumer: str, bodies: str | list[str],
                  handle: Handler) -> None:
    """The one way to consume bus events: applies each envelope once, in the transaction that
    records it in the inbox (which drops redeliveries). A batch goes in one
    transaction; if that fails, each envelope gets its own, so one bad event does not hold the
    others back, and the first failure is raised for the broker to retry the message (what was
    applied is then skipped)."""
    envelopes = [decode_envelope(b) for b in ([bodies] if isinstance(bodies, str) else bodies)]
    if len(envelopes) > 1:
        try:
            async with pool.acquire() as conn, conn.transaction():
                for envelope in envelopes:
                    if await _first_delivery(conn, consumer, envelope):
                        await handle(conn, envelope)
            return
        except Exception:
            log.warning("batch failed; applying its events one by one",
                        extra={"fields": {"consumer": consumer, "events": len(envelopes)}})
    failure: Exception | None = None
    for envelope in envelopes:
        try:
            async with pool.acquire() as conn, conn.transaction():
                if await _first_delivery(conn, consumer, envelope):
                    await handle(conn, envelope)
        except Exception as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
