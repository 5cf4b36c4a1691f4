"""Rule tags over a seeded population with back-dated events, against a computation in the
test from the raw events; the tag rules' thresholds; evaluations as of a time."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from services.runtime.resources import Resources
from services.runtime.settings import Settings
from services.tiers import actors as tier_actors
from tests.support.api import Points, Tenant, error_code, uid
from tests.support.bus import deliver, worker_context

ZONE = ZoneInfo("Asia/Shanghai")  # the test tenant's zone
LADDER = {"mode": "threshold", "tiers": [{"name": "fan"},
                                         {"name": "member", "min": {"spend_cents": 30_000}}]}
DEFAULTS: dict[str, Any] = {
    "repurchaser": {"purchases": 2, "window_days": 90},
    "coupon_lover": {"share": 0.5, "min_purchases": 1, "window_days": 90},
    "new_member": {"days": 30}, "dormant": {"days": 30},
    "first_order_days": {"edges": [0, 7, 30]}}
CUSTOM: dict[str, Any] = {
    "repurchaser": {"purchases": 3, "window_days": 30},
    "coupon_lover": {"share": 0.75, "min_purchases": 2, "window_days": 60},
    "new_member": {"days": 7}, "dormant": {"days": 14},
    "first_order_days": {"edges": [2, 10]}}
CHANNELS: list[Any] = ["WeChat", "mini_program", "douyin", "store-12", 7, "Has Space", True,
                       "x" * 58, "live:room-3"]


@dataclass
class Event:
    event_id: str
    action: str
    at: datetime
    amount: int | None = None
    refunded: int = 0
    channel: Any = None


@dataclass
class Member:
    member_id: str
    events: list[Event] = field(default_factory=list)
    joins: list[datetime] = field(default_factory=list)


def day_of(at: datetime) -> date:
    return at.astimezone(ZONE).date()


def channel_tag(value: Any) -> str | None:
    """The spec of the source tag: a string or integer id of 1-128 characters, lower-cased,
    making a tag `source:<channel>` of at most 64 characters of [a-z0-9_:-]."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).lower()
    tag = f"source:{text}"
    return tag if re.fullmatch(r"[a-z0-9_:-]{1,64}", tag) and len(str(value)) <= 128 else None


def bucket(days: int, edges: list[int]) -> str:
    low = 0
    for edge in edges:
        if days <= edge:
            return str(low) if low == edge else f"{low}-{edge}"
        low = edge + 1
    return f"{low}_plus"


def expected_tags(member: Member, last_day: date, rules: dict[str, Any]) -> set[str]:
    """The member's rule tags as of ``last_day``, from the raw seeded events."""
    events = [e for e in member.events if day_of(e.at) <= last_day]
    purchases = [day_of(e.at) for e in events if e.amount and e.amount - e.refunded > 0]
    coupon_days = {day_of(e.at) for e in events if e.action == "coupon_used"}
    action_days = {day_of(e.at) for e in events}
    join_days = {day_of(at) for at in member.joins if day_of(at) <= last_day}
    tags: set[str] = set()

    def within(day: date, days: int) -> bool:
        return last_day - timedelta(days=days) < day <= last_day

    repurchaser = rules["repurchaser"]
    if sum(within(d, repurchaser["window_days"]) for d in purchases) >= repurchaser["purchases"]:
        tags.add("repurchaser")
    lover = rules["coupon_lover"]
    recent = [d for d in purchases if within(d, lover["window_days"])]
    if recent and len(recent) >= lover["min_purchases"] and \
            sum(d in coupon_days for d in recent) / len(recent) >= lover["share"]:
        tags.add("coupon_lover")
    seen = action_days | join_days
    first_seen = min(seen) if seen else None
    if first_seen is not None and (last_day - first_seen).days < rules["new_member"]["days"]:
        tags.add("new_member")
    if not any(within(d, rules["dormant"]["days"]) for d in action_days):
        tags.add("dormant")
    if purchases and first_seen is not None:
        days = (min(purchases) - first_seen).days
        tags.add("first_order_days:" + bucket(days, rules["first_order_days"]["edges"]))
    named = sorted((e.at, e.event_id, e.channel) for e in events
                   if channel_tag(e.channel) is not None)
    if named:
        source = channel_tag(named[0][2])
        assert source is not None
        tags.add(source)
    return tags


