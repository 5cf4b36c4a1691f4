"""Tier policies and threshold evaluation from the points service's events."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest

from proto import tiers as t
from proto.events import Envelope, TierChanged
from services.composition.registry import SERVICES, jobs
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from services.runtime.worker import WorkerContext
from services.tiers import shared_store
from services.tiers.policy import rules
from services.tiers.policy.policy import evaluate
from tests.support.api import Points, Tenant, error_code, uid
from tests.support.bus import deliver

LADDER = {"mode": "threshold", "grace_days": 7, "tiers": [
    {"name": "fan"},
    {"name": "member", "min": {"spend_cents": 30_000}},
    {"name": "vip", "min": {"spend_cents": 100_000}, "benefits": {"earn_multiplier": 1.5}}]}


async def tier_of(client: httpx.AsyncClient, tenant: Tenant, member: str) -> dict[str, Any]:
    response = await client.get(f"/tiers/v1/members/{member}/tier",
                                headers=tenant.headers(tenant.ingest))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_threshold_ladder_up_at_once_down_after_grace(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources,
        settings: Settings) -> None:
    points = Points(client, tenant)
    put = await client.put("/tiers/v1/policy", headers=tenant.headers(tenant.admin), json=LADDER)
    assert put.status_code == 200, put.text
    member = uid("m")
    first = await points.event(member, "purchase", amount_cents=40_000)
    await deliver(resources, settings, tenant.name, twice=True)
    state = await tier_of(client, tenant, member)
    assert state["tier"] == "member" and state["metrics"]["spend_cents"] == 40_000
    assert state["next"] == {"tier": "vip", "needed": {"spend_cents": 60_000}}
    await points.event(member, "purchase", amount_cents=70_000)
    await deliver(resources, settings, tenant.name)
    assert (await tier_of(client, tenant, member))["tier"] == "vip"
    # VIP earns 1.5x: the multiplier reached the points service through TierChanged.
    boosted = await points.event(member, "purchase", amount_cents=10_000)
    assert boosted.json()["points"] == 150
    await deliver(resources, settings, tenant.name)
    # A full refund of the big purchases drops the spend below the line; the tier holds
    # through the grace period.
    second_id = first.json()["event_id"]
    assert (await points.reverse(second_id)).status_code == 201
    await deliver(resources, settings, tenant.name)
    state = await tier_of(client, tenant, member)
    assert state["tier"] == "vip" and state["grace_until"] is not None
    async with resources.pool.acquire() as conn, conn.transaction():
        await evaluate(conn, await shared_store.policy(conn, tenant.name), tenant.name, member,
                       datetime.now(UTC) + timedelta(days=8))
    state = await tier_of(client, tenant, member)
    assert state["tier"] == "member" and state["grace_until"] is None
    history = (await client.get(f"/tiers/v1/members/{member}/tier-history",
                                headers=tenant.headers(tenant.ingest))).json()["items"]
    assert [(h["from_tier"], h["to_tier"]) for h in history] == [
        ("vip", "member"), ("member", "vip"), ("fan", "member"), (None, "fan")]


async def test_a_rolling_window_drops_old_spend_without_new_events(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources,
        settings: Settings) -> None:
    points = Points(client, tenant)
    await client.put("/tiers/v1/policy", headers=tenant.headers(tenant.admin),
                     json={**LADDER, "window_days": 365, "grace_days": 0})
    member = uid("m")
    old = (datetime.now(UTC) - timedelta(days=360)).isoformat()
    await points.event(member, "purchase", amount_cents=120_000, occurred_at=old)
    await deliver(resources, settings, tenant.name)
    assert (await tier_of(client, tenant, member))["tier"] == "vip"
    from services.tiers import actors as tier_actors

    WorkerContext.configure(settings, SERVICES)
    try:
        await tier_actors.roll_windows()  # today: still inside the window, nothing changes
        assert (await tier_of(client, tenant, member))["tier"] == "vip"
        await tier_actors.roll_windows((datetime.now(UTC) + timedelta(days=10)).isoformat())
    finally:
        await WorkerContext.close()
    row = await resources.pool.fetchrow(
        "SELECT tier, metrics FROM tiers.members WHERE tenant_id = $1 AND member_id = $2",
        tenant.name, member)
    assert row["tier"] == "fan" and row["metrics"]["spend_cents"] == 0


async def test_windows_roll_by_the_tenants_local_day(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources,
        settings: Settings) -> None:
    """The test tenant lives in Asia/Shanghai: a purchase at 00:30 local time falls on that
    local day (the previous day in UTC), so a one-day window holds it all that local day and
    drops it at the next local midnight, under threshold and percentile policies alike."""
    points = Points(client, tenant)
    admin = tenant.headers(tenant.admin)
    assert (await client.put("/tiers/v1/policy", headers=admin,
                             json={**LADDER, "window_days": 1, "grace_days": 0})).status_code \
        == 200
    buyer, other = uid("m"), uid("m")
    bought = datetime.fromisoformat("2026-10-05T00:30:00+08:00")
    await points.event(buyer, "purchase", amount_cents=50_000, occurred_at=bought.isoformat())
    await points.event(other, "purchase", amount_cents=1_000,
                       occurred_at=(bought + timedelta(hours=2)).isoformat())
    await deliver(resources, settings, tenant.name)

    async def spend(at: str) -> int:
        async with resources.pool.acquire() as conn, conn.transaction():
            policy = await shared_store.policy(conn, tenant.name)
            await evaluate(conn, policy, tenant.name, buyer, datetime.fromisoformat(at))
        metrics = await resources.pool.fetchval(
            "SELECT metrics FROM tiers.members WHERE tenant_id = $1 AND member_id = $2",
            tenant.name, buyer)
        return int(metrics["spend_cents"])

    assert await spend("2026-10-05T23:59:00+08:00") == 50_000
    assert await spend("2026-10-06T00:01:00+08:00") == 0

    percentile = {"mode": "percentile", "metric": "spend_cents", "window_days": 1,
                  "tiers": [{"name": "low", "share": 0.5}, {"name": "high", "share": 0.5}]}
    assert (await client.put("/tiers/v1/policy", headers=admin, json=percentile)).status_code \
        == 200

    async def stratified(at: str) -> dict[str, int]:
        async with resources.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT * FROM tiers.stratify($1, $2)", tenant.name,
                               datetime.fromisoformat(at))
        rows = await resources.pool.fetch(
            "SELECT member_id, metrics FROM tiers.members WHERE tenant_id = $1", tenant.name)
        return {r["member_id"]: int(r["metrics"]["spend_cents"]) for r in rows}

    assert await stratified("2026-10-05T23:59:00+08:00") == {buyer: 50_000, other: 1_000}
    assert await stratified("2026-10-06T00:01:00+08:00") == {buyer: 0, other: 0}


@pytest.mark.parametrize("policy", [
    {"mode": "percentile", "metric": "spend_cents",
     "tiers": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.4}]},
    {"mode": "percentile", "metric": "height", "tiers": [{"name": "a", "share": 1.0}]},
    {"mode": "threshold", "tiers": [{"name": "fan"},
                                    {"name": "vip", "min": {"spend_cents": 100}},
                                    {"name": "member", "min": {"spend_cents": 50}}]},
    {"mode": "threshold", "tiers": [{"name": "fan"}, {"name": "fan", "min": {"spend_cents": 1}}]},
    {"mode": "threshold", "tiers": [{"name": "fan"}, {"name": "vip"}]},
    {"mode": "threshold", "tiers": [{"name": "fan"}], "surprise": True},
    {"mode": "sideways", "tiers": [{"name": "fan"}]},
])
async def test_bad_policies_are_422_and_change_nothing(
        client: httpx.AsyncClient, tenant: Tenant, policy: dict[str, Any]) -> None:
    ok = await client.put("/tiers/v1/policy", headers=tenant.headers(tenant.admin), json=LADDER)
    assert ok.status_code == 200
    response = await client.put("/tiers/v1/policy", headers=tenant.headers(tenant.admin),
                                json=policy)
    assert response.status_code == 422, response.text
    assert error_code(response) == "validation_failed"
    current = await client.get("/tiers/v1/policy", headers=tenant.headers(tenant.admin))
    assert current.json()["tiers"][2]["name"] == "vip"


async def test_members_read_only_their_own_tier(
        client: httpx.AsyncClient, tenant: Tenant) -> None:
    from tests.support.api import member_token

    token = tenant.headers(await member_token(client, tenant, "alice"))
    assert (await client.get("/tiers/v1/members/alice/tier", headers=token)).status_code == 200
    assert (await client.get("/tiers/v1/members/bob/tier", headers=token)).status_code == 403
    assert (await client.get("/tiers/v1/policy", headers=token)).status_code == 403


async def test_a_late_tier_change_does_not_undo_a_newer_multiplier(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources,
        settings: Settings) -> None:
    """TierChanged events can arrive out of order (retries, several workers): the multiplier
    of the newest change stays."""
    member = uid("m")
    earlier = datetime.now(UTC) - timedelta(minutes=5)
    changes = [TierChanged(member_id=member, tier="vip", changed_at=earlier + timedelta(minutes=1),
                           earn_multiplier=1.5),
               TierChanged(member_id=member, tier="member", changed_at=earlier,
                           earn_multiplier=1.0)]
    actor = {spec.name: spec.fn for spec in jobs(["points"])[0]}[
        "points.apply_tier_multiplier"]
    WorkerContext.configure(settings, SERVICES)
    try:
        for change in changes:  # the newer first, the older delivered late
            await actor(msgspec.json.encode(Envelope(
                event_id=str(uuid.uuid4()), tenant_id=tenant.name, service="tiers",
                type="TierChanged",
                emitted_at=change.changed_at,
                data=msgspec.Raw(msgspec.json.encode(change)))).decode())
    finally:
        await WorkerContext.close()
    earned = await Points(client, tenant).event(member, "purchase", amount_cents=10_000)
    assert earned.json()["points"] == 150


def threshold_cases(count: int) -> list[tuple[t.ThresholdPolicy, dict[str, int]]]:
    """Ladders of one to four tiers with random minimums (some on no metric, some "any") and
    metrics that may lack a key, around the minimums."""
    chance = random.Random(11)
    names = list(rules.METRICS)
    cases = []
    for _ in range(count):
        tiers = []
        for index in range(chance.randint(1, 4)):
            tier: dict[str, Any] = {"name": f"t{index}",
                                    "match": chance.choice(["any", "all"])}
            if chance.random() < 0.8:
                tier["min"] = {m: chance.randint(0, 4) * 50
                               for m in chance.sample(names, chance.randint(0, 3))}
            tiers.append(tier)
        metrics = {m: chance.randint(0, 4) * 50 - 10 * chance.randint(0, 1)
                   for m in chance.sample(names, chance.randint(0, 3))}
        cases.append((msgspec.convert({"mode": "threshold", "tiers": tiers},
                                      t.ThresholdPolicy), metrics))
    return cases


async def test_threshold_tier_is_what_the_sql_function_it_replaced_gives(
        resources: Resources) -> None:
    """``tiers.threshold_tier`` (migration 0001) decided tiers before ``rules.threshold_tier``:
    both agree on every case."""
    async with resources.pool.acquire() as conn:
        for policy, metrics in threshold_cases(300):
            in_sql = await conn.fetchval("SELECT tiers.threshold_tier($1, $2)", policy, metrics)
            assert rules.threshold_tier(policy, metrics) == in_sql, (policy, metrics)
