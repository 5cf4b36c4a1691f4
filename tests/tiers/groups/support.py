"""The groups API in the tests of groups, reports and trends."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from tests.support.api import Tenant

LADDER = {"mode": "threshold", "tiers": [
    {"name": "fan"},
    {"name": "member", "min": {"spend_cents": 30_000}},
    {"name": "vip", "min": {"spend_cents": 100_000}}]}


class GroupsApi:
    """The groups API of one tenant, through one client."""

    def __init__(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        self.client = client
        self.operator = tenant.headers(tenant.operator)
        self.admin = tenant.headers(tenant.admin)

    async def setup(self, model: dict[str, Any] | None = None) -> None:
        assert (await self.client.put("/tiers/v1/policy", headers=self.admin,
                                      json=LADDER)).status_code == 200
        if model is not None:
            response = await self.client.put("/tiers/v1/value-model", headers=self.admin,
                                             json=model)
            assert response.status_code == 200, response.text

    async def put(self, group_id: str, **fields: Any) -> httpx.Response:
        body = {"name": f"Group {group_id}", "tier": "member", "kind": "member", **fields}
        return await self.client.put(f"/tiers/v1/groups/{group_id}", headers=self.operator,
                                     json=body)

    async def create(self, group_id: str, **fields: Any) -> None:
        response = await self.put(group_id, **fields)
        assert response.status_code == 200, response.text

    async def get(self, group_id: str) -> httpx.Response:
        return await self.client.get(f"/tiers/v1/groups/{group_id}", headers=self.operator)

    async def join(self, group_id: str, member: str, at: datetime) -> httpx.Response:
        return await self.client.put(f"/tiers/v1/groups/{group_id}/members/{member}",
                                     headers=self.operator, params={"at": at.isoformat()})

    async def leave(self, group_id: str, member: str, at: datetime) -> httpx.Response:
        return await self.client.delete(f"/tiers/v1/groups/{group_id}/members/{member}",
                                        headers=self.operator, params={"at": at.isoformat()})

    async def dissolve(self, group_id: str, at: datetime | None = None) -> httpx.Response:
        return await self.client.post(f"/tiers/v1/groups/{group_id}/dissolution",
                                      headers=self.operator,
                                      json={"at": at.isoformat()} if at else None)

    async def trends(self, path: str = "/tiers/v1/groups/trends", **params: Any
                     ) -> httpx.Response:
        return await self.client.get(path, headers=self.operator, params=params)

    async def periods(self, path: str = "/tiers/v1/groups/trends", **params: Any
                      ) -> list[dict[str, Any]]:
        response = await self.trends(path, **params)
        assert response.status_code == 200, response.text
        return list(response.json()["periods"])

    async def listing(self, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            response = await self.client.get("/tiers/v1/groups", headers=self.operator,
                                             params={**params, **({"cursor": cursor}
                                                                  if cursor else {})})
            assert response.status_code == 200, response.text
            items += response.json()["items"]
            cursor = response.json()["next_cursor"]
            if cursor is None:
                return items

    async def report(self, group_id: str, at: datetime, period: str = "week") -> dict[str, Any]:
        response = await self.client.get(f"/tiers/v1/groups/{group_id}/report",
                                         headers=self.operator,
                                         params={"period": period, "at": at.isoformat()})
        assert response.status_code == 200, response.text
        return dict(response.json())

