"""HTTP helpers shared by the tests: tenants and their keys, member tokens, the error envelope,
and thin clients of the points and rewards APIs."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from services.runtime import tenants
from services.runtime.db import Pool


@dataclass(frozen=True)
class Tenant:
    name: str
    admin: str
    operator: str
    ingest: str

    @staticmethod
    def headers(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


async def make_tenant(pool: Pool, time_zone: str = "Asia/Shanghai") -> Tenant:
    name = f"t-{secrets.token_hex(6)}"
    async with pool.acquire() as conn:
        admin = await tenants.create_tenant(conn, name, time_zone)
        operator = await tenants.create_key(conn, name, "operator")
        ingest = await tenants.create_key(conn, name, "ingest")
    return Tenant(name, admin.key, operator.key, ingest.key)


async def member_token(client: httpx.AsyncClient, tenant: Tenant, member_id: str,
                       ttl_s: int = 600) -> str:
    response = await client.post("/points/v1/member-tokens", headers=tenant.headers(tenant.ingest),
                                 json={"member_id": member_id, "ttl_s": ttl_s})
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def error_code(response: httpx.Response) -> str:
    body = msgspec.json.decode(response.content)
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return str(body["error"]["code"])


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

    async def hold_batch(self, holds: list[dict[str, Any]]) -> httpx.Response:
        return await self.client.post("/points/v1/holds/batch", headers=self.ingest,
                                      json={"holds": holds})

    async def settle_batch(self, settlements: list[dict[str, Any]]) -> httpx.Response:
        return await self.client.post("/points/v1/holds/settlements", headers=self.ingest,
                                      json={"settlements": settlements})

    async def capture(self, hold_id: str) -> httpx.Response:
        return await self.client.post(f"/points/v1/holds/{hold_id}/capture", headers=self.ingest)

    async def void(self, hold_id: str) -> httpx.Response:
        return await self.client.post(f"/points/v1/holds/{hold_id}/void", headers=self.ingest)

    async def refund(self, hold_id: str, refund_id: str | None = None) -> httpx.Response:
        return await self.client.post(f"/points/v1/holds/{hold_id}/refund", headers=self.ingest,
                                      json={"refund_id": refund_id or uid("rf")})

    async def move(self, from_member_id: str, to_member_id: str, points: int,
                   move_id: str | None = None) -> httpx.Response:
        return await self.client.post("/points/v1/moves", headers=self.ingest, json={
            "move_id": move_id or uid("mv"), "from_member_id": from_member_id,
            "to_member_id": to_member_id, "points": points, "reason": "test move"})

    async def retire(self, member_id: str, points: int,
                     retirement_id: str | None = None) -> httpx.Response:
        return await self.client.post("/points/v1/retirements", headers=self.operator, json={
            "retirement_id": retirement_id or uid("rt"), "member_id": member_id,
            "points": points, "reason": "test retirement"})

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

    async def set_multiplier(self, member_id: str, body: Any,
                             headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.put(f"/points/v1/members/{member_id}/earn-multiplier",
                                     headers=headers or self.admin, json=body)

    async def assert_ledger_ok(self) -> None:
        response = await self.client.get("/points/v1/ledger/check", headers=self.admin)
        assert response.status_code == 200, response.text
        assert response.json() == {"ok": True, "problems": []}, response.json()


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
