"""Small HTTP helpers for points tests."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.conftest import Tenant


def uid(prefix: str = "id") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Points:
    """The points API of one tenant, through one client."""

    def __init__(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        self.client = client
        self.tenant = tenant
        self.ingest = tenant.headers(tenant.ingest)
        self.admin = tenant.headers(tenant.admin)
        self.operator = tenant.headers(tenant.operator)

    async def event(self, member_id: str, action: str = "speak", **fields: Any) -> httpx.Response:
        body = {"event_id": fields.pop("event_id", uid("ev")), "member_id": member_id,
                "action": action, **fields}
        return await self.client.post("/points/v1/events", headers=self.ingest, json=body)

    async def grant(self, items: list[dict[str, Any]], grant_id: str | None = None,
                    reason: str = "test grant") -> httpx.Response:
        return await self.client.post("/points/v1/grants", headers=self.operator, json={
            "grant_id": grant_id or uid("grant"), "reason": reason, "items": items})

    async def give(self, member_id: str, points: int, **item: Any) -> None:
        response = await self.grant([{"member_id": member_id, "points": points, **item}])
        assert response.status_code == 201, response.text

    async def debit(self, member_id: str, points: int, debit_id: str | None = None,
                    reason: str = "test debit") -> httpx.Response:
        return await self.client.post("/points/v1/debits", headers=self.ingest, json={
            "debit_id": debit_id or uid("debit"), "member_id": member_id, "points": points,
            "reason": reason})

    async def hold(self, member_id: str, points: int, hold_id: str | None = None,
                   expires_in_s: int = 900) -> httpx.Response:
        return await self.client.post("/points/v1/holds", headers=self.ingest, json={
            "hold_id": hold_id or uid("hold"), "member_id": member_id, "points": points,
            "reason": "test hold", "expires_in_s": expires_in_s})

    async def capture(self, hold_id: str) -> httpx.Response:
        return await self.client.post(f"/points/v1/holds/{hold_id}/capture", headers=self.ingest)

    async def void(self, hold_id: str) -> httpx.Response:
        return await self.client.post(f"/points/v1/holds/{hold_id}/void", headers=self.ingest)

    async def reverse(self, event_id: str, reversal_id: str | None = None,
                      amount_cents: int | None = None) -> httpx.Response:
        body: dict[str, Any] = {"reversal_id": reversal_id or uid("rev")}
        if amount_cents is not None:
            body["amount_cents"] = amount_cents
        return await self.client.post(f"/points/v1/events/{event_id}/reversal",
                                      headers=self.ingest, json=body)

    async def member(self, member_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/points/v1/members/{member_id}", headers=self.ingest)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def entries(self, member_id: str, **params: Any) -> dict[str, Any]:
        response = await self.client.get(f"/points/v1/members/{member_id}/entries",
                                         headers=self.ingest, params=params)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def put_rule(self, action: str, **rule: Any) -> httpx.Response:
        return await self.client.put(f"/points/v1/rules/{action}", headers=self.admin, json=rule)

    async def assert_ledger_ok(self) -> None:
        response = await self.client.get("/points/v1/ledger/check", headers=self.admin)
        assert response.status_code == 200, response.text
        assert response.json() == {"ok": True, "problems": []}, response.json()