def seed_population(rng: random.Random, count: int, now: datetime) -> list[Member]:
    """Members with back-dated speaks, purchases (some refunded in part or in full), coupon
    uses on purchase days or others, events naming a channel (some not a valid one), and a
    few who only joined a group."""
    members = []
    for index in range(count):
        member = Member(uid(f"m{index}"))
        kind = rng.random()
        if index == count - 1:
            # A coupon lover under any of the rules tested, whatever the time of day: the random
            # members are not always one under the strictest.
            for days in (5, 6, 7):
                at = now - timedelta(days=days)
                member.events += [Event(uid("ev"), "purchase", at, amount=10_000),
                                  Event(uid("ev"), "coupon_used", at)]
        elif kind < 0.05:
            member.joins.append(now - timedelta(days=rng.uniform(0, 60)))
        else:
            for _ in range(rng.randint(1, 7)):
                at = now - timedelta(days=rng.uniform(0, 150), seconds=rng.randint(1, 999))
                roll = rng.random()
                event = Event(uid("ev"), "speak", at)
                if roll < 0.45:
                    event = Event(uid("ev"), "purchase", at, amount=rng.randint(1, 50) * 1000)
                    if rng.random() < 0.1:
                        event.refunded = event.amount if rng.random() < 0.5 else 500
                    if rng.random() < 0.4:
                        used = at + timedelta(minutes=rng.randint(-60, 60))
                        member.events.append(Event(uid("ev"), "coupon_used",
                                                   min(used, now - timedelta(seconds=1))))
                elif roll < 0.55:
                    event = Event(uid("ev"), "coupon_used", at)
                if rng.random() < 0.3:
                    event.channel = rng.choice(CHANNELS)
                member.events.append(event)
            if kind > 0.9:  # a burst of recent purchases
                for _ in range(rng.randint(2, 4)):
                    member.events.append(Event(uid("ev"), "purchase", now - timedelta(
                        days=rng.uniform(0, 25)), amount=rng.randint(1, 9) * 1000))
        members.append(member)
    return members


async def seed(client: httpx.AsyncClient, tenant: Tenant, resources: Resources,
               settings: Settings, members: list[Member]) -> None:
    points = Points(client, tenant)
    assert (await points.put_rule("coupon_used", points=1)).status_code == 200
    events = [(m, e) for m in members for e in m.events]
    for start in range(0, len(events), 1000):
        body = []
        for member, event in events[start:start + 1000]:
            item: dict[str, Any] = {"event_id": event.event_id, "member_id": member.member_id,
                                    "action": event.action,
                                    "occurred_at": event.at.isoformat()}
            if event.amount:
                item["amount_cents"] = event.amount
            if event.channel is not None:
                item["attributes"] = {"channel": event.channel}
            body.append(item)
        response = await client.post("/points/v1/events/batch", headers=points.ingest,
                                     json={"events": body})
        assert response.status_code == 200, response.text
        assert all(i["status_code"] == 201 for i in response.json()["items"]), response.text
    for _, event in events:
        if event.refunded:
            assert (await points.reverse(event.event_id, amount_cents=event.refunded)
                    ).status_code == 201
    joiners = [m for m in members if m.joins]
    if joiners:
        admin, operator = tenant.headers(tenant.admin), tenant.headers(tenant.operator)
        assert (await client.put("/tiers/v1/policy", headers=admin, json=LADDER)
                ).status_code == 200
        group = uid("g")
        assert (await client.put(f"/tiers/v1/groups/{group}", headers=operator, json={
            "name": "Seeded", "tier": "fan", "kind": "fan"})).status_code == 200
        for member in joiners:
            response = await client.put(f"/tiers/v1/groups/{group}/members/{member.member_id}",
                                        headers=operator,
                                        params={"at": member.joins[0].isoformat()})
            assert response.status_code == 200, response.text
    await deliver(resources, settings, tenant.name)


async def rule_tags(resources: Resources, tenant: Tenant) -> dict[str, dict[str, datetime]]:
    rows = await resources.pool.fetch(
        "SELECT member_id, tag, since FROM tiers.member_tags WHERE tenant_id = $1"
        " AND source = 'rule'", tenant.name)
    found: dict[str, dict[str, datetime]] = {}
    for row in rows:
        found.setdefault(row["member_id"], {})[row["tag"]] = row["since"]
    return found


async def evaluate(client: httpx.AsyncClient, tenant: Tenant,
                   at: datetime | None = None) -> httpx.Response:
    return await client.post("/tiers/v1/tags/evaluations", headers=tenant.headers(tenant.admin),
                             json={"at": at.isoformat()} if at else None)


@pytest.mark.parametrize(("count", "rules"), [(1000, None), (200, CUSTOM)],
                         ids=["defaults-1000", "custom-200"])
