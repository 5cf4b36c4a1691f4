"""The console's figures: per local day (issued, spent, expired, reversed, held), per hour (events
and points) and the overview (members, active members, the outbox's lag).

The ledger records every movement at the time of the request, so movements on earlier days are
made through the points service's own ledger with that time as its clock (what the API does with
the real one); today's go through the HTTP API."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from proto import points as p
from services.points import actors, store
from services.points.app import PointsComponents
from services.points.ledger import Ledger
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from services.runtime.stack import Stack
from tests.support.api import Points, Tenant, error_code, make_tenant, uid
from tests.support.bus import worker_context

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def ledger(stack: Stack) -> Ledger:
    return stack.host.components("points", PointsComponents).ledger


async def clear_of_midnight(zone: ZoneInfo) -> None:
    """Wait if the tenant's local day is about to change, so "today" is one day for the test."""
    local = datetime.now(zone)
    to_midnight = (datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=zone)
                   - local).total_seconds()
    if to_midnight < 20:
        await asyncio.sleep(to_midnight + 1)


def at(zone: ZoneInfo, days_ago: int, hour: int, minute: int) -> datetime:
    """An instant on the local day ``days_ago`` days before today, at hour:minute local time."""
    day = datetime.now(zone).date() - timedelta(days=days_ago)
    return datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)


def local_day(zone: ZoneInfo, days_ago: int) -> str:
    return (datetime.now(zone).date() - timedelta(days=days_ago)).isoformat()


def escrow_member(owner: str) -> str:
    return "pool:" + hashlib.sha1(owner.encode()).hexdigest()


async def grant(ledger: Ledger, tenant: Tenant, when: datetime, *items: p.GrantItem) -> None:
    await ledger.grant(tenant.name, None, p.GrantIn(grant_id=uid("g"), reason="stats test",
                                                    items=list(items)), when)


async def sweep_at(resources: Resources, when: datetime) -> None:
    while await store.call_sweep_expired_lots(resources.pool, when, 200) == 200:
        pass


async def daily(points: Points, days: int, key: str = "operator") -> dict[str, Any]:
    response = await points.client.get("/points/v1/stats/daily", params={"days": days},
                                       headers=points.tenant.headers(getattr(points.tenant, key)))
    assert response.status_code == 200, response.text
    return dict(response.json())


def figures(day: str, issued: int = 0, spent: int = 0, expired: int = 0, reversed: int = 0,
            held: int = 0) -> dict[str, Any]:
    return {"day": day, "issued": issued, "spent": spent, "expired": expired,
            "reversed": reversed, "held": held}


