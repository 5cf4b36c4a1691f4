"""The bus events points consumes, through the inbox: each envelope applies once, alone or in a
batch, and a redelivery changes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec

from proto.events import Envelope, Event, PacketGrabbed, PacketMade, TierChanged, TierChanges
from services.points import actors
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from tests.support.api import Points, uid
from tests.support.bus import worker_context


def envelope(tenant_id: str, event: Event, service: str = "rewards") -> str:
    return msgspec.json.encode(Envelope(
        event_id=str(uuid.uuid4()), tenant_id=tenant_id, service=service,
        type=type(event).__name__, emitted_at=datetime.now(UTC),
        data=msgspec.Raw(msgspec.json.encode(event)))).decode()


async def inbox_count(resources: Resources, tenant_id: str, consumer: str) -> int:
    return int(await resources.pool.fetchval(
        "SELECT count(*) FROM fuli.inbox WHERE tenant_id = $1 AND consumer = $2",
        tenant_id, consumer))


async def test_tier_multipliers_apply_once_and_the_newest_wins(
        points: Points, resources: Resources, settings: Settings) -> None:
    tenant, member = points.tenant.name, uid("m")
    earlier = datetime.now(UTC) - timedelta(minutes=5)
    newer = envelope(tenant, TierChanged(member_id=member, tier="vip", earn_multiplier=3.0,
                                         changed_at=earlier + timedelta(minutes=1)), "tiers")
    older = envelope(tenant, TierChanged(member_id=member, tier="member", earn_multiplier=1.0,
                                         changed_at=earlier), "tiers")
    no_multiplier = envelope(tenant, TierChanged(member_id=uid("m"), tier="member",
                                                 changed_at=earlier), "tiers")
    async with worker_context(settings):
        await actors.apply_tier_multiplier([newer, older, no_multiplier])  # one batch
        await actors.apply_tier_multiplier(newer)  # redelivered alone
    assert await inbox_count(resources, tenant, actors.APPLY_TIER_MULTIPLIER) == 3
    assert (await points.member(member))["earn_multiplier"] == 3.0
    assert (await points.event(member, "speak")).json()["points"] == 3


async def test_tier_changes_set_each_member_s_multiplier_unless_a_newer_one_is_set(
        points: Points, resources: Resources, settings: Settings) -> None:
    tenant, ahead, behind = points.tenant.name, uid("m"), uid("m")
    earlier = datetime.now(UTC) - timedelta(minutes=5)
    newer = envelope(tenant, TierChanged(member_id=ahead, tier="vip", earn_multiplier=3.0,
                                         changed_at=earlier + timedelta(minutes=1)), "tiers")
    moved = envelope(tenant, TierChanges(member_ids=[behind, ahead], tier="member",
                                         earn_multiplier=2.0, changed_at=earlier), "tiers")
    async with worker_context(settings):
        await actors.apply_tier_multiplier(newer)
        await actors.apply_tier_multiplier([moved, moved])  # one batch, the event twice
    assert await inbox_count(resources, tenant, actors.APPLY_TIER_MULTIPLIER) == 2
    assert (await points.member(ahead))["earn_multiplier"] == 3.0
    assert (await points.member(behind))["earn_multiplier"] == 2.0


async def test_red_packets_earn_the_maker_once_per_envelope(
        points: Points, resources: Resources, settings: Settings) -> None:
    await points.put_rule("make_packet", points=4)
    await points.put_rule("share_packet", points=1)
    tenant, maker = points.tenant.name, uid("maker")
    now = datetime.now(UTC)
    made = envelope(tenant, PacketMade(member_id=maker, packet_id="pk-1", total_points=10,
                                       shares=2, group_id="g-1", made_at=now))
    grabs = [envelope(tenant, PacketGrabbed(member_id=uid("g"), maker_member_id=maker,
                                            packet_id="pk-1", points=5, grabbed_at=now))
             for _ in range(2)]
    async with worker_context(settings):
        await actors.earn_for_red_packets([made, *grabs])
        await actors.earn_for_red_packets([made, grabs[0]])  # redelivered
    assert await inbox_count(resources, tenant, actors.EARN_FOR_RED_PACKETS) == 3
    info = await points.member(maker)
    assert info["available"] == 4 + 1 + 1
    entries = (await points.entries(maker))["items"]
    assert sorted(e["ref"] for e in entries) == sorted(
        f"rp:{msgspec.json.decode(body, type=Envelope).event_id}" for body in [made, *grabs])
    attributes = await resources.pool.fetchval(
        "SELECT attributes FROM points.events WHERE tenant_id = $1 AND action = 'make_packet'",
        tenant)
    assert attributes == {"packet_id": "pk-1", "group_id": "g-1"}
    await points.assert_ledger_ok()


async def test_red_packets_without_a_rule_earn_nothing_and_do_not_fail(
        points: Points, resources: Resources, settings: Settings) -> None:
    tenant, maker = points.tenant.name, uid("maker")
    made = envelope(tenant, PacketMade(member_id=maker, packet_id="pk-2", total_points=10,
                                       shares=2, made_at=datetime.now(UTC)))
    async with worker_context(settings):
        await actors.earn_for_red_packets(made)
    assert await inbox_count(resources, tenant, actors.EARN_FOR_RED_PACKETS) == 1
    assert (await points.member(maker))["available"] == 0
