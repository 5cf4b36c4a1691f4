from __future__ import annotations

from tests.support.api import Points, Tenant, make_tenant, uid


async def test_daily_cap_resets_at_midnight_in_the_tenant_time_zone(points: Points) -> None:
    # Asia/Shanghai is UTC+8: 15:59Z is 23:59 local, 16:01Z is 00:01 the next local day.
    await points.put_rule("checkin", points=1, limits=[{"period": "day", "max_events": 1}])
    member = uid("m")
    before_midnight = await points.event(member, "checkin", occurred_at="2026-03-01T15:59:00Z")
    after_midnight = await points.event(member, "checkin", occurred_at="2026-03-01T16:01:00Z")
    same_local_day = await points.event(member, "checkin", occurred_at="2026-03-01T23:00:00Z")
    assert before_midnight.json()["status"] == "awarded"
    assert after_midnight.json()["status"] == "awarded", "a new local day began at 16:00Z"
    assert same_local_day.json()["status"] == "capped", "23:00Z is still that local day"
    # In UTC, 00:30Z on March 2nd is a new day, but locally it is still the capped one.
    still_capped = await points.event(member, "checkin", occurred_at="2026-03-02T00:30:00+00:00")
    assert still_capped.json()["status"] == "capped"


async def test_week_and_month_periods_follow_the_tenant_zone(client, resources) -> None:  # type: ignore[no-untyped-def]
    tenant: Tenant = await make_tenant(resources.pool, time_zone="America/New_York")
    points = Points(client, tenant)
    await points.put_rule("visit", points=1, limits=[{"period": "week", "max_events": 1},
                                                     {"period": "month", "max_events": 3}])
    member = uid("m")
    # Sunday 2026-03-01 23:30 in New York is Monday 04:30Z: still the week of Feb 23 locally.
    sunday_local = await points.event(member, "visit", occurred_at="2026-03-02T04:30:00Z")
    monday_local = await points.event(member, "visit", occurred_at="2026-03-02T05:30:00Z")
    assert sunday_local.json()["status"] == "awarded"
    assert monday_local.json()["status"] == "awarded"
    # Both are in March locally? The first is 23:30 on March 1st, so yes: 2 of 3 used.
    third = await points.event(member, "visit", occurred_at="2026-03-10T12:00:00Z")
    fourth = await points.event(member, "visit", occurred_at="2026-03-20T12:00:00Z")
    assert third.json()["status"] == "awarded"
    assert fourth.json()["status"] == "capped", "the month allows 3"