async def test_daily_figures_per_local_day_and_the_stock_members_hold(
        points: Points, ledger: Ledger, resources: Resources, settings: Settings) -> None:
    tenant = points.tenant
    await clear_of_midnight(SHANGHAI)
    m1, m2, m3 = uid("m1"), uid("m2"), uid("m3")

    # Three days ago: grants of 100 to m1 (expiring two days ago at noon) and 50 to m2, an event
    # of 1 point for m2, a debit of 30 from m1. Held at the end: 70 + 51 (+ 7 below).
    await grant(ledger, tenant, at(SHANGHAI, 3, 10, 0),
                p.GrantItem(member_id=m1, points=100, expires_at=at(SHANGHAI, 2, 12, 0)),
                p.GrantItem(member_id=m2, points=50))
    await ledger.record_event(tenant.name, p.EventIn(event_id=uid("e"), member_id=m2,
                                                     action="speak"), at(SHANGHAI, 3, 11, 0))
    await ledger.debit(tenant.name, p.DebitIn(debit_id=uid("d"), member_id=m1, points=30,
                                              reason="stats test"), at(SHANGHAI, 3, 12, 0))
    # A minute either side of local midnight (15:59Z and 16:01Z, one UTC day): two local days.
    await grant(ledger, tenant, at(SHANGHAI, 3, 23, 59), p.GrantItem(member_id=m3, points=7))
    await grant(ledger, tenant, at(SHANGHAI, 2, 0, 1), p.GrantItem(member_id=m3, points=11))
    # Two days ago: the sweep expires the 70 left of m1's lot; m2 holds 20 and captures them.
    await sweep_at(resources, at(SHANGHAI, 2, 13, 0))
    hold_id = uid("h")
    await ledger.place_hold(tenant.name, p.HoldIn(hold_id=hold_id, member_id=m2, points=20,
                                                  reason="stats test"), at(SHANGHAI, 2, 14, 0))
    await ledger.settle_hold(tenant.name, hold_id, "capture", p.SettleIn(),
                             at(SHANGHAI, 2, 14, 10))
    # Yesterday: nothing.

    # Today, through the API: a purchase of 50 points, refunded 40% (20 clawed back); a hold of
    # 10 captured then refunded; a move of 5 to m3 and one of 4 to a pool's escrow (spent by m2;
    # the escrow is not a member); 9 points granted to m1 that expire at once.
    purchase = await points.event(m2, "purchase", amount_cents=5_000)
    assert purchase.json()["points"] == 50
    reversal = await points.reverse(purchase.json()["event_id"], amount_cents=2_000)
    assert reversal.json()["clawed_back"] == 20
    today_hold = (await points.hold(m2, 10)).json()["hold_id"]
    assert (await points.capture(today_hold)).status_code == 200
    assert (await points.refund(today_hold)).status_code == 201
    assert (await points.move(m2, m3, 5)).status_code == 201
    assert (await points.move(m2, escrow_member(uid("pool")), 4)).status_code == 201
    await points.give(m1, 9, expires_at=(datetime.now(UTC) + timedelta(seconds=1)).isoformat())
    await asyncio.sleep(1.2)

    members = [await points.member(m) for m in (m1, m2, m3)]
    assert [m["available"] for m in members] == [0, 52, 23]
    expected = [
        figures(local_day(SHANGHAI, 4)),
        figures(local_day(SHANGHAI, 3), issued=100 + 50 + 1 + 7, spent=30, held=70 + 51 + 7),
        figures(local_day(SHANGHAI, 2), issued=11, spent=20, expired=70, held=0 + 31 + 18),
        figures(local_day(SHANGHAI, 1), held=49),
        # Today: the 9 points past their expiry are not held, swept or not.
        figures(local_day(SHANGHAI, 0), issued=50 + 10 + 5 + 9, spent=10 + 5 + 4, reversed=20,
                held=75),
    ]
    stats = await daily(points, 5)
    assert stats == {"time_zone": "Asia/Shanghai", "days": expected}
    assert stats["days"][-1]["held"] == sum(m["available"] for m in members)

    async with worker_context(settings):
        await actors.sweep_expired_lots()
    expected[-1]["expired"] = 9
    assert (await daily(points, 5, key="admin"))["days"] == expected
    await points.assert_ledger_ok()

    longer = await daily(points, 30)
    assert len(longer["days"]) == 30 and longer["days"][-5:] == expected
    assert longer["days"][:-5] == [figures(d["day"]) for d in longer["days"][:-5]]
    assert [date.fromisoformat(d["day"]) for d in longer["days"]] == [
        date.fromisoformat(local_day(SHANGHAI, 0)) - timedelta(days=29 - i) for i in range(30)]


async def test_days_follow_the_tenant_time_zone(client: httpx.AsyncClient,
                                                resources: Resources, ledger: Ledger) -> None:
    # New York is behind UTC: 23:30 and 00:30 local, an hour apart across local midnight, are
    # both in the same UTC day (04:30Z and 05:30Z, or 03:30Z and 04:30Z in summer).
    zone = ZoneInfo("America/New_York")
    tenant = await make_tenant(resources.pool, time_zone="America/New_York")
    points = Points(client, tenant)
    await clear_of_midnight(zone)
    member = uid("m")
    await grant(ledger, tenant, at(zone, 2, 23, 30), p.GrantItem(member_id=member, points=3))
    await grant(ledger, tenant, at(zone, 1, 0, 30), p.GrantItem(member_id=member, points=4))
    stats = await daily(points, 3)
    assert stats == {"time_zone": "America/New_York", "days": [
        figures(local_day(zone, 2), issued=3, held=3),
        figures(local_day(zone, 1), issued=4, held=7),
        figures(local_day(zone, 0), held=7),
    ]}


