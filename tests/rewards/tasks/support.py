"""What the task tests share: the tasks API as the tests drive it, the tenant's local days,
and reads of what the consumers and payers stored."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from services.runtime.outbox import OUTBOX_COLUMNS, envelope_json
from services.runtime.resources import Resources
from tests.support.api import Rewards, Tenant, uid

ZONE = ZoneInfo("Asia/Shanghai")  # the test tenants' zone
ACTIONS = ("follow_guide", "questionnaire", "check_in", "buy")


def local_noon(day: date) -> datetime:
    """Noon of the tenant's local ``day``; for today before noon, a moment ago (an event may
    not be in the future)."""
    noon = datetime.combine(day, time(12), ZONE)
    return min(noon, datetime.now(ZONE) - timedelta(seconds=1)) if day == today() else noon


def today() -> date:
    return datetime.now(ZONE).date()


class TasksApi(Rewards):
    async def setup(self) -> None:
        for action in ACTIONS:
            assert (await self.points.put_rule(action, points=0)).status_code == 200

    async def put(self, task_id: str, **fields: Any) -> httpx.Response:
        body = {"name": f"Task {task_id}", "kind": "once",
                "condition": {"action": "check_in"}, "reward": {"points": 10}, **fields}
        return await self.client.put(f"/rewards/v1/tasks/{task_id}", headers=self.operator,
                                     json=body)

    async def define(self, task_id: str, **fields: Any) -> dict[str, Any]:
        response = await self.put(task_id, **fields)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def box(self, box_id: str = "welcome") -> str:
        response = await self.client.put(f"/rewards/v1/boxes/{box_id}", headers=self.operator,
                                         json={"name": "Welcome box", "cost_points": 10,
                                               "prizes": [{"prize_id": "hug", "name": "Hug",
                                                           "weight": 1, "kind": "nothing"}]})
        assert response.status_code == 200, response.text
        return box_id

    async def event(self, member: str, action: str = "check_in", **fields: Any) -> str:
        if isinstance(fields.get("occurred_at"), datetime):
            fields["occurred_at"] = fields["occurred_at"].isoformat()
        response = await self.points.event(member, action, **fields)
        assert response.status_code == 201, response.text
        return str(response.json()["event_id"])

    async def member_tasks(self, member: str,
                           headers: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
        response = await self.client.get(f"/rewards/v1/members/{member}/tasks",
                                         headers=headers or self.ingest)
        assert response.status_code == 200, response.text
        return {item["task_id"]: item for item in response.json()["items"]}

    async def claim(self, member: str, task_id: str, claim_id: str | None = None,
                    headers: dict[str, str] | None = None, **fields: Any) -> httpx.Response:
        return await self.client.post(
            f"/rewards/v1/members/{member}/tasks/{task_id}/claims",
            headers=headers or self.ingest, json={"claim_id": claim_id or uid("claim"),
                                                  **fields})

    async def stats(self, task_id: str, **params: Any) -> dict[str, Any]:
        response = await self.client.get(f"/rewards/v1/tasks/{task_id}/stats",
                                         headers=self.operator, params=params)
        assert response.status_code == 200, response.text
        return dict(response.json())


async def tickets(resources: Resources, tenant: Tenant, member: str,
                  box_id: str = "welcome") -> int:
    count = await resources.pool.fetchval(
        "SELECT count FROM rewards.tickets WHERE tenant_id = $1 AND member_id = $2"
        " AND box_id = $3", tenant.name, member, box_id)
    return int(count or 0)


async def outbox_count(resources: Resources, tenant: Tenant, event_type: str) -> int:
    return int(await resources.pool.fetchval(
        "SELECT count(*) FROM fuli.outbox WHERE tenant_id = $1 AND event_type = $2",
        tenant.name, event_type))


async def completions(resources: Resources, tenant: Tenant, task_id: str,
                      member: str) -> list[tuple[str, bool]]:
    """(period, paid) of the member's completions of the task."""
    rows = await resources.pool.fetch(
        "SELECT period, rewarded_at IS NOT NULL AS paid FROM rewards.task_progress"
        " WHERE tenant_id = $1 AND task_id = $2 AND member_id = $3"
        " AND completed_at IS NOT NULL ORDER BY period", tenant.name, task_id, member)
    return [(r["period"], r["paid"]) for r in rows]


async def bodies_of(resources: Resources, tenant: Tenant, event_type: str) -> list[str]:
    rows = await resources.pool.fetch(
        f"SELECT {OUTBOX_COLUMNS} FROM fuli.outbox o WHERE o.tenant_id = $1"
        " AND o.event_type = $2 ORDER BY o.id", tenant.name, event_type)
    return [envelope_json(row) for row in rows]
