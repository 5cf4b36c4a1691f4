"""What services declare to the worker: actors, periodic jobs, and idempotent consumption."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import msgspec

from proto.events import Envelope

_envelope_decoder = msgspec.json.Decoder(Envelope)


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


async def first_delivery(conn: asyncpg.Connection, consumer: str, envelope: Envelope) -> bool:
    """Record that ``consumer`` applied this event; False if it already had (a redelivery).
    Call inside the transaction that applies the event."""
    inserted = await conn.fetchval(
        "INSERT INTO fuli.inbox (tenant_id, consumer, event_id) VALUES ($1, $2, $3::uuid)"
        " ON CONFLICT DO NOTHING RETURNING true",
        envelope.tenant_id, consumer, envelope.event_id,
    )
    return bool(inserted)
