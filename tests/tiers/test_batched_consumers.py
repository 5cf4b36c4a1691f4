"""The tiers consumers apply a batch of events with set-based statements; what they leave must be
what they leave applying the same events one at a time. Two tenants with the same threshold
ladder get the same events; one tenant's outbox is delivered in batches, the other's one event per
message, and every row the consumers wrote is compared."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.runtime.resources import Resources
from services.runtime.settings import Settings
from tests.support.api import Points, Tenant, make_tenant
from tests.support.bus import deliver

LADDER = {"mode": "threshold", "grace_days": 7, "tiers": [
    {"name": "fan"},
    {"name": "member", "min": {"spend_cents": 30_000}},
    {"name": "vip", "min": {"spend_cents": 100_000}, "benefits": {"earn_multiplier": 1.5}}]}

# Each table the two consumers write, without the tenant column and with what differs between
# two runs (times of evaluation) left out; rows in a fixed order.
TABLES = {
    "member_days": "SELECT member_id, day, spend_cents, points_earned FROM tiers.member_days"
                   " WHERE tenant_id = $1 ORDER BY member_id, day",
    "members": "SELECT member_id, tier, points_available, below_since IS NULL AS no_grace"
               " FROM tiers.members WHERE tenant_id = $1 ORDER BY member_id",
    "history": "SELECT member_id, from_tier, to_tier, metrics FROM tiers.history"
               " WHERE tenant_id = $1 ORDER BY member_id, change_id",
    "action_days": "SELECT member_id, day, action, group_id, actions FROM tiers.action_days"
                   " WHERE tenant_id = $1 ORDER BY member_id, day, action, group_id",
    "purchases": "SELECT event_id, member_id, action, group_id, day, amount_cents,"
                 " refunded_cents FROM tiers.purchases WHERE tenant_id = $1 ORDER BY event_id",
    "sources": "SELECT member_id, channel, event_id FROM tiers.member_sources"
               " WHERE tenant_id = $1 ORDER BY member_id",
}


async def post_the_same(client: httpx.AsyncClient, tenants: list[Tenant], seed: int,
                        ) -> None:
    """One random run of purchases, actions and reversals, posted to each tenant alike. Some
    members buy three times, crossing two tiers in what one delivery applies."""
    draw = random.Random(seed)
    # One moment for both tenants, so that their events fall on the same local days.
    occurred_at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    points = [Points(client, tenant) for tenant in tenants]
    purchases: list[str] = []
    for n in range(60):
        member = f"m{draw.randrange(8)}"
        event_id = f"e{seed}-{n}"
        attributes = {}
        if draw.random() < 0.4:
            attributes["group_id"] = f"g{draw.randrange(3)}"
        if draw.random() < 0.3:
            attributes["channel"] = draw.choice(["wx", "app", "Douyin"])
        if draw.random() < 0.6:
            fields = {"amount_cents": draw.choice([9_000, 35_000, 70_000])}
            purchases.append(event_id)
            action = "purchase"
        else:
            fields = {}
            action = "speak"
        for client_points in points:
            response = await client_points.event(member, action, event_id=event_id,
                                                 occurred_at=occurred_at,
                                                 attributes=attributes, **fields)
            assert response.status_code == 201, response.text
        if purchases and draw.random() < 0.15:
            reversed_id = purchases.pop(draw.randrange(len(purchases)))
            for client_points in points:
                answer = await client_points.reverse(reversed_id, reversal_id=f"r-{reversed_id}")
                assert answer.status_code == 201, answer.text


async def everything(resources: Resources, tenant: str) -> dict[str, list[tuple[object, ...]]]:
    return {name: [tuple(row) for row in await resources.pool.fetch(query, tenant)]
            for name, query in TABLES.items()}


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_batch_leaves_what_one_event_at_a_time_leaves(
        client: httpx.AsyncClient, resources: Resources, settings: Settings,
        seed: int) -> None:
    batched, one_by_one = [await make_tenant(resources.pool) for _ in range(2)]
    for tenant in (batched, one_by_one):
        put = await client.put("/tiers/v1/policy", headers=tenant.headers(tenant.admin),
                               json=LADDER)
        assert put.status_code == 200, put.text
    await post_the_same(client, [batched, one_by_one], seed)
    await deliver(resources, settings, batched.name)
    await deliver(resources, settings, one_by_one.name, max_batch=1)
    left = await everything(resources, batched.name)
    assert left == await everything(resources, one_by_one.name)
    # The run is one that tells the two ways apart: members crossed two tiers in one batch,
    # which evaluating each member once per batch would record as a single move.
    moves = [(f, t) for _, f, t, _ in left["history"]]
    assert ("fan", "member") in moves and ("member", "vip") in moves
    assert left["action_days"] and left["purchases"] and left["sources"]