async def test_hourly_events_and_points(points: Points, ledger: Ledger) -> None:
    tenant = points.tenant
    await points.put_rule("like", points=3)
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    if now - hour > timedelta(minutes=59, seconds=40):  # keep the test within one hour
        await asyncio.sleep(25)
        now = datetime.now(UTC)
        hour = now.replace(minute=0, second=0, microsecond=0)

    def event(action: str = "like") -> p.EventIn:
        return p.EventIn(event_id=uid("e"), member_id=uid("m"), action=action)

    # Seven hours ago: outside a window of 6 hours.
    await ledger.record_event(tenant.name, event(), hour - timedelta(hours=7, minutes=-10))
    # Four hours ago: a batch of two events, and an event of an unknown action (refused).
    await ledger.record_batch(tenant.name, p.EventBatchIn(events=[event(), event("speak"),
                                                                  event("nope")]),
                              hour - timedelta(hours=4, minutes=-30))
    # This hour, through the API: 3 events, one of them capped to 0 points.
    await points.put_rule("once", points=5, limits=[{"period": "lifetime", "max_events": 1}])
    member = uid("m")
    assert (await points.event(member, "once")).json()["points"] == 5
    assert (await points.event(member, "once")).json()["status"] == "capped"
    batch = await points.client.post("/points/v1/events/batch", headers=points.ingest, json={
        "events": [{"event_id": uid("e"), "member_id": member, "action": "like"}]})
    assert batch.status_code == 200, batch.text

    response = await points.client.get("/points/v1/stats/hourly", params={"hours": 6},
                                       headers=points.operator)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["time_zone"] == "Asia/Shanghai"
    starts = [(hour - timedelta(hours=5 - i)).strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(6)]
    assert body["hours"] == [
        {"hour": starts[0], "events": 0, "points": 0},
        {"hour": starts[1], "events": 2, "points": 3 + 1},
        {"hour": starts[2], "events": 0, "points": 0},
        {"hour": starts[3], "events": 0, "points": 0},
        {"hour": starts[4], "events": 0, "points": 0},
        {"hour": starts[5], "events": 3, "points": 5 + 0 + 3},
    ]
    default = await points.client.get("/points/v1/stats/hourly", headers=points.admin)
    assert len(default.json()["hours"]) == 48
    assert default.json()["hours"][-6:] == body["hours"]
    assert sum(h["events"] for h in default.json()["hours"]) == 6


@pytest.mark.parametrize(("path", "param", "bad"), [
    ("daily", "days", 0), ("daily", "days", 367), ("daily", "days", "x"),
    ("hourly", "hours", 0), ("hourly", "hours", 169), ("hourly", "hours", -1)])
async def test_windows_out_of_range_are_422(points: Points, path: str, param: str,
                                            bad: object) -> None:
    response = await points.client.get(f"/points/v1/stats/{path}", params={param: bad},
                                       headers=points.operator)
    assert response.status_code == 422, response.text
    assert error_code(response) == "validation_failed"


async def test_the_widest_windows_and_the_defaults(points: Points) -> None:
    widest = await points.client.get("/points/v1/stats/daily", params={"days": 366},
                                     headers=points.operator)
    assert widest.status_code == 200 and len(widest.json()["days"]) == 366
    assert len((await daily(points, 1))["days"]) == 1
    default = await points.client.get("/points/v1/stats/daily", headers=points.operator)
    assert len(default.json()["days"]) == 30
    hours = await points.client.get("/points/v1/stats/hourly", params={"hours": 168},
                                    headers=points.operator)
    assert hours.status_code == 200 and len(hours.json()["hours"]) == 168


