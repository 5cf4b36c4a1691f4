from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Tenant
from tests.points.helpers import Points, uid


class Rewards:
    def __init__(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        self.client = client
        self.tenant = tenant
        self.points = Points(client, tenant)
        self.operator = tenant.headers(tenant.operator)
        self.ingest = tenant.headers(tenant.ingest)

    async def perk(self, sku: str | None = None, **fields: Any) -> str:
        sku = sku or uid("sku")
        body = {"name": "Trial kit", "cost_points": 10, **fields}
        response = await self.client.put(f"/rewards/v1/perks/{sku}", headers=self.operator,
                                         json=body)
        assert response.status_code == 200, response.text
        return sku

    async def codes(self, sku: str, codes: list[str]) -> httpx.Response:
        return await self.client.post(f"/rewards/v1/perks/{sku}/codes", headers=self.operator,
                                      json={"codes": codes})

    async def redeem(self, member_id: str, sku: str, quantity: int = 1,
                     redemption_id: str | None = None,
                     headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.post("/rewards/v1/redemptions", headers=headers or self.ingest,
                                      json={"redemption_id": redemption_id or uid("rd"),
                                            "member_id": member_id, "sku": sku,
                                            "quantity": quantity})

    async def cancel(self, redemption_id: str) -> httpx.Response:
        return await self.client.post(f"/rewards/v1/redemptions/{redemption_id}/cancel",
                                      headers=self.operator)

    async def coupons(self, member_id: str, headers: dict[str, str] | None = None
                      ) -> httpx.Response:
        return await self.client.get(f"/rewards/v1/members/{member_id}/coupons",
                                     headers=headers or self.ingest)

    async def stock(self, sku: str) -> int | None:
        response = await self.client.get("/rewards/v1/perks", headers=self.operator)
        return next(p["stock"] for p in response.json()["items"] if p["sku"] == sku)


@pytest.fixture
def rewards(client: httpx.AsyncClient, tenant: Tenant) -> Rewards:
    return Rewards(client, tenant)
