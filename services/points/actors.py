"""Background work of the points service: the expiry sweep and hold time-outs."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import msgspec

from proto.events import TierChanged
from proto.points import EventIn
from services.points import store
from services.points.ledger import EVENTS_SCOPE
from services.runtime.bus import ActorSpec, PeriodicJob, decode_envelope
from services.runtime.idempotency import fingerprint
from services.runtime.worker import WorkerContext

log = logging.getLogger("fuli.points.actors")

QUEUE = "points"
SWEEP_BATCH = 200


async def _in_batches(step: Callable[[asyncpg.Connection, datetime, int], Awaitable[int]],
                      what: str) -> None:
    """Run a sweep step until it handles less than a full batch."""
    resources = await WorkerContext.resources()
    total = 0
    while True:
        async with resources.pool.acquire() as conn:
            done = await step(conn, datetime.now(UTC), SWEEP_BATCH)
        total += done
        if done < SWEEP_BATCH:
            break
    if total:
        log.info("%s swept", what, extra={"fields": {"count": total}})


async def sweep_expired_lots() -> None:
    """Move the remainders of expired lots to the expiry account."""
    await _in_batches(store.sweep_expired_lots, "members with expired lots")


async def expire_holds() -> None:
    """Void pending holds whose time ran out."""
    await _in_batches(store.expire_holds, "expired holds")


# Red-packet activity earns points through ordinary earning rules, if the tenant has a rule for
# these actions (there is no built-in one).
PACKET_ACTIONS = {"PacketMade": "make_packet", "PacketGrabbed": "share_packet"}


async def earn_for_red_packets(body: str) -> None:
    """PacketMade earns the maker `make_packet`; each PacketGrabbed earns the maker
    `share_packet`. The envelope's id makes the earning event idempotent."""
    envelope = decode_envelope(body)
    event = msgspec.json.decode(envelope.data)
    maker = event.get("maker_member_id") or event["member_id"]
    attributes = {"packet_id": event["packet_id"]}
    if event.get("group_id"):
        attributes["group_id"] = event["group_id"]
    earning = EventIn(event_id=f"rp:{envelope.event_id}", member_id=maker,
                      action=PACKET_ACTIONS[envelope.type], attributes=attributes)
    resources = await WorkerContext.resources()
    now = datetime.now(UTC)
    async with resources.pool.acquire() as conn:
        await store.record_event(conn, envelope.tenant_id, earning,
                                 fingerprint(EVENTS_SCOPE, earning.event_id, earning), now, now)


async def apply_tier_multiplier(body: str) -> None:
    """A tier's earn multiplier, announced by the tiers service, applies to later earning."""
    envelope = decode_envelope(body)
    changed = msgspec.json.decode(envelope.data, type=TierChanged)
    if changed.earn_multiplier is None:
        return
    resources = await WorkerContext.resources()
    async with resources.pool.acquire() as conn:
        await store.set_multiplier(conn, envelope.tenant_id, changed.member_id,
                                   changed.earn_multiplier, changed.changed_at)


ACTORS: list[ActorSpec] = [
    ActorSpec("points.sweep_expired_lots", QUEUE, sweep_expired_lots, max_retries=3),
    ActorSpec("points.expire_holds", QUEUE, expire_holds, max_retries=3),
    ActorSpec("points.earn_for_red_packets", QUEUE, earn_for_red_packets),
    ActorSpec("points.apply_tier_multiplier", QUEUE, apply_tier_multiplier),
]
PERIODIC: list[PeriodicJob] = [
    PeriodicJob("points.sweep_expired_lots", QUEUE, every_s=60),
    PeriodicJob("points.expire_holds", QUEUE, every_s=5),
]
