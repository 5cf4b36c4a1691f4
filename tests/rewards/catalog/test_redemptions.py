from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime

import msgspec

from proto.events import EVENT_TYPES, Envelope, TierChanged
from services.rewards.catalog import actors
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from tests.support.api import Rewards, error_code, member_token, uid
from tests.support.bus import worker_context


async def test_redeem_a_code_perk_into_the_wallet(rewards: Rewards) -> None:
    member = uid("m")
    await rewards.points.give(member, 100)
    sku = await rewards.perk(cost_points=30, stock=5, fulfilment="code")
    added = await rewards.codes(sku, ["CODE-1", "CODE-2", "CODE-1"])
    assert added.json() | {"sku": None} == {"sku": None, "added": 2, "duplicates": 1,
                                            "available": 2}
    response = await rewards.redeem(member, sku)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "completed" and body["points"] == 30 and body["codes"] == ["CODE-1"]
    wallet = (await rewards.coupons(member)).json()["items"]
    assert [(c["code"], c["state"]) for c in wallet] == [("CODE-1", "active")]
    assert (await rewards.points.member(member))["available"] == 70
    assert await rewards.stock(sku) == 4
    again = await rewards.client.post("/rewards/v1/redemptions", headers=rewards.ingest, json={
        "redemption_id": body["redemption_id"], "member_id": member, "sku": sku, "quantity": 1})
    assert again.status_code == 201 and again.content == response.content
    await rewards.points.assert_ledger_ok()


async def test_300_members_race_for_100_in_stock(rewards: Rewards) -> None:
    sku = await rewards.perk(cost_points=5, stock=100)
    members = [uid("m") for _ in range(300)]
    await rewards.points.grant([{"member_id": m, "points": 5} for m in members])
    responses = await asyncio.gather(*[rewards.redeem(m, sku) for m in members])
    assert Counter(r.status_code for r in responses) == {201: 100, 409: 200}
    assert {error_code(r) for r in responses if r.status_code == 409} == {"out_of_stock"}
    winners = {r.json()["member_id"] for r in responses if r.status_code == 201}
    states = await asyncio.gather(*[rewards.points.member(m) for m in members])
    for member, state in zip(members, states, strict=True):
        expected = 0 if member in winners else 5
        assert (state["available"], state["held"]) == (expected, 0), member
    assert await rewards.stock(sku) == 0
    await rewards.points.assert_ledger_ok()


async def test_one_member_50_concurrent_redemptions_with_a_limit_of_2(rewards: Rewards) -> None:
    member = uid("m")
    await rewards.points.give(member, 10_000)
    sku = await rewards.perk(cost_points=10, per_member_limit=2)
    responses = await asyncio.gather(*[rewards.redeem(member, sku) for _ in range(50)])
    assert Counter(r.status_code for r in responses) == {201: 2, 409: 48}
    assert {error_code(r) for r in responses if r.status_code == 409} <= {"limit_reached"}
    info = await rewards.points.member(member)
    assert info["available"] == 9_980 and info["held"] == 0
    await rewards.points.assert_ledger_ok()


async def test_refusals_charge_nothing(rewards: Rewards) -> None:
    member = uid("m")
    await rewards.points.give(member, 15)
    pricey = await rewards.perk(cost_points=20)
    poor = await rewards.redeem(member, pricey)
    assert poor.status_code == 409 and error_code(poor) == "insufficient_points"
    assert poor.json()["error"]["details"] == {"available": 15, "requested": 20}
    vip_only = await rewards.perk(cost_points=1, tiers=["vip"])
    assert error_code(await rewards.redeem(member, vip_only)) == "not_eligible"
    later = await rewards.perk(cost_points=1, starts_at="2099-01-01T00:00:00Z")
    assert error_code(await rewards.redeem(member, later)) == "not_available"
    sold_out = await rewards.perk(cost_points=1, stock=0)
    assert error_code(await rewards.redeem(member, sold_out)) == "out_of_stock"
    no_codes = await rewards.perk(cost_points=1, fulfilment="code")
    assert error_code(await rewards.redeem(member, no_codes)) == "out_of_stock"
    unknown = await rewards.redeem(member, uid("no-such-sku"))
    assert unknown.status_code == 404 and error_code(unknown) == "unknown_sku"
    info = await rewards.points.member(member)
    assert (info["available"], info["held"], info["spent"]) == (15, 0, 0)
    await rewards.points.assert_ledger_ok()