@pytest.mark.parametrize("path", ["daily", "hourly", "overview"])
async def test_stats_are_for_admin_and_operator_keys(points: Points, client: httpx.AsyncClient,
                                                     path: str) -> None:
    url = f"/points/v1/stats/{path}"
    for key in (points.tenant.admin, points.tenant.operator):
        assert (await client.get(url, headers=Tenant.headers(key))).status_code == 200
    ingest = await client.get(url, headers=points.ingest)
    assert ingest.status_code == 403 and error_code(ingest) == "forbidden"
    token = (await client.post("/points/v1/member-tokens", headers=points.ingest,
                               json={"member_id": uid("m")})).json()["token"]
    member = await client.get(url, headers=Tenant.headers(token))
    assert member.status_code == 403 and error_code(member) == "forbidden"
    nobody = await client.get(url)
    assert nobody.status_code == 401 and error_code(nobody) == "unauthorized"


async def test_overview_counts_members_and_active_ones(points: Points, ledger: Ledger) -> None:
    tenant = points.tenant
    now = datetime.now(UTC)
    today, ten_days, forty_days, never = uid("a"), uid("b"), uid("c"), uid("d")
    told_late = uid("e")
    assert (await points.event(today, "speak")).status_code == 201
    await ledger.record_event(tenant.name, p.EventIn(event_id=uid("e"), member_id=ten_days,
                                                     action="speak"), now - timedelta(days=10))
    await ledger.record_event(tenant.name, p.EventIn(event_id=uid("e"), member_id=forty_days,
                                                     action="speak"), now - timedelta(days=40))
    await points.give(never, 10)
    # Recorded now, occurred 20 days ago: active in the last 30 days, not in the last 7.
    back_dated = await points.event(told_late, "speak",
                                    occurred_at=(now - timedelta(days=20)).isoformat())
    assert back_dated.status_code == 201
    # An escrow account is not a member.
    assert (await points.move(never, escrow_member(uid("pool")), 3)).status_code == 201

    response = await points.client.get("/points/v1/stats/overview", headers=points.operator)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["members"], body["active_members_7d"], body["active_members_30d"]) == (5, 1, 3)
    assert abs(datetime.fromisoformat(body["at"]) - datetime.now(UTC)) < timedelta(seconds=30)


async def test_overview_outbox_counts_what_a_consumer_has_not_applied(
        client: httpx.AsyncClient, resources: Resources) -> None:
    tenant = await make_tenant(resources.pool)
    points = Points(client, tenant)

    async def outbox() -> dict[str, Any]:
        response = await client.get("/points/v1/stats/overview", headers=points.admin)
        assert response.status_code == 200, response.text
        return dict(response.json()["outbox"])

    assert await outbox() == {"pending": 0, "oldest_pending_age_s": None}

    # Rows in the states the relay and the consumers leave them in, of a type nobody subscribes
    # to (so no relay running elsewhere in the session sends them to a real consumer).
    async def row(tenant_id: str, age_s: int, consumers: list[str] | None,
                  applied: list[str]) -> None:
        event_id = await resources.pool.fetchval(
            "INSERT INTO fuli.outbox (service, tenant_id, event_type, payload, created_at,"
            " consumers, sends, resend_at)"
            " VALUES ('points', $1, 'StatsTestOnly', '\\x7b7d',"
            " now() - make_interval(secs => $2), $3, $4,"
            " CASE WHEN $3::text[] IS NULL THEN NULL ELSE now() + interval '1 hour' END)"
            " RETURNING event_id",
            tenant_id, age_s, consumers, 0 if consumers is None else 1)
        for consumer in applied:
            await resources.pool.execute(
                "INSERT INTO fuli.inbox (tenant_id, consumer, event_id) VALUES ($1, $2, $3)",
                tenant_id, consumer, event_id)

    other = await make_tenant(resources.pool)
    try:
        await row(tenant.name, 900, ["c.one", "c.two"], ["c.one", "c.two"])  # applied by all
        await row(tenant.name, 800, [], [])  # sent to no one: nothing to wait for
        await row(tenant.name, 600, ["c.one", "c.two"], ["c.two"])  # c.one has not applied it
        await row(tenant.name, 300, None, [])  # not sent yet
        await row(other.name, 7200, None, [])  # another tenant's
        lag = await outbox()
    finally:
        await resources.pool.execute(
            "DELETE FROM fuli.outbox WHERE tenant_id = any($1::text[])", [tenant.name, other.name])
    assert lag["pending"] == 2
    assert 600 <= lag["oldest_pending_age_s"] < 660
