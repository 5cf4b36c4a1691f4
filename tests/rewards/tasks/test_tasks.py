"""Tasks against the real stack: definitions and their refusals, progress from events posted
through the points and tiers APIs and run through the consumers as the worker would, chains,
streaks, periods in the tenant's zone, claims, and rewards paid exactly once however the
events arrive and whatever crashes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx

from services.rewards.tasks import actors, rules
from services.rewards.tasks.store import ProgressKey
from services.rewards.tasks.tasks import Tasks, pay_id
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from services.runtime.stack import Stack
from tests.rewards.helpers import points_client_with
from tests.rewards.tasks.support import (
    ZONE,
    TasksApi,
    bodies_of,
    completions,
    local_noon,
    outbox_count,
    tickets,
    today,
)
from tests.support.api import Tenant, error_code, member_token, uid
from tests.support.bus import deliver, worker_context

LADDER = {"mode": "threshold", "tiers": [{"name": "fan"},
                                         {"name": "vip", "min": {"spend_cents": 100_000}}]}


async def make_group(client: httpx.AsyncClient, tenant: Tenant, group_id: str) -> None:
    policy = await client.get("/tiers/v1/policy", headers=tenant.headers(tenant.admin))
    if policy.status_code != 200:
        response = await client.put("/tiers/v1/policy", headers=tenant.headers(tenant.admin),
                                    json=LADDER)
        assert response.status_code == 200, response.text
    response = await client.put(f"/tiers/v1/groups/{group_id}",
                                headers=tenant.headers(tenant.operator),
                                json={"name": f"Group {group_id}", "tier": "fan",
                                      "kind": "member"})
    assert response.status_code == 200, response.text


async def join(client: httpx.AsyncClient, tenant: Tenant, group_id: str, member: str,
               at: datetime) -> None:
    response = await client.put(f"/tiers/v1/groups/{group_id}/members/{member}",
                                headers=tenant.headers(tenant.operator),
                                params={"at": at.isoformat()})
    assert response.status_code == 200, response.text


async def leave(client: httpx.AsyncClient, tenant: Tenant, group_id: str, member: str,
                at: datetime) -> None:
    response = await client.delete(f"/tiers/v1/groups/{group_id}/members/{member}",
                                   headers=tenant.headers(tenant.operator),
                                   params={"at": at.isoformat()})
    assert response.status_code == 200, response.text


# --- definitions ---------------------------------------------------------------------------

async def test_a_definition_reads_back_and_every_change_is_audited(
        tasks_api: TasksApi, resources: Resources, tenant: Tenant) -> None:
    api = tasks_api
    box = await api.box()
    sku = uid("sku")
    response = await api.client.put(f"/rewards/v1/perks/{sku}", headers=api.operator,
                                    json={"name": "Mask", "cost_points": 10})
    assert response.status_code == 200, response.text
    first = await api.define("guide", kind="once", condition={"action": "follow_guide"},
                             reward={"tickets": {"box_id": box}})
    assert first["reward"] == {"points": None, "tickets": {"box_id": box, "count": 1},
                               "perk": None}
    changed = await api.define(
        "guide", kind="daily", description="Follow the guide",
        condition={"action": "buy", "count": 2, "min_amount_cents": 500,
                   "attributes": {"store": "s1"}},
        starts_at="2026-01-01T00:00:00+08:00", ends_at="2027-01-01T00:00:00+08:00",
        tiers=["vip"], reward={"points": 5, "perk": sku}, claim="manual", enabled=False)
    assert changed["condition"] == {"action": "buy", "count": 2, "min_amount_cents": 500,
                                    "attributes": {"store": "s1"}}
    assert (changed["kind"], changed["claim"], changed["enabled"], changed["tiers"]) == (
        "daily", "manual", False, ["vip"])
    assert datetime.fromisoformat(changed["starts_at"]) == datetime(2026, 1, 1, tzinfo=ZONE)
    shown = await api.client.get("/rewards/v1/tasks/guide", headers=api.operator)
    assert shown.json() == changed
    listed = await api.client.get("/rewards/v1/tasks", headers=api.operator)
    assert listed.json()["items"] == [changed]
    rows = await resources.pool.fetch(
        "SELECT key_id, definition FROM rewards.task_audit WHERE tenant_id = $1"
        " AND task_id = 'guide' ORDER BY change_id", tenant.name)
    assert [r["definition"]["kind"] for r in rows] == ["once", "daily"]
    assert all(r["key_id"] for r in rows)
    missing = await api.client.get("/rewards/v1/tasks/nope", headers=api.operator)
    assert missing.status_code == 404 and error_code(missing) == "unknown_task"
    member = await api.client.get("/rewards/v1/tasks", headers=api.ingest)
    assert member.status_code == 403


async def test_bad_definitions_are_refused_and_store_nothing(
        tasks_api: TasksApi, resources: Resources, tenant: Tenant) -> None:
    api = tasks_api
    box = await api.box()
    await api.define("base")
    await api.define("next", after="base")
    before = (await api.client.get("/rewards/v1/tasks", headers=api.operator)).json()
    audit_before = await resources.pool.fetchval(
        "SELECT count(*) FROM rewards.task_audit WHERE tenant_id = $1", tenant.name)
    now = datetime.now(UTC)
    bad: list[tuple[str, dict[str, Any], int, str]] = [
        ("new", {"condition": {"action": "never_heard_of"}}, 422, "unknown_action"),
        ("new", {"condition": {"action": "check_in", "count": 0}}, 422, "validation_failed"),
        ("new", {"reward": {"tickets": {"box_id": "no-such-box"}}}, 422, "unknown_box"),
        ("new", {"reward": {"perk": "no-such-sku"}}, 422, "unknown_sku"),
        ("new", {"reward": {"points": 1, "tickets": {"box_id": box}, "perk": "nope"}}, 422,
         "unknown_sku"),
        ("base", {"after": "next"}, 422, "chain_cycle"),
        ("base", {"after": "base"}, 422, "chain_cycle"),
        ("new", {"after": "no-such-task"}, 422, "unknown_task"),
        ("new", {"kind": "streak"}, 422, "validation_failed"),
        ("new", {"kind": "daily", "streak_days": 7}, 422, "validation_failed"),
        ("new", {"reward": {}}, 422, "validation_failed"),
        ("new", {"starts_at": now.isoformat(), "ends_at": (now - timedelta(days=1)).isoformat()},
         422, "validation_failed"),
        ("new", {"starts_at": "2026-12-06T10:00:00"}, 422, "validation_failed"),
        ("new", {"kind": "yearly"}, 422, "validation_failed"),
        ("new", {"colour": "red"}, 422, "validation_failed"),
        ("new", {"condition": {"action": "Check In"}}, 422, "validation_failed"),
    ]
    for task_id, fields, status, code in bad:
        response = await api.put(task_id, **fields)
        assert (response.status_code, error_code(response)) == (status, code), (
            fields, response.text)
    assert (await api.client.get("/rewards/v1/tasks", headers=api.operator)).json() == before
    assert await resources.pool.fetchval(
        "SELECT count(*) FROM rewards.task_audit WHERE tenant_id = $1", tenant.name) == \
        audit_before
    assert (await api.client.get("/rewards/v1/tasks/new", headers=api.operator)
            ).status_code == 404
    # Group joins and coupon uses are actions without an earning rule.
    await api.define("joined", condition={"action": "group_joined",
                                          "attributes": {"group_id": "g1"}})
    await api.define("used", condition={"action": "coupon_used"})


# --- chains --------------------------------------------------------------------------------

async def onboarding(api: TasksApi, box: str) -> None:
    """Follow the guide, then the questionnaire, then join group g1: a ticket each."""
    ticket = {"tickets": {"box_id": box, "count": 1}}
    await api.define("guide", condition={"action": "follow_guide"}, reward=ticket)
    await api.define("survey", condition={"action": "questionnaire"}, reward=ticket,
                     after="guide")
    await api.define("group", condition={"action": "group_joined",
                                         "attributes": {"group_id": "g1"}},
                     reward=ticket, after="survey")


async def test_onboarding_in_any_order_each_twice_pays_exactly_three_tickets(
        tasks_api: TasksApi, client: httpx.AsyncClient, tenant: Tenant, resources: Resources,
        settings: Settings) -> None:
    api = tasks_api
    box = await api.box()
    await onboarding(api, box)
    await make_group(client, tenant, "g1")
    start = datetime.now(UTC) - timedelta(hours=3)

    # Backwards: the last step twice (join, leave, join again), then the second, then the first.
    backwards = uid("m")
    await join(client, tenant, "g1", backwards, start)
    await leave(client, tenant, "g1", backwards, start + timedelta(minutes=1))
    await join(client, tenant, "g1", backwards, start + timedelta(minutes=2))
    await deliver(resources, settings, tenant.name)
    view = await api.member_tasks(backwards)
    assert {k: (v["status"], v["progress"], v["unlocked_by"]) for k, v in view.items()} == {
        "guide": ("open", 0, None), "survey": ("locked", 0, "guide"),
        "group": ("locked", 1, "survey")}
    for _ in range(2):
        await api.event(backwards, "questionnaire")
    await deliver(resources, settings, tenant.name)
    view = await api.member_tasks(backwards)
    assert (view["survey"]["status"], view["survey"]["progress"]) == ("locked", 1)
    assert await tickets(resources, tenant, backwards) == 0
    for _ in range(2):
        await api.event(backwards, "follow_guide")
    await deliver(resources, settings, tenant.name, twice=True)
    assert await tickets(resources, tenant, backwards) == 3
    view = await api.member_tasks(backwards)
    assert {k: v["status"] for k, v in view.items()} == {
        "guide": "claimed", "survey": "claimed", "group": "claimed"}

    # In order, one step at a time: each unlocks the next; a later step's event before its
    # prerequisite counts once the prerequisite completes.
    forwards = uid("m")
    await api.event(forwards, "follow_guide")
    await deliver(resources, settings, tenant.name)
    view = await api.member_tasks(forwards)
    assert {k: v["status"] for k, v in view.items()} == {
        "guide": "claimed", "survey": "open", "group": "locked"}
    await join(client, tenant, "g1", forwards, start)
    await deliver(resources, settings, tenant.name)
    assert (await api.member_tasks(forwards))["group"]["status"] == "locked"
    assert await tickets(resources, tenant, forwards) == 1
    for _ in range(2):
        await api.event(forwards, "questionnaire")
        await api.event(forwards, "follow_guide")
    await deliver(resources, settings, tenant.name)
    assert await tickets(resources, tenant, forwards) == 3
    stats = await api.stats("group")
    assert stats["chain"] == [{"task_id": "guide", "completed": 2},
                              {"task_id": "survey", "completed": 2},
                              {"task_id": "group", "completed": 2}]
    assert (stats["started"], stats["completed"], stats["rewarded"]) == (2, 2, 2)
    assert stats["rewards_paid"] == {"points": 0, "tickets": 2, "perks": 0}


# --- periods and concurrency ---------------------------------------------------------------

async def test_a_hundred_concurrent_events_on_a_count_5_daily_task_pay_once_a_day(
        tasks_api: TasksApi, tenant: Tenant, resources: Resources, settings: Settings) -> None:
    api = tasks_api
    box = await api.box()
    await api.define("daily", kind="daily", condition={"action": "check_in", "count": 5},
                     reward={"points": 10, "tickets": {"box_id": box}})
    member = uid("m")
    yesterday = local_noon(today() - timedelta(days=1))
    same = uid("ev")

    async def post(n: int) -> None:
        # Half of them one event sent fifty times, half distinct.
        event_id = same if n % 2 else uid("ev")
        await api.event(member, event_id=event_id, occurred_at=yesterday)

    await asyncio.gather(*(post(n) for n in range(100)))
    bodies = await bodies_of(resources, tenant, "ActionRecorded")
    assert len(bodies) == 51
    # Four workers at once, with batches that overlap each other, and every batch twice.
    chunks = [bodies[i::4] + [b for b in bodies[:10] if b not in bodies[i::4]]
              for i in range(4)]
    async with worker_context(settings):
        await asyncio.gather(*(actors.advance_tasks(chunk) for chunk in chunks * 2))
    assert await outbox_count(resources, tenant, "TaskCompleted") == 1
    assert await outbox_count(resources, tenant, "TaskRewarded") == 1
    await deliver(resources, settings, tenant.name, twice=True)
    assert (await api.points.member(member))["available"] == 10
    assert await tickets(resources, tenant, member) == 1
    assert await completions(resources, tenant, "daily", member) == [
        ((today() - timedelta(days=1)).isoformat(), True)]
    stats = await api.stats("daily", period=(today() - timedelta(days=1)).isoformat())
    assert (stats["started"], stats["completed"], stats["rewarded"]) == (1, 1, 1)

    # The next local day it can be earned again: four are not enough, the fifth is.
    for _ in range(4):
        await api.event(member)
    await deliver(resources, settings, tenant.name)
    view = (await api.member_tasks(member))["daily"]
    assert (view["status"], view["progress"], view["target"], view["period"]) == (
        "open", 4, 5, today().isoformat())
    midnight = datetime.combine(today() + timedelta(days=1), time(0), ZONE)
    assert datetime.fromisoformat(view["period_ends_at"]) == midnight
    await api.event(member)
    await deliver(resources, settings, tenant.name)
    assert (await api.points.member(member))["available"] == 20
    view = (await api.member_tasks(member))["daily"]
    assert (view["status"], view["progress"]) == ("claimed", 5)


async def test_in_shanghai_the_day_turns_at_1600_utc(
        tasks_api: TasksApi, tenant: Tenant, resources: Resources, settings: Settings) -> None:
    api = tasks_api
    await api.define("daily", kind="daily")
    member = uid("m")
    day = today() - timedelta(days=3)
    turn = datetime.combine(day, time(16), UTC)
    await api.event(member, occurred_at=turn - timedelta(seconds=1))
    await api.event(member, occurred_at=turn - timedelta(hours=15))  # same local day
    await deliver(resources, settings, tenant.name)
    assert await completions(resources, tenant, "daily", member) == [(day.isoformat(), True)]
    await api.event(member, occurred_at=turn)
    await deliver(resources, settings, tenant.name)
    assert await completions(resources, tenant, "daily", member) == [
        (day.isoformat(), True), ((day + timedelta(days=1)).isoformat(), True)]
    assert (await api.points.member(member))["available"] == 20


async def test_weekly_and_monthly_periods_and_the_window(
        tasks_api: TasksApi, tenant: Tenant, resources: Resources, settings: Settings) -> None:
    api = tasks_api
    monday = today() - timedelta(days=today().weekday() + 14)
    await api.define("weekly", kind="weekly", condition={"action": "check_in", "count": 3})
    await api.define("windowed", kind="once",
                     starts_at=local_noon(monday).isoformat(),
                     ends_at=local_noon(monday + timedelta(days=1)).isoformat())
    member = uid("m")
    # Sunday and the next Monday are different weeks; Monday and its Sunday the same. The
    # window runs from Monday noon to Tuesday noon.
    await api.event(member, occurred_at=local_noon(monday - timedelta(days=1)))
    await api.event(member, occurred_at=local_noon(monday) - timedelta(minutes=1))  # too early
    await api.event(member, occurred_at=local_noon(monday + timedelta(days=6)))
    await deliver(resources, settings, tenant.name)
    assert await completions(resources, tenant, "weekly", member) == []
    assert await completions(resources, tenant, "windowed", member) == []
    await api.event(member, occurred_at=local_noon(monday + timedelta(days=1)))  # at the end
    await deliver(resources, settings, tenant.name)
    year, week, _ = monday.isocalendar()
    assert await completions(resources, tenant, "weekly", member) == [
        (f"{year}-W{week:02d}", True)]
    assert await completions(resources, tenant, "windowed", member) == []
    await api.event(member, occurred_at=local_noon(monday) + timedelta(hours=3))
    await deliver(resources, settings, tenant.name)
    assert await completions(resources, tenant, "windowed", member) == [("once", True)]
    view = await api.member_tasks(member)
    assert view["windowed"]["status"] == "claimed"
    # A window that ended without the member completing it shows as expired.
    await api.define("missed", starts_at=local_noon(monday).isoformat(),
                     ends_at=local_noon(monday + timedelta(days=2)).isoformat())
    assert (await api.member_tasks(member))["missed"]["status"] == "expired"


# --- streaks -------------------------------------------------------------------------------

async def test_a_streak_of_seven_local_days_gaps_and_late_events(
        tasks_api: TasksApi, tenant: Tenant, resources: Resources, settings: Settings) -> None:
    api = tasks_api
    await api.define("streak", kind="streak", streak_days=7, reward={"points": 70})
    member = uid("m")
    base = today() - timedelta(days=30)

    async def on(*offsets: int) -> None:
        for offset in offsets:
            await api.event(member, occurred_at=local_noon(base + timedelta(days=offset)))
        await deliver(resources, settings, tenant.name)

    # Seven consecutive local days, sent in a scrambled order, twice on one day.
    await on(3, 0, 6, 1, 5, 2, 2)
    assert await completions(resources, tenant, "streak", member) == []
    await on(4)
    assert await completions(resources, tenant, "streak", member) == [(base.isoformat(), True)]
    assert (await api.points.member(member))["available"] == 70
    # Days after the run: 7..9, a gap on 10, then 11..14: the gap breaks the run.
    await on(7, 8, 9, 11, 12, 13, 14)
    assert len(await completions(resources, tenant, "streak", member)) == 1
    # The late event of day 10 mends it: 7..13 is a run, starting on day 7.
    await on(10)
    assert await completions(resources, tenant, "streak", member) == [
        (base.isoformat(), True), ((base + timedelta(days=7)).isoformat(), True)]
    assert (await api.points.member(member))["available"] == 140
    # Days already part of a completed run never count again.
    await on(0, 1, 2, 3, 4, 5, 6)
    assert len(await completions(resources, tenant, "streak", member)) == 2
    # The run alive now: the last three local days.
    await on(28, 29, 30)
    view = (await api.member_tasks(member))["streak"]
    assert (view["status"], view["progress"], view["target"], view["streak_days"]) == (
        "open", 3, 7, 7)
    assert view["period"] == (base + timedelta(days=28)).isoformat()
    assert datetime.fromisoformat(view["period_ends_at"]) == datetime.combine(
        today() + timedelta(days=2), time(0), ZONE)
    stats = await api.stats("streak")
    assert (stats["started"], stats["completed"], stats["rewarded"]) == (1, 2, 2)
    assert stats["rewards_paid"]["points"] == 140


# --- payment -------------------------------------------------------------------------------

async def test_a_crash_between_completion_and_payment_pays_once(
        tasks_api: TasksApi, tenant: Tenant, resources: Resources, settings: Settings,
        stack: Stack) -> None:
    api = tasks_api
    box = await api.box()
    sku = uid("sku")
    response = await api.client.put(f"/rewards/v1/perks/{sku}", headers=api.operator,
                                    json={"name": "Mask", "cost_points": 10, "stock": 5})
    assert response.status_code == 200, response.text
    await api.define("daily", kind="daily",
                     reward={"points": 7, "tickets": {"box_id": box}, "perk": sku})
    first, second = uid("m"), uid("m")
    await api.event(first)
    await api.event(second)
    # The consumer completes both, then the points service is unreachable when it pays.
    broken = Tasks(resources.pool, points_client_with(
        stack, lambda path: path.endswith("/grants")))
    await broken.advance(await bodies_of(resources, tenant, "ActionRecorded"),
                         datetime.now(UTC))
    assert await completions(resources, tenant, "daily", first) == [
        (today().isoformat(), False)]
    assert (await api.points.member(first))["available"] == 0
    assert await tickets(resources, tenant, first) == 0
    assert (await api.member_tasks(first))["daily"]["status"] == "completed"
    # The events again (the relay resends): already applied, nothing more happens.
    await deliver(resources, settings, tenant.name)
    assert await completions(resources, tenant, "daily", first) == [
        (today().isoformat(), False)]
    # A payer that granted the second member's points, then died before recording it.
    working = points_client_with(stack, lambda path: False)
    answer = await working.grant(tenant.name, pay_id("daily", second, today().isoformat()),
                                 second, 7, f"task daily {today().isoformat()}")
    assert answer.status_code == 201
    # The periodic payer leaves the failed payment alone until its retry time...
    async with worker_context(settings):
        await actors.pay_task_rewards()
    assert await completions(resources, tenant, "daily", first) == [
        (today().isoformat(), False)]
    # ...then pays, twice at once and once more: each reward paid once.
    payer = Tasks(resources.pool, working)
    later = datetime.now(UTC) + rules.PAY_RETRY_FIRST
    await asyncio.gather(payer.pay_due(later), payer.pay_due(later))
    await payer.pay_due(later)
    for member in (first, second):
        assert (await api.points.member(member))["available"] == 7
        assert await tickets(resources, tenant, member) == 1
        coupons = (await api.client.get(f"/rewards/v1/members/{member}/coupons",
                                        headers=api.ingest)).json()["items"]
        assert [c["sku"] for c in coupons] == [sku]
        assert await completions(resources, tenant, "daily", member) == [
            (today().isoformat(), True)]
    assert await outbox_count(resources, tenant, "TaskRewarded") == 2
    assert (await api.member_tasks(first))["daily"]["status"] == "claimed"
    stats = await api.stats("daily", period=today().isoformat())
    assert stats["rewards_paid"] == {"points": 14, "tickets": 2, "perks": 2}
    stock = (await api.client.get("/rewards/v1/perks", headers=api.operator)).json()["items"]
    assert next(p["stock"] for p in stock if p["sku"] == sku) == 3


async def test_paying_right_after_completion_waits_for_a_consumer_holding_the_row(
        tasks_api: TasksApi, tenant: Tenant, resources: Resources, stack: Stack) -> None:
    api = tasks_api
    await api.define("daily", kind="daily", reward={"points": 5})
    member = uid("m")
    await api.event(member)
    broken = Tasks(resources.pool, points_client_with(
        stack, lambda path: path.endswith("/grants")))
    now = datetime.now(UTC)
    await broken.advance(await bodies_of(resources, tenant, "ActionRecorded"), now)
    key = ProgressKey(tenant_id=tenant.name, task_id="daily", member_id=member,
                      period=today().isoformat())
    working = Tasks(resources.pool, points_client_with(stack, lambda path: False))
    async with resources.pool.acquire() as conn, conn.transaction():
        # What a consumer counting a later event of the period holds until it commits.
        await conn.execute(
            "SELECT 1 FROM rewards.task_progress WHERE tenant_id = $1 AND member_id = $2"
            " FOR UPDATE", tenant.name, member)
        paying = asyncio.create_task(working.pay_quietly(key, now))
        await asyncio.sleep(0.3)
        assert not paying.done()
        assert not await working.pay(key, now)  # the periodic payer passes over it
    await paying
    assert (await api.points.member(member))["available"] == 5
    assert not await working.pay(key, now)
    assert await completions(resources, tenant, "daily", member) == [
        (today().isoformat(), True)]


async def test_a_manual_task_is_paid_when_claimed_once(
        tasks_api: TasksApi, client: httpx.AsyncClient, tenant: Tenant, resources: Resources,
        settings: Settings) -> None:
    api = tasks_api
    await api.define("manual", kind="daily", claim="manual", reward={"points": 15})
    member = uid("m")
    token = {"Authorization": f"Bearer {await member_token(client, tenant, member)}"}
    nothing = await api.claim(member, "manual", headers=token)
    assert nothing.status_code == 409 and error_code(nothing) == "nothing_to_claim"
    unknown = await api.claim(member, "no-such-task")
    assert unknown.status_code == 404 and error_code(unknown) == "unknown_task"
    await api.event(member, occurred_at=local_noon(today() - timedelta(days=1)))
    await api.event(member)
    await deliver(resources, settings, tenant.name)
    assert (await api.points.member(member))["available"] == 0
    view = (await api.member_tasks(member, headers=token))["manual"]
    assert (view["status"], view["claim"]) == ("completed", "manual")
    other = await api.claim(uid("m"), "manual", headers=token)
    assert other.status_code == 403
    peek = await client.get(f"/rewards/v1/members/{uid('m')}/tasks", headers=token)
    assert peek.status_code == 403
    # Twenty claims at once with different ids: the member has two periods to claim.
    answers = await asyncio.gather(*(api.claim(member, "manual", headers=token)
                                     for _ in range(20)))
    assert sorted(a.status_code for a in answers) == [201, 201] + [409] * 18
    claimed = sorted(a.json()["period"] for a in answers if a.status_code == 201)
    assert claimed == [(today() - timedelta(days=1)).isoformat(), today().isoformat()]
    assert (await api.points.member(member))["available"] == 30
    # A claim replayed answers the same; the member view shows it claimed.
    won = next(a for a in answers if a.status_code == 201)
    again = await api.claim(member, "manual", claim_id=won.json()["claim_id"], headers=token)
    assert (again.status_code, again.json()) == (201, won.json())
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert (await api.member_tasks(member))["manual"]["status"] == "claimed"
    stats = await api.stats("manual")
    assert (stats["completed"], stats["claimed"], stats["rewarded"]) == (2, 2, 2)
    await deliver(resources, settings, tenant.name)
    assert (await api.points.member(member))["available"] == 30


async def test_a_claim_for_a_named_period(tasks_api: TasksApi, tenant: Tenant,
                                          resources: Resources, settings: Settings) -> None:
    api = tasks_api
    await api.define("manual", kind="daily", claim="manual", reward={"points": 5})
    member = uid("m")
    await api.event(member, occurred_at=local_noon(today() - timedelta(days=2)))
    await api.event(member, occurred_at=local_noon(today() - timedelta(days=1)))
    await deliver(resources, settings, tenant.name)
    later = (today() - timedelta(days=1)).isoformat()
    answer = await api.claim(member, "manual", period=later)
    assert (answer.status_code, answer.json()["period"]) == (201, later)
    again = await api.claim(member, "manual", period=later)
    assert again.status_code == 409 and error_code(again) == "nothing_to_claim"
    assert (await api.points.member(member))["available"] == 5


# --- other services' events, tiers ---------------------------------------------------------

async def test_a_group_join_emits_group_joined_and_advances_a_group_task(
        tasks_api: TasksApi, client: httpx.AsyncClient, tenant: Tenant, resources: Resources,
        settings: Settings) -> None:
    api = tasks_api
    await api.define("join_g1", condition={"action": "group_joined",
                                           "attributes": {"group_id": "g1"}},
                     reward={"points": 3})
    await make_group(client, tenant, "g1")
    await make_group(client, tenant, "g2")
    member = uid("m")
    at = datetime.now(UTC) - timedelta(hours=1)
    await join(client, tenant, "g2", member, at)
    await deliver(resources, settings, tenant.name)
    assert await completions(resources, tenant, "join_g1", member) == []
    await join(client, tenant, "g1", member, at)
    await join(client, tenant, "g1", member, at)  # already in: no second event
    rows = await resources.pool.fetch(
        "SELECT payload FROM fuli.outbox WHERE tenant_id = $1 AND event_type = 'GroupJoined'",
        tenant.name)
    assert len(rows) == 1
    assert b'"group_id":"g1"' in bytes(rows[0]["payload"]).replace(b" ", b"")
    await deliver(resources, settings, tenant.name)
    assert await completions(resources, tenant, "join_g1", member) == [("once", True)]
    assert (await api.points.member(member))["available"] == 3


async def test_tiers_decide_who_may_take_a_task(tasks_api: TasksApi, tenant: Tenant,
                                                resources: Resources,
                                                settings: Settings) -> None:
    api = tasks_api
    await api.define("vip_only", tiers=["vip"])
    vip, fan = uid("m"), uid("m")
    for member, tier in ((vip, "vip"), (fan, "fan")):
        await resources.pool.execute(
            "INSERT INTO rewards.member_tiers (tenant_id, member_id, tier, updated_at)"
            " VALUES ($1, $2, $3, now())", tenant.name, member, tier)
        await api.event(member)
    await deliver(resources, settings, tenant.name)
    assert await completions(resources, tenant, "vip_only", vip) == [("once", True)]
    assert await completions(resources, tenant, "vip_only", fan) == []
    assert "vip_only" in await api.member_tasks(vip)
    assert "vip_only" not in await api.member_tasks(fan)


async def test_coupon_uses_count_with_their_sku(tasks_api: TasksApi, client: httpx.AsyncClient,
                                                tenant: Tenant, resources: Resources,
                                                settings: Settings) -> None:
    api = tasks_api
    sku = uid("sku")
    response = await client.put(f"/rewards/v1/perks/{sku}", headers=api.operator,
                                json={"name": "Mask", "cost_points": 1})
    assert response.status_code == 200, response.text
    await api.define("use_mask", condition={"action": "coupon_used",
                                            "attributes": {"sku": sku}}, reward={"points": 4})
    member = uid("m")
    issued = await client.post("/rewards/v1/issues", headers=api.operator, json={
        "issue_id": uid("is"), "reason": "test", "kind": "perk", "sku": sku,
        "member_ids": [member]})
    assert issued.status_code == 201, issued.text
    coupons = (await client.get(f"/rewards/v1/members/{member}/coupons",
                                headers=api.ingest)).json()["items"]
    used = await client.post(f"/rewards/v1/coupons/{coupons[0]['coupon_id']}/use",
                             headers=api.ingest, json={"use_id": uid("use")})
    assert used.status_code == 201, used.text
    await deliver(resources, settings, tenant.name)
    assert await completions(resources, tenant, "use_mask", member) == [("once", True)]
    assert (await api.points.member(member))["available"] == 4
