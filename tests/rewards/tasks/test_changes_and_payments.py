"""Tasks whose definition changes under members' progress, rewards whose payment fails for a
while or for good, rewards waiting for a claim from earlier periods, and the periods the
figures take."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.rewards.tasks import rules
from services.rewards.tasks import tasks as tasks_module
from services.rewards.tasks.tasks import Tasks
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from services.runtime.stack import Stack
from tests.rewards.helpers import points_client_with
from tests.rewards.tasks.support import TasksApi, bodies_of, completions, local_noon, today
from tests.support.api import Tenant, error_code, uid
from tests.support.bus import deliver


def payers(resources: Resources, stack: Stack) -> tuple[Tasks, Tasks]:
    """One whose points grants cannot reach the points service, and one whose can."""
    broken = Tasks(resources.pool, points_client_with(
        stack, lambda path: path.endswith("/grants")))
    working = Tasks(resources.pool, points_client_with(stack, lambda path: False))
    return broken, working


def after_retry() -> datetime:
    return datetime.now(UTC) + rules.PAY_RETRY_FIRST


async def test_completions_waiting_for_a_claim_are_paid_when_the_task_turns_auto(
        tasks_api: TasksApi, tenant: Tenant, resources: Resources, settings: Settings,
        stack: Stack) -> None:
    api = tasks_api
    await api.define("t", kind="daily", claim="manual", reward={"points": 5})
    member = uid("m")
    await api.event(member)
    await deliver(resources, settings, tenant.name)
    view = (await api.member_tasks(member))["t"]
    assert (view["status"], view["claim"], view["to_claim"]) == (
        "completed", "manual", [today().isoformat()])
    await api.define("t", kind="daily", claim="auto", reward={"points": 5})
    _, working = payers(resources, stack)
    assert await working.pay_due(datetime.now(UTC)) == 1
    assert (await api.points.member(member))["available"] == 5
    view = (await api.member_tasks(member))["t"]
    assert (view["status"], view["claim"], view["to_claim"]) == ("claimed", "auto", [])


async def test_a_completion_made_automatic_is_paid_so_after_the_task_turns_manual(
        tasks_api: TasksApi, tenant: Tenant, resources: Resources, stack: Stack) -> None:
    api = tasks_api
    await api.define("t", kind="daily", reward={"points": 5})
    member = uid("m")
    await api.event(member)
    broken, working = payers(resources, stack)
    await broken.advance(await bodies_of(resources, tenant, "ActionRecorded"),
                         datetime.now(UTC))
    await api.define("t", kind="daily", claim="manual", reward={"points": 9})
    view = (await api.member_tasks(member))["t"]
    # It shows as recorded: automatic, its reward of then, nothing to claim.
    assert (view["status"], view["claim"], view["reward"]["points"], view["to_claim"]) == (
        "completed", "auto", 5, [])
    refused = await api.claim(member, "t")
    assert refused.status_code == 409 and error_code(refused) == "nothing_to_claim"
    assert await working.pay_due(after_retry()) == 1
    assert (await api.points.member(member))["available"] == 5


async def test_a_task_keeps_its_kind_once_members_have_progress(
        tasks_api: TasksApi, tenant: Tenant, resources: Resources,
        settings: Settings) -> None:
    api = tasks_api
    await api.define("fresh", kind="daily")
    assert (await api.put("fresh", kind="weekly")).status_code == 200  # no progress yet
    await api.define("t", kind="daily", condition={"action": "check_in", "count": 2})
    member = uid("m")
    await api.event(member, occurred_at=local_noon(today() - timedelta(days=1)))
    await deliver(resources, settings, tenant.name)
    audited = await resources.pool.fetchval(
        "SELECT count(*) FROM rewards.task_audit WHERE tenant_id = $1 AND task_id = 't'",
        tenant.name)
    for change in ({"kind": "streak", "streak_days": 2}, {"kind": "weekly"}):
        refused = await api.put("t", condition={"action": "check_in", "count": 1}, **change)
        assert refused.status_code == 409, refused.text
        assert error_code(refused) == "kind_fixed"
        assert refused.json()["error"]["details"]["kind"] == "daily"
    shown = (await api.client.get("/rewards/v1/tasks/t", headers=api.operator)).json()
    assert (shown["kind"], shown["condition"]["count"]) == ("daily", 2)
    assert await resources.pool.fetchval(
        "SELECT count(*) FROM rewards.task_audit WHERE tenant_id = $1 AND task_id = 't'",
        tenant.name) == audited
    # Other changes still go through.
    assert (await api.put("t", name="Renamed", kind="daily")).status_code == 200


async def test_rewards_that_cannot_be_paid_do_not_starve_the_periodic_payer(
        tasks_api: TasksApi, tenant: Tenant, resources: Resources, settings: Settings,
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """A perk reward whose stock ran out fails every time; the payer puts each failed
    completion off, longer after each failure, so it reaches the others (one completion per
    run here to keep the test small)."""
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
    broken, working = payers(resources, stack)
    await broken.advance(await bodies_of(resources, tenant, "ActionRecorded"),
                         datetime.now(UTC))
    assert await completions(resources, tenant, "pts", member) == [("once", False)]
    # Nothing is due again before its retry time.
    assert await working.pay_due(datetime.now(UTC)) == 0
    later = after_retry()
    for _ in range(3):
        await working.pay_due(later)
    assert await completions(resources, tenant, "pts", member) == [("once", True)]
    assert (await api.points.member(member))["available"] == 3
    attempts = await resources.pool.fetchval(
        "SELECT pay_attempts FROM rewards.task_progress WHERE tenant_id = $1"
        " AND task_id = 'perk' AND member_id = $2", tenant.name, poisoned)
    assert attempts == 2, "failed right after completing, then once when it fell due again"
    assert await completions(resources, tenant, "perk", poisoned) == [("once", False)]


async def test_an_earlier_period_waiting_for_a_claim_shows_and_is_claimed(
        tasks_api: TasksApi, tenant: Tenant, resources: Resources,
        settings: Settings) -> None:
    api = tasks_api
    await api.define("manual", kind="daily", claim="manual", reward={"points": 1})
    member = uid("m")
    yesterday = (today() - timedelta(days=1)).isoformat()
    await api.event(member, occurred_at=local_noon(today() - timedelta(days=1)))
    await deliver(resources, settings, tenant.name)
    view = (await api.member_tasks(member))["manual"]
    assert (view["status"], view["period"], view["to_claim"]) == (
        "open", today().isoformat(), [yesterday])
    claimed = await api.claim(member, "manual")
    assert claimed.status_code == 201, claimed.text
    assert claimed.json()["period"] == yesterday
    assert (await api.member_tasks(member))["manual"]["to_claim"] == []
    assert (await api.points.member(member))["available"] == 1


@pytest.mark.parametrize(("kind", "period"), [
    ("daily", "once\n"), ("daily", "2026-W49"), ("weekly", "2026-12-06"),
    ("monthly", "2026-12-06"), ("once", "2026-12"), ("streak", "2026-W49"),
    ("daily", "٢٠٢٦-12-06")])
async def test_figures_take_only_the_task_kinds_own_periods(
        tasks_api: TasksApi, kind: str, period: str) -> None:
    api = tasks_api
    task_id = uid("t")
    extra = {"streak_days": 3} if kind == "streak" else {}
    await api.define(task_id, kind=kind, **extra)
    refused = await api.client.get(f"/rewards/v1/tasks/{task_id}/stats",
                                   headers=api.operator, params={"period": period})
    assert refused.status_code == 422, refused.text
    good = {"once": "once", "daily": "2026-12-06", "weekly": "2026-W49", "monthly": "2026-12",
            "streak": "2026-12-06"}[kind]
    assert (await api.client.get(f"/rewards/v1/tasks/{task_id}/stats", headers=api.operator,
                                 params={"period": good})).status_code == 200
