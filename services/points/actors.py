"""Background work of the points service: the expiry sweep, hold time-outs, and the bus events it
consumes (red-packet activity that earns points, tier multipliers)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import msgspec

from proto.events import Envelope, PacketGrabbed, PacketMade, tier_changes
from proto.points import EventIn
from services.points import ledger, store
from services.runtime.bus import ActorSpec, PeriodicJob, consume
from services.runtime.db import Conn, Db
from services.runtime.worker import WorkerContext

log = logging.getLogger("fuli.points.actors")

QUEUE = "points"
SWEEP_BATCH = 200
EARN_FOR_RED_PACKETS = "points.earn_for_red_packets"
APPLY_TIER_MULTIPLIER = "points.apply_tier_multiplier"


async def _in_batches(step: Callable[[Db, datetime, int], Awaitable[int]], what: str) -> None:
    """Run a sweep step until it handles less than a full batch."""
    resources = await WorkerContext.resources()
    total = 0
    while True:
        done = await step(resources.pool, datetime.now(UTC), SWEEP_BATCH)
        total += done
        if done < SWEEP_BATCH:
            break
    if total:
        log.info("%s swept", what, extra={"fields": {"count": total}})


async def sweep_expired_lots() -> None:
    """Move the remainders of expired lots to the expiry account."""
    await _in_batches(store.call_sweep_expired_lots, "members with expired lots")


async def expire_holds() -> None:
    """Void pending holds whose time ran out."""
    await _in_batches(store.call_expire_holds, "expired holds")


# Red-packet activity earns points through ordinary earning rules, if the tenant has a rule for
# these actions (there is no built-in one).
PACKET_ACTIONS = {"PacketMade": "make_packet", "PacketGrabbed": "share_packet"}
_packet_event = msgspec.json.Decoder(PacketMade | PacketGrabbed)


async def earn_for_red_packets(bodies: str | list[str]) -> None:
    """PacketMade earns the maker `make_packet`; each PacketGrabbed earns the maker
    `share_packet`."""
    resources = await WorkerContext.resources()
    await consume(resources.pool, EARN_FOR_RED_PACKETS, bodies, _earn_for_packet)


async def _earn_for_packet(conn: Conn, envelope: Envelope) -> None:
    event = _packet_event.decode(envelope.data)
    maker = event.member_id if isinstance(event, PacketMade) else event.maker_member_id
    attributes: dict[str, str | int | float | bool] = {"packet_id": event.packet_id}
    if event.group_id:
        attributes["group_id"] = event.group_id
    # The envelope's id names the earning event, so earning is idempotent beyond the inbox too.
    earning = EventIn(event_id=f"rp:{envelope.event_id}", member_id=maker,
                      action=PACKET_ACTIONS[envelope.type], attributes=attributes)
    await ledger.earn_from_bus(conn, envelope.tenant_id, earning, datetime.now(UTC))


async def apply_tier_multiplier(bodies: str | list[str]) -> None:
    """A tier's earn multiplier, announced by the tiers service (``TierChanged``, or
    ``TierChanges`` for many members), applies to later earning."""
    resources = await WorkerContext.resources()
    await consume(resources.pool, APPLY_TIER_MULTIPLIER, bodies, _set_multiplier)


async def _set_multiplier(conn: Conn, envelope: Envelope) -> None:
    changed = tier_changes(envelope.data)
    if changed.earn_multiplier is not None:
        await store.upsert_multipliers(conn, envelope.tenant_id, changed.member_ids,
                                       changed.earn_multiplier, changed.changed_at)


ACTORS: list[ActorSpec] = [
    ActorSpec("points.sweep_expired_lots", QUEUE, sweep_expired_lots, max_retries=3),
    ActorSpec("points.expire_holds", QUEUE, expire_holds, max_retries=3),
    ActorSpec(EARN_FOR_RED_PACKETS, QUEUE, earn_for_red_packets),
    ActorSpec(APPLY_TIER_MULTIPLIER, QUEUE, apply_tier_multiplier),
]
PERIODIC: list[PeriodicJob] = [
    PeriodicJob("points.sweep_expired_lots", QUEUE, every_s=60),
    PeriodicJob("points.expire_holds", QUEUE, every_s=5),
]