async def test_rule_tags_equal_a_computation_from_the_raw_events(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources, settings: Settings,
        count: int, rules: dict[str, Any] | None) -> None:
    admin = tenant.headers(tenant.admin)
    if rules is not None:
        put = await client.put("/tiers/v1/tag-rules", headers=admin, json=rules)
        assert put.status_code == 200, put.text
    got = await client.get("/tiers/v1/tag-rules", headers=tenant.headers(tenant.operator))
    assert got.status_code == 200 and got.json() == (rules or DEFAULTS), got.text
    now = datetime.now(UTC)
    members = seed_population(random.Random(count), count, now)
    await seed(client, tenant, resources, settings, members)
    applied = rules or DEFAULTS

    earlier = now - timedelta(days=3, hours=5)
    first = await evaluate(client, tenant, earlier)
    assert first.status_code == 200, first.text
    assert first.json()["day"] == day_of(earlier).isoformat()
    assert first.json()["members"] == count
    want_first = {m.member_id: expected_tags(m, day_of(earlier), applied) for m in members}
    found = await rule_tags(resources, tenant)
    assert {m: set(tags) for m, tags in found.items()} == \
        {m: tags for m, tags in want_first.items() if tags}
    assert first.json()["rule_tags"] == first.json()["added"] == \
        sum(len(tags) for tags in want_first.values())
    assert all(since == earlier for tags in found.values() for since in tags.values())
    # Every rule tag has its definition at work in the population.
    names = {tag.split(":")[0] for tags in want_first.values() for tag in tags}
    assert names == {"repurchaser", "coupon_lover", "new_member", "dormant",
                     "first_order_days", "source"}

    # Three days on, tags moved: those that stay keep their since.
    later = datetime.now(UTC)
    second = await evaluate(client, tenant, later)
    assert second.status_code == 200, second.text
    want = {m.member_id: expected_tags(m, day_of(later), applied) for m in members}
    found = await rule_tags(resources, tenant)
    assert {m: set(tags) for m, tags in found.items()} == {m: t for m, t in want.items() if t}
    for member_id, tags in found.items():
        for tag, since in tags.items():
            assert since == (earlier if tag in want_first[member_id] else later), (member_id, tag)
    kept = sum(len(want[m] & want_first[m]) for m in want)
    assert second.json()["added"] == sum(len(t) for t in want.values()) - kept
    assert second.json()["removed"] == sum(len(t) for t in want_first.values()) - kept

    # The API shows the same for a member, manual tags beside rule tags.
    sample = next(m for m in members if len(want[m.member_id]) >= 3)
    shown = await client.get(f"/tiers/v1/members/{sample.member_id}/tags",
                             headers=tenant.headers(tenant.operator))
    assert shown.status_code == 200
    assert {(i["tag"], i["source"]) for i in shown.json()["items"]} == \
        {(tag, "rule") for tag in want[sample.member_id]}

    # Tag groups count the source and first-order tags.
    groups = await client.get("/tiers/v1/tag-groups", headers=tenant.headers(tenant.operator))
    assert groups.status_code == 200
    by_group = {g["tag_group"]: g for g in groups.json()["items"]}
    assert by_group["source"]["rule"] and by_group["first_order_days"]["rule"]
    for name in ("source", "first_order_days"):
        counts: dict[str, int] = {}
        for tags in want.values():
            for tag in tags:
                if tag.startswith(name + ":"):
                    counts[tag] = counts.get(tag, 0) + 1
        assert {c["tag"]: c["members"] for c in by_group[name]["tags"]} == counts

    # Going back before the last evaluation is refused, and changes nothing.
    back = await evaluate(client, tenant, earlier)
    assert back.status_code == 409 and error_code(back) == "evaluation_out_of_order"
    assert await rule_tags(resources, tenant) == found


async def test_the_hourly_job_evaluates_tenants_not_evaluated_today_or_with_new_rules(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources,
        settings: Settings) -> None:
    now = datetime.now(UTC)
    buyer, sleeper = Member(uid("buyer")), Member(uid("sleeper"))
    buyer.events = [Event(uid("ev"), "purchase", now - timedelta(days=d), amount=1000,
                          channel="Store-9") for d in (2, 5)]
    sleeper.events = [Event(uid("ev"), "speak", now - timedelta(days=40))]
    await seed(client, tenant, resources, settings, [buyer, sleeper])

    async def run_job() -> datetime | None:
        async with worker_context(settings):
            await tier_actors.evaluate_tags()
        at = await resources.pool.fetchval(
            "SELECT evaluated_at FROM tiers.tag_evaluations WHERE tenant_id = $1", tenant.name)
        return at if at is None else at.astimezone(UTC)

    first = await run_job()
    assert first is not None and first >= now
    today = day_of(first)
    found = await rule_tags(resources, tenant)
    for member in (buyer, sleeper):
        assert set(found[member.member_id]) == expected_tags(member, today, DEFAULTS)
    assert "repurchaser" in found[buyer.member_id] and "source:store-9" in found[buyer.member_id]
    assert await run_job() == first  # evaluated today already: left alone

    stricter = {"repurchaser": {"purchases": 3}}
    assert (await client.put("/tiers/v1/tag-rules", headers=tenant.headers(tenant.admin),
                             json=stricter)).status_code == 200
    second = await run_job()
    assert second is not None and second > first
    found = await rule_tags(resources, tenant)
    rules = {**DEFAULTS, "repurchaser": {"purchases": 3, "window_days": 90}}
    assert set(found[buyer.member_id]) == expected_tags(buyer, day_of(second), rules)
    assert "repurchaser" not in found[buyer.member_id]
