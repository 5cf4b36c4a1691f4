"""Segments as the tiers service builds them from events alone: tiers from purchases under a
threshold ladder, lifecycle stages and rule tags from their evaluations, then the segment
`tier in (member, vip) AND lifecycle = loyal AND NOT tag dormant` as a target of a coupon issue
and of a points grant. Every expected set is the test's own reading of the seeded events."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx

from services.runtime.resources import Resources
from services.runtime.settings import Settings
from services.runtime.stack import Stack
from services.tiers.app import TiersComponents
from tests.support.api import Points, Rewards, Tenant, uid
from tests.support.bus import deliver
from tests.support.segments import EXAMPLE, LADDER, put_segment, tier_of

# The lifecycle model's defaults: a 30-day window, loyal from 3 purchases in it or a purchase
# at most 30 days after the one before it. Rule tags: dormant after 7 days without an action.
WINDOW_DAYS, LOYAL_PURCHASES, REPURCHASE_DAYS, DORMANT_DAYS = 30, 3, 30, 7

# Per member: purchases (days ago, cents) and speaks (days ago).
PLAN: dict[str, tuple[list[tuple[int, int]], list[int]]] = {
    "member-loyal": ([(10, 20_000), (3, 20_000)], []),
    "vip-loyal": ([(5, 60_000), (2, 50_000)], []),
    "vip-lapsed": ([(45, 60_000), (40, 60_000)], []),
    "member-loyal-dormant": ([(20, 20_000), (12, 20_000)], []),
    "member-loyal-speaking": ([(20, 20_000), (12, 20_000)], [1]),
    "fan-loyal": ([(4, 5_000), (2, 5_000)], []),
    "member-once": ([(3, 35_000)], []),
    "vip-three-times": ([(25, 40_000), (15, 40_000), (1, 40_000)], []),
    "member-slow-repurchase": ([(50, 20_000), (3, 20_000)], []),
    "speaker": ([], [1, 2, 3]),
}


def loyal(purchase_days: list[int]) -> bool:
    in_window = sorted(d for d in purchase_days if d < WINDOW_DAYS)
    if len(in_window) >= LOYAL_PURCHASES:
        return True
    if not in_window:
        return False
    latest = in_window[0]
    before = sorted(d for d in purchase_days if d > latest)
    return bool(before) and before[0] - latest <= REPURCHASE_DAYS


def dormant(action_days: list[int]) -> bool:
    return not any(d < DORMANT_DAYS for d in action_days)


async def test_a_segment_built_from_events_is_the_target_of_an_issue_and_a_grant(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources,
        settings: Settings, stack: Stack) -> None:
    points, rewards = Points(client, tenant), Rewards(client, tenant)
    admin, operator = tenant.headers(tenant.admin), tenant.headers(tenant.operator)
    assert (await client.put("/tiers/v1/policy", headers=admin, json=LADDER)).status_code \
        == 200
    rules = await client.put("/tiers/v1/tag-rules", headers=admin,
                             json={"dormant": {"days": DORMANT_DAYS}})
    assert rules.status_code == 200, rules.text

    now = datetime.now(UTC)
    members = {name: uid(name) for name in PLAN}
    expected = set()
    for name, (purchases, speaks) in PLAN.items():
        member = members[name]
        for days_ago, cents in purchases:
            sent = await points.event(member, "purchase", amount_cents=cents,
                                      occurred_at=(now - timedelta(days=days_ago)).isoformat())
            assert sent.status_code == 201, sent.text
        for days_ago in speaks:
            sent = await points.event(member, "speak",
                                      occurred_at=(now - timedelta(days=days_ago)).isoformat())
            assert sent.status_code == 201, sent.text
        purchase_days = [d for d, _ in purchases]
        if (tier_of(sum(c for _, c in purchases)) in ("member", "vip") and loyal(purchase_days)
                and not dormant(purchase_days + speaks)):
            expected.add(member)
    assert {name for name, member in members.items() if member in expected} == {
        "member-loyal", "vip-loyal", "member-loyal-speaking", "vip-three-times"}
    await deliver(resources, settings, tenant.name)

    for evaluation in ("/tiers/v1/lifecycle/evaluations", "/tiers/v1/tags/evaluations"):
        response = await client.post(evaluation, headers=admin, json={})
        assert response.status_code in (200, 201), response.text
    segment_id = uid("seg")
    segment = await put_segment(client, tenant, segment_id, EXAMPLE)
    assert segment.status_code == 200, segment.text
    assert segment.json()["count"] == len(expected)
    listed = await client.get(f"/tiers/v1/segments/{segment_id}/members", headers=operator,
                              params={"limit": 100})
    assert {m["member_id"] for m in listed.json()["items"]} == expected

    sku = await rewards.perk(cost_points=1, stock=100)
    issue = {"issue_id": uid("i"), "reason": "loyalty thanks", "kind": "coupon", "sku": sku,
             "segment_id": segment_id}
    for _ in range(2):  # the same issue id again issues nothing
        issued = await client.post("/rewards/v1/issues", headers=operator, json=issue)
        assert issued.status_code in (200, 201), issued.text
    held: Counter[str] = Counter()
    for member in members.values():
        coupons = await rewards.coupons(member)
        assert coupons.status_code == 200, coupons.text
        held[member] += sum(1 for c in coupons.json()["items"] if c["sku"] == sku)
    assert +held == Counter(expected)

    before = {m: (await points.member(m))["available"] for m in members.values()}
    grant = {"grant_id": uid("g"), "reason": "loyalty points", "segment_id": segment_id,
             "points": 25}
    for _ in range(2):
        granted = await client.post("/points/v1/grants", headers=operator, json=grant)
        assert granted.status_code in (200, 201), granted.text
    after = {m: (await points.member(m))["available"] for m in members.values()}
    assert {m for m in members.values() if after[m] - before[m] == 25} == expected
    assert all(after[m] == before[m] for m in members.values() if m not in expected)

    # A purchase today makes the one-time buyer a repurchaser: the next lifecycle evaluation
    # moves them to loyal, and the daily refresh follows that evaluation on the same day.
    again = members["member-once"]
    assert (await points.event(again, "purchase", amount_cents=1_000)).status_code == 201
    await deliver(resources, settings, tenant.name)
    segments = stack.host.components("tiers", TiersComponents).segments
    await segments.refresh_due(datetime.now(UTC))
    assert (await client.get(f"/tiers/v1/segments/{segment_id}", headers=operator)
            ).json()["count"] == len(expected)
    evaluated = await client.post("/tiers/v1/lifecycle/evaluations", headers=admin, json={})
    assert evaluated.status_code in (200, 201), evaluated.text
    await segments.refresh_due(datetime.now(UTC))
    listed = await client.get(f"/tiers/v1/segments/{segment_id}/members", headers=operator,
                              params={"limit": 100})
    assert {m["member_id"] for m in listed.json()["items"]} == expected | {again}
