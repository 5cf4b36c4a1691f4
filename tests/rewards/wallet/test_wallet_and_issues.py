from __future__ import annotations

import asyncio

from services.runtime.resources import Resources
from tests.support.api import Rewards, error_code, member_token, uid


async def coupon_of(rewards: Rewards, member: str) -> dict:  # type: ignore[type-arg]
    items = (await rewards.coupons(member)).json()["items"]
    return next(c for c in items if c["state"] == "active")


async def test_transfer_then_use_by_the_receiver(rewards: Rewards) -> None:
    sender, receiver = uid("s"), uid("r")
    await rewards.points.give(sender, 100)
    sku = await rewards.perk(cost_points=10, fulfilment="code")
    await rewards.codes(sku, ["SPA-001"])
    assert (await rewards.redeem(sender, sku)).status_code == 201
    coupon = await coupon_of(rewards, sender)
    sender_token = rewards.tenant.headers(
        await member_token(rewards.client, rewards.tenant, sender))
    receiver_token = rewards.tenant.headers(
        await member_token(rewards.client, rewards.tenant, receiver))
    stolen = await rewards.client.post(f"/rewards/v1/coupons/{coupon['coupon_id']}/transfer",
                                       headers=receiver_token,
                                       json={"transfer_id": uid("t"), "to_member_id": receiver})
    assert stolen.status_code == 403
    moved = await rewards.client.post(f"/rewards/v1/coupons/{coupon['coupon_id']}/transfer",
                                      headers=sender_token,
                                      json={"transfer_id": uid("t"), "to_member_id": receiver})
    assert moved.status_code == 201, moved.text
    sender_view = (await rewards.coupons(sender)).json()["items"]
    assert [(c["state"], c["transferred_to"]) for c in sender_view] == [("transferred", receiver)]
    received = await coupon_of(rewards, receiver)
    assert received["code"] == "SPA-001" and received["coupon_id"] == moved.json()["coupon_id"]

    old_use = await rewards.client.post(f"/rewards/v1/coupons/{coupon['coupon_id']}/use",
                                        headers=rewards.ingest, json={"use_id": uid("u")})
    assert old_use.status_code == 409 and error_code(old_use) == "coupon_not_active"
    use_id = uid("u")
    used = await rewards.client.post(f"/rewards/v1/coupons/{received['coupon_id']}/use",
                                     headers=rewards.ingest, json={"use_id": use_id})
    assert used.status_code == 201
    replay = await rewards.client.post(f"/rewards/v1/coupons/{received['coupon_id']}/use",
                                       headers=rewards.ingest, json={"use_id": use_id})
    assert replay.content == used.content
    second = await rewards.client.post(f"/rewards/v1/coupons/{received['coupon_id']}/use",
                                       headers=rewards.ingest, json={"use_id": uid("u")})
    assert second.status_code == 409 and error_code(second) == "coupon_not_active"


async def test_concurrent_uses_of_one_coupon_succeed_once(rewards: Rewards) -> None:
    member = uid("m")
    sku = await rewards.perk(cost_points=1)
    issued = await rewards.client.post("/rewards/v1/issues", headers=rewards.operator, json={
        "issue_id": uid("i"), "reason": "welcome", "kind": "coupon", "sku": sku,
        "member_ids": [member]})
    assert issued.status_code == 201, issued.text
    coupon = await coupon_of(rewards, member)
    uses = await asyncio.gather(*[
        rewards.client.post(f"/rewards/v1/coupons/{coupon['coupon_id']}/use",
                            headers=rewards.ingest, json={"use_id": uid("u")})
        for _ in range(20)])
    assert sorted(u.status_code for u in uses) == [201] + [409] * 19


async def test_bulk_issues_are_all_or_nothing_and_audited(rewards: Rewards,
                                                          resources: Resources) -> None:
    members = [uid("m") for _ in range(2_000)]
    sku = await rewards.perk(cost_points=1, stock=1_000)
    too_many = await rewards.client.post("/rewards/v1/issues", headers=rewards.operator, json={
        "issue_id": uid("i"), "reason": "launch", "kind": "perk", "sku": sku,
        "member_ids": members})
    assert too_many.status_code == 409 and error_code(too_many) == "out_of_stock"
    assert await rewards.stock(sku) == 1_000
    assert (await rewards.coupons(members[0])).json()["items"] == []
    tickets = await rewards.client.post("/rewards/v1/issues", headers=rewards.operator, json={
        "issue_id": uid("i"), "reason": "guide followed", "kind": "tickets", "box_id": "box-1",
        "count": 2, "member_ids": members})
    assert tickets.status_code == 201
    assert tickets.json() | {"issue_id": None} == {"issue_id": None, "kind": "tickets",
                                                   "member_count": 2_000, "count": 2}
    held = await resources.pool.fetchval(
        "SELECT sum(count) FROM rewards.tickets WHERE tenant_id = $1 AND box_id = 'box-1'",
        rewards.tenant.name)
    assert held == 4_000
    audit = await resources.pool.fetchval(
        "SELECT count(*) FROM rewards.issue_audit WHERE tenant_id = $1", rewards.tenant.name)
    assert audit == 1