async def test_cancel_refunds_once_even_when_called_twice_at_once(rewards: Rewards) -> None:
    member = uid("m")
    await rewards.points.give(member, 50)
    sku = await rewards.perk(cost_points=20, stock=3)
    redemption = await rewards.redeem(member, sku)
    assert redemption.json()["status"] == "pending_fulfilment"
    rid = redemption.json()["redemption_id"]
    first, second = await asyncio.gather(rewards.cancel(rid), rewards.cancel(rid))
    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    assert first.json()["status"] == second.json()["status"] == "cancelled"
    info = await rewards.points.member(member)
    assert (info["available"], info["spent"]) == (50, 0)
    assert await rewards.stock(sku) == 3
    assert (await rewards.cancel(rid)).json()["status"] == "cancelled"
    assert (await rewards.points.member(member))["available"] == 50
    await rewards.points.assert_ledger_ok()


async def test_member_tokens_act_only_for_their_member(rewards: Rewards) -> None:
    alice, bob = uid("alice"), uid("bob")
    await rewards.points.give(alice, 100)
    await rewards.points.give(bob, 100)
    sku = await rewards.perk(cost_points=10)
    token = rewards.tenant.headers(await member_token(rewards.client, rewards.tenant, alice))
    assert (await rewards.redeem(alice, sku, headers=token)).status_code == 201
    assert (await rewards.redeem(bob, sku, headers=token)).status_code == 403
    assert (await rewards.coupons(alice, headers=token)).status_code == 200
    assert (await rewards.coupons(bob, headers=token)).status_code == 403
    listing = await rewards.client.get(f"/rewards/v1/members/{bob}/redemptions", headers=token)
    assert listing.status_code == 403
    perks = await rewards.client.get("/rewards/v1/perks", headers=token)
    mine = next(p for p in perks.json()["items"] if p["sku"] == sku)
    assert mine["eligibility"]["eligible"] is True
    assert (await rewards.points.member(bob))["available"] == 100


async def test_tiers_listing_fulfilment_and_events(rewards: Rewards, resources: Resources,
                                                   settings: Settings) -> None:
    member = uid("m")
    await rewards.points.give(member, 100)
    vip = await rewards.perk(cost_points=10, tiers=["vip"])
    assert error_code(await rewards.redeem(member, vip)) == "not_eligible"
    # The tiers service announces the member's new tier; rewards applies it once.
    changed = TierChanged(member_id=member, tier="vip", changed_at=datetime.now(UTC))
    envelope = msgspec.json.encode(Envelope(
        event_id=str(uuid.uuid4()),
        tenant_id=rewards.tenant.name, service="tiers", type="TierChanged",
        emitted_at=changed.changed_at, data=msgspec.Raw(msgspec.json.encode(changed)))).decode()
    async with worker_context(settings):
        await actors.apply_tier_changed(envelope)
        await actors.apply_tier_changed(envelope)
    perks = await rewards.client.get("/rewards/v1/perks", headers=rewards.ingest,
                                     params={"member_id": member})
    listed = next(p for p in perks.json()["items"] if p["sku"] == vip)
    assert listed["eligibility"] == {"eligible": True, "reason": None,
                                     "remaining_allowance": None}
    ids = []
    for _ in range(3):
        response = await rewards.redeem(member, vip)
        assert response.status_code == 201, response.text
        ids.append(response.json()["redemption_id"])
    page = await rewards.client.get(f"/rewards/v1/members/{member}/redemptions",
                                    headers=rewards.ingest, params={"limit": 2})
    assert [i["redemption_id"] for i in page.json()["items"]] == ids[::-1][:2]
    rest = await rewards.client.get(f"/rewards/v1/members/{member}/redemptions",
                                    headers=rewards.ingest,
                                    params={"limit": 2, "cursor": page.json()["next_cursor"]})
    assert [i["redemption_id"] for i in rest.json()["items"]] == [ids[0]]
    assert rest.json()["next_cursor"] is None
    fulfilled = await rewards.client.post(f"/rewards/v1/redemptions/{ids[0]}/fulfil",
                                          headers=rewards.operator)
    assert fulfilled.status_code == 200 and fulfilled.json()["status"] == "completed"
    rows = await resources.pool.fetch(
        "SELECT event_type, payload FROM fuli.outbox WHERE tenant_id = $1 AND service = 'rewards'",
        rewards.tenant.name)
    assert [r["event_type"] for r in rows] == ["RedemptionCompleted"] * 3
    for row in rows:
        msgspec.json.decode(row["payload"], type=EVENT_TYPES[row["event_type"]])
