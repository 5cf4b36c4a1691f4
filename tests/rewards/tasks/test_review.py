"""Tasks: failing tests that prove bugs found in review (each should pass once fixed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.rewards.tasks import tasks as tasks_module
from services.rewards.tasks.tasks import Tasks
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from services.runtime.stack import Stack
from tests.rewards.helpers import points_client_with
from tests.rewards.tasks.test_tasks import (
    TasksApi,
    bodies_of,
    completions,
    local_noon,
    tasks_api,  # noqa: F401 - the fixture
    today,
)
from tests.support.api import Tenant, uid
from tests.support.bus import deliver, worker_context


async def test_a_completion_stored_manual_shows_how_it_is_paid_after_the_task_turns_auto(
        tasks_api: TasksApi, tenant: Tenant, resources: Resources,  # noqa: F811
        settings: Settings) -> None:
    """Completed while manual, then the operator switches the task to auto: nothing ever pays
    it but a claim, yet the member view says claim: auto (so no app offers a claim)."""
    api = tasks_api
    await api.define("t", kind="daily", claim="manual", reward={"points": 5})
    member = uid("m")
    await api.event(member)
    await deliver(resources, settings, tenant.name)
    await api.define("t", kind="daily", claim="auto", reward={"points": 5})
    async with worker_context(settings):
        from services.rewards.tasks import actors
        await actors.pay_task_rewards()
    view = (await api.member_tasks(member))["t"]
    paid = (await api.points.member(member))["available"] == 5
    # Either the periodic payer pays it, or the view tells the member to claim it.
    assert paid or (view["status"], view["claim"]) == ("completed", "manual"), view


async def test_changing_a_daily_task_into_a_streak_still_completes_its_runs(
        tasks_api: TasksApi, tenant: Tenant, resources: Resources,  # noqa: F811
        settings: Settings) -> None:
    api = tasks_api
    await api.define("t", kind="daily", condition={"action": "check_in", "count": 2})
    member = uid("m")
    yesterday = today() - timedelta(days=1)
    await api.event(member, occurred_at=local_noon(yesterday))  # daily row, 1 of 2
    await deliver(resources, settings, tenant.name)
    await api.define("t", kind="streak", streak_days=2)
    await api.event(member, occurred_at=local_noon(yesterday) + timedelta(minutes=1))
    await api.event(member, occurred_at=local_noon(today()))
    await deliver(resources, settings, tenant.name)
    # Two consecutive local days with the action: the streak run (yesterday, today) is done.
    assert [p for p, _ in await completions(resources, tenant, "t", member)] == [
        yesterday.isoformat()]


async def test_streak_days_count_whatever_order_they_arrive_in(
        tasks_api: TasksApi, tenant: Tenant, resources: Resources,  # noqa: F811
        settings: Settings) -> None:
    """README: 'Days count, not the order events arrive in'. Six consecutive days of a
    3-day streak make two runs when sent oldest first; newest first they make one."""
    api = tasks_api
    await api.define("s", kind="streak", streak_days=3)
    base = today() - timedelta(days=20)
    runs = []
    for order in ([0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]):
        member = uid("m")
        for offset in order:
            await api.event(member, occurred_at=local_noon(base + timedelta(days=offset)))
            await deliver(resources, settings, tenant.name)
        runs.append(len(await completions(resources, tenant, "s", member)))
    assert runs[0] == runs[1], runs


async def test_rewards_that_cannot_be_paid_do_not_starve_the_periodic_payer(
        tasks_api: TasksApi, tenant: Tenant, resources: Resources,  # noqa: F811
        settings: Settings, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """A perk reward whose stock ran out fails for ever; the payer takes the oldest unpaid
    completions first, PAY_BATCH at a time, so once PAY_BATCH of those exist it never gets to
    a later completion whose payment a points outage interrupted (PAY_BATCH is 1 here to
    keep the test small; it is 200 in production)."""
    monkeypatch.setattr(tasks_module, "PAY_BATCH", 1)
    api = tasks_api
    sku = uid("sku")
    response = await api.client.put(f"/rewards/v1/perks/{sku}", headers=api.operator,
                                    json={"name": "Mask", "cost_points": 10, "stock": 0})
    assert response.status_code == 200, response.text
    await api.define("perk", reward={"perk": sku})
    await api.define("pts", condition={"action": "buy"}, reward={"points": 3})
    poisoned, member = uid("m"), uid("m")
    await api.event(poisoned)
    await deliver(resources, settings, tenant.name)
    await api.event(member, "buy")
    broken = Tasks(resources.pool, points_client_with(
        stack, lambda request: request.url.path.endswith("/grants")))
    await broken.advance(await bodies_of(resources, tenant, "ActionRecorded"),
                         datetime.now(UTC))
    assert await completions(resources, tenant, "pts", member) == [("once", False)]
    async with worker_context(settings):
        from services.rewards.tasks import actors
        for _ in range(3):
            await actors.pay_task_rewards()
    assert await completions(resources, tenant, "pts", member) == [("once", True)]


async def test_an_unclaimed_manual_completion_of_an_earlier_period_shows_to_the_member(
        tasks_api: TasksApi, tenant: Tenant, resources: Resources,  # noqa: F811
        settings: Settings) -> None:
    """Yesterday's completion waits for its claim, but the member view shows only today's
    period, open: nothing tells the member a reward is waiting."""
    api = tasks_api
    await api.define("manual", kind="daily", claim="manual", reward={"points": 1})
    member = uid("m")
    await api.event(member, occurred_at=local_noon(today() - timedelta(days=1)))
    await deliver(resources, settings, tenant.name)
    view = (await api.member_tasks(member))["manual"]
    assert view["status"] == "completed", view


async def test_an_unpaid_auto_completion_is_not_offered_for_a_claim_after_the_task_turns_manual(
        tasks_api: TasksApi, tenant: Tenant, resources: Resources,  # noqa: F811
        settings: Settings, stack: Stack) -> None:
    """Completed while auto, its payment interrupted, then the task turns manual: the view
    says completed, claim manual, but the claim answers 409 nothing_to_claim."""
    api = tasks_api
    await api.define("t", kind="daily", reward={"points": 5})
    member = uid("m")
    await api.event(member)
    broken = Tasks(resources.pool, points_client_with(
        stack, lambda request: request.url.path.endswith("/grants")))
    await broken.advance(await bodies_of(resources, tenant, "ActionRecorded"),
                         datetime.now(UTC))
    await api.define("t", kind="daily", claim="manual", reward={"points": 5})
    view = (await api.member_tasks(member))["t"]
    claim = await api.claim(member, "t")
    offered = (view["status"], view["claim"]) == ("completed", "manual")
    assert not offered or claim.status_code == 201, (view, claim.text)
