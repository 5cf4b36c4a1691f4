"""Issues to a tiers segment: exactly the segment's frozen members, one coupon each, all or
nothing, once per issue id, audited with the segment's count and computation time; tiers
unreachable is a 503 that issues nothing."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from services.runtime.resources import Resources
from services.runtime.settings import Settings
from tests.support.api import Rewards, Tenant, error_code, uid
from tests.support.segments import (
    EXAMPLE,
    Seeded,
    example_members,
    put_segment,
    tenant_members,
    tiers_down_client,
)


async def coupons_by_member(rewards: Rewards, members: list[str], sku: str) -> Counter[str]:
    held: Counter[str] = Counter()
    for member in members:
        for coupon in (await rewards.coupons(member)).json()["items"]:
            if coupon["sku"] == sku:
                held[member] += 1
    return held


async def audit_rows(resources: Resources, tenant: Tenant) -> list[dict[str, Any]]:
    rows = await resources.pool.fetch(
        "SELECT issue_id, member_count, segment_id, segment_count, segment_computed_at"
        " FROM rewards.issue_audit WHERE tenant_id = $1 ORDER BY issue_id", tenant.name)
    return [dict(row) for row in rows]


async def test_a_coupon_issue_to_a_segment_gives_exactly_its_members_one_coupon_each(
        rewards: Rewards, tenant: Tenant, seeded: Seeded, resources: Resources) -> None:
    client = rewards.client
    expected = example_members(seeded)
    segment_id = uid("seg")
    segment = (await put_segment(client, tenant, segment_id, EXAMPLE)).json()
    sku = await rewards.perk(cost_points=1, stock=100)
    body = {"issue_id": uid("i"), "reason": "loyalty thanks", "kind": "coupon", "sku": sku,
            "segment_id": segment_id}
    issued = await client.post("/rewards/v1/issues", headers=rewards.operator, json=body)
    assert issued.status_code == 201, issued.text
    assert issued.json() == {"issue_id": body["issue_id"], "kind": "coupon",
                             "member_count": len(expected), "count": 1}
    held = await coupons_by_member(rewards, seeded.members, sku)
    assert held == Counter({member: 1 for member in expected})
    assert await rewards.stock(sku) == 100 - len(expected)
    [audit] = await audit_rows(resources, tenant)
    assert audit["segment_id"] == segment_id and audit["segment_count"] == len(expected)
    assert audit["segment_computed_at"] == datetime.fromisoformat(segment["computed_at"])

    # The segment changes (one member turns dormant, and it is refreshed): repeating the
    # issue id issues nothing and answers as the first time.
    await resources.pool.execute(
        "INSERT INTO tiers.member_tags (tenant_id, member_id, tag, source, since)"
        " VALUES ($1, $2, 'dormant', 'rule', now())", tenant.name, sorted(expected)[0])
    refreshed = await client.post(f"/tiers/v1/segments/{segment_id}/refresh",
                                  headers=rewards.operator)
    assert refreshed.json()["count"] == len(expected) - 1
    again = await client.post("/rewards/v1/issues", headers=rewards.operator, json=body)
    assert again.status_code == 201 and again.content == issued.content
    assert again.headers.get("idempotent-replayed") == "true"
    assert await coupons_by_member(rewards, seeded.members, sku) == held
    assert len(await audit_rows(resources, tenant)) == 1
    # The same id for another request is a conflict.
    other = await client.post("/rewards/v1/issues", headers=rewards.operator,
                              json={**body, "reason": "something else"})
    assert other.status_code == 409 and error_code(other) == "idempotency_conflict"


async def test_tickets_to_a_segment_and_a_list_issue_still_work(
        rewards: Rewards, tenant: Tenant, seeded: Seeded, resources: Resources) -> None:
    segment_id = uid("seg")
    assert (await put_segment(rewards.client, tenant, segment_id,
                              {"stages": ["aware"]})).status_code == 200
    aware = {m for m in seeded.members if seeded.stage_of(m) == "aware"}
    tickets = await rewards.client.post("/rewards/v1/issues", headers=rewards.operator, json={
        "issue_id": uid("i"), "reason": "welcome", "kind": "tickets", "box_id": "box-1",
        "count": 2, "segment_id": segment_id})
    assert tickets.status_code == 201, tickets.text
    rows = await resources.pool.fetch(
        "SELECT member_id, count FROM rewards.tickets WHERE tenant_id = $1", tenant.name)
    assert {r["member_id"]: r["count"] for r in rows} == {m: 2 for m in aware}
    listed = await rewards.client.post("/rewards/v1/issues", headers=rewards.operator, json={
        "issue_id": uid("i"), "reason": "welcome", "kind": "tickets", "box_id": "box-1",
        "member_ids": ["solo"]})
    assert listed.status_code == 201, listed.text
    assert [row["segment_id"] for row in await audit_rows(resources, tenant)].count(None) == 1


async def test_bad_segment_issues_are_refused_and_issue_nothing(
        rewards: Rewards, tenant: Tenant, seeded: Seeded, resources: Resources) -> None:
    client = rewards.client
    sku = await rewards.perk(cost_points=1, stock=100)
    empty = uid("seg")
    assert (await put_segment(client, tenant, empty, {"tags": {"all": ["nobody"]}})).json()[
        "count"] == 0
    example = uid("seg")
    assert (await put_segment(client, tenant, example, EXAMPLE)).status_code == 200
    base = {"reason": "r", "kind": "coupon", "sku": sku}
    cases = [
        ({"segment_id": example, "member_ids": ["a"]}, 422, "validation_failed"),
        ({}, 422, "validation_failed"),
        ({"segment_id": "no-such-segment"}, 404, "unknown_segment"),
        ({"segment_id": empty}, 409, "segment_empty"),
        ({"segment_id": "bad id!"}, 422, "validation_failed"),
    ]
    for extra, status, code in cases:
        response = await client.post("/rewards/v1/issues", headers=rewards.operator,
                                     json={"issue_id": uid("i"), **base, **extra})
        assert response.status_code == status, (extra, response.text)
        assert error_code(response) == code
    assert await audit_rows(resources, tenant) == []
    assert await coupons_by_member(rewards, seeded.members, sku) == Counter()
    assert await rewards.stock(sku) == 100


async def test_a_segment_larger_than_the_issue_limit_is_refused(
        rewards: Rewards, tenant: Tenant, resources: Resources) -> None:
    await tenant_members(resources, tenant, 10_001)
    segment_id = uid("seg")
    assert (await put_segment(rewards.client, tenant, segment_id, {})).json()["count"] \
        == 10_001
    response = await rewards.client.post("/rewards/v1/issues", headers=rewards.operator, json={
        "issue_id": uid("i"), "reason": "all", "kind": "tickets", "box_id": "box-1",
        "segment_id": segment_id})
    assert response.status_code == 422 and error_code(response) == "segment_too_large"
    assert response.json()["error"]["details"]["count"] == 10_001
    assert await audit_rows(resources, tenant) == []


async def test_tiers_unreachable_is_503_and_issues_nothing(
        rewards: Rewards, tenant: Tenant, seeded: Seeded, resources: Resources,
        settings: Settings) -> None:
    segment_id = uid("seg")
    assert (await put_segment(rewards.client, tenant, segment_id, EXAMPLE)).status_code == 200
    sku = await rewards.perk(cost_points=1, stock=100)
    async with tiers_down_client(settings) as down:
        response = await down.post("/rewards/v1/issues", headers=rewards.operator, json={
            "issue_id": uid("i"), "reason": "r", "kind": "coupon", "sku": sku,
            "segment_id": segment_id})
    assert response.status_code == 503, response.text
    assert error_code(response) == "tiers_unavailable"
    assert int(response.headers["retry-after"]) >= 1
    assert await audit_rows(resources, tenant) == []
    assert await coupons_by_member(rewards, seeded.members, sku) == Counter()
