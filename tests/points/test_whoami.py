"""GET /points/v1/whoami: any caller learns its tenant, the tenant's time zone, its role and its
key or member."""

from __future__ import annotations

import httpx

from services.runtime.resources import Resources
from services.runtime.tenants import key_id_of
from tests.support.api import Tenant, error_code, make_tenant, member_token, uid


async def whoami(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.get("/points/v1/whoami", headers=Tenant.headers(key))


async def test_each_kind_of_caller_is_told_who_it_is(client: httpx.AsyncClient,
                                                     resources: Resources) -> None:
    tenant = await make_tenant(resources.pool, time_zone="Europe/Berlin")
    keys = {"admin": tenant.admin, "operator": tenant.operator, "ingest": tenant.ingest}
    for role, key in keys.items():
        response = await whoami(client, key)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "tenant_id": tenant.name, "time_zone": "Europe/Berlin", "role": role,
            "key_id": key_id_of(key),
            "label": "first admin key" if role == "admin" else None, "member_id": None}

    created = await client.post("/points/v1/keys", headers=Tenant.headers(tenant.admin),
                                json={"role": "operator", "label": "console, Lin"})
    assert created.status_code == 201, created.text
    labelled = await whoami(client, created.json()["key"])
    assert labelled.json()["label"] == "console, Lin"
    assert labelled.json()["key_id"] == created.json()["key_id"]

    member = uid("m")
    token = await member_token(client, tenant, member)
    as_member = await whoami(client, token)
    assert as_member.status_code == 200, as_member.text
    assert as_member.json() == {"tenant_id": tenant.name, "time_zone": "Europe/Berlin",
                                "role": "member", "key_id": None, "label": None,
                                "member_id": member}


async def test_a_tenant_without_a_zone_of_its_own_has_the_default(client: httpx.AsyncClient,
                                                                  resources: Resources) -> None:
    tenant = await make_tenant(resources.pool)
    assert (await whoami(client, tenant.ingest)).json()["time_zone"] == "Asia/Shanghai"


async def test_a_wrong_revoked_or_missing_key_is_401(client: httpx.AsyncClient,
                                                     resources: Resources) -> None:
    tenant = await make_tenant(resources.pool)
    wrong = await whoami(client, tenant.admin[:-4] + "abcd")
    assert wrong.status_code == 401 and error_code(wrong) == "unauthorized"
    missing = await client.get("/points/v1/whoami")
    assert missing.status_code == 401 and error_code(missing) == "unauthorized"
    revoked = await client.delete(f"/points/v1/keys/{key_id_of(tenant.operator)}",
                                  headers=Tenant.headers(tenant.admin))
    assert revoked.status_code == 204
    after = await whoami(client, tenant.operator)
    assert after.status_code == 401 and error_code(after) == "unauthorized"
