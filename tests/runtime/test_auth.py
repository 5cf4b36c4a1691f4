from __future__ import annotations

import asyncio
import time

import httpx
import jwt

from services.runtime.resources import Resources
from tests.support.api import Tenant, error_code, make_tenant, member_token


async def test_no_token_is_401(probe: httpx.AsyncClient) -> None:
    response = await probe.get("/probe/v1/members/m1")
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"


async def test_malformed_and_unknown_keys_are_401(probe: httpx.AsyncClient) -> None:
    for header in ("Basic abc", "Bearer", "Bearer fuli_0123456789abcdef_notarealsecretvalue000",
                   "Bearer a.b.c", "Bearer " + "x" * 40):
        response = await probe.get("/probe/v1/members/m1", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert error_code(response) == "unauthorized"


async def test_roles(client: httpx.AsyncClient, probe: httpx.AsyncClient,
                     tenant: Tenant) -> None:
    ok = await probe.get("/probe/v1/operator-only", headers=tenant.headers(tenant.operator))
    assert ok.status_code == 200
    admin = await probe.get("/probe/v1/operator-only", headers=tenant.headers(tenant.admin))
    assert admin.status_code == 200, "admin may do what operator may"
    wrong = await probe.get("/probe/v1/operator-only", headers=tenant.headers(tenant.ingest))
    assert wrong.status_code == 403
    assert error_code(wrong) == "forbidden"
    admin_only = await client.get("/points/v1/keys", headers=tenant.headers(tenant.operator))
    assert admin_only.status_code == 403
    for role in ("operator", "admin"):
        nested = await probe.get("/probe/v1/echo", params={"text": "hi"},
                                 headers=tenant.headers(getattr(tenant, role)))
        assert nested.status_code == 200, f"{role} may do what ingest may"


async def test_revoked_key_is_401_at_once_through_the_api(
        client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await client.post("/points/v1/keys", headers=tenant.headers(tenant.admin),
                                json={"role": "ingest", "label": "till 7"})
    assert created.status_code == 201
    key, key_id = created.json()["key"], created.json()["key_id"]
    before = await client.post("/points/v1/member-tokens", headers=tenant.headers(key),
                               json={"member_id": "m1"})
    assert before.status_code == 201
    revoked = await client.delete(f"/points/v1/keys/{key_id}",
                                  headers=tenant.headers(tenant.admin))
    assert revoked.status_code == 204
    after = await client.post("/points/v1/member-tokens", headers=tenant.headers(key),
                              json={"member_id": "m1"})
    assert after.status_code == 401
    listed = await client.get("/points/v1/keys", headers=tenant.headers(tenant.admin))
    by_id = {item["key_id"]: item for item in listed.json()["items"]}
    assert by_id[key_id]["revoked_at"] is not None
    assert "key" not in by_id[key_id] and "secret_hash" not in by_id[key_id]


async def test_key_revoked_elsewhere_stops_within_the_cache_ttl(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources) -> None:
    from services.runtime import tenants

    async with resources.pool.acquire() as conn:
        issued = await tenants.create_key(conn, tenant.name, "ingest")
    first = await client.post("/points/v1/member-tokens", headers=tenant.headers(issued.key),
                              json={"member_id": "m1"})
    assert first.status_code == 201
    async with resources.pool.acquire() as conn:  # as `fuli key revoke` does, in another process
        await tenants.revoke_key(conn, issued.key_id)
    deadline = asyncio.get_running_loop().time() + resources.settings.auth_cache_ttl_s + 2
    status = 201
    while status != 401 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.25)
        status = (await client.post("/points/v1/member-tokens",
                                    headers=tenant.headers(issued.key),
                                    json={"member_id": "m1"})).status_code
    assert status == 401


async def test_member_token_acts_only_as_its_member(
        client: httpx.AsyncClient, probe: httpx.AsyncClient, tenant: Tenant) -> None:
    token = await member_token(client, tenant, "alice")
    own = await probe.get("/probe/v1/members/alice", headers=tenant.headers(token))
    assert own.status_code == 200
    assert own.json() == {"tenant_id": tenant.name, "role": "member", "member_id": "alice"}
    other = await probe.get("/probe/v1/members/bob", headers=tenant.headers(token))
    assert other.status_code == 403
    body_other = await probe.post("/probe/v1/transfers", headers=tenant.headers(token),
                                  json={"transfer_id": "t1", "member_id": "bob", "amount": 1})
    assert body_other.status_code == 403
    not_for_members = await probe.get("/probe/v1/operator-only", headers=tenant.headers(token))
    assert not_for_members.status_code == 403
    keys = await client.get("/points/v1/keys", headers=tenant.headers(token))
    assert keys.status_code == 403


async def test_member_token_forged_or_expired_is_401(
        client: httpx.AsyncClient, probe: httpx.AsyncClient, tenant: Tenant) -> None:
    token = await member_token(client, tenant, "alice")
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode({**claims, "sub": "bob"}, b"not-the-tenant-secret" * 2, algorithm="HS256")
    response = await probe.get("/probe/v1/members/bob", headers=tenant.headers(forged))
    assert response.status_code == 401
    expired = jwt.encode({**claims, "exp": claims["iat"] - 10}, b"x" * 32, algorithm="HS256")
    assert (await probe.get("/probe/v1/members/alice",
                            headers=tenant.headers(expired))).status_code == 401


async def test_member_token_ttl_is_bounded(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for ttl in (0, 59, 86_401, "60"):
        response = await client.post("/points/v1/member-tokens",
                                     headers=tenant.headers(tenant.ingest),
                                     json={"member_id": "m1", "ttl_s": ttl})
        assert response.status_code == 422, ttl
        assert response.json()["error"]["details"]["field"] == "ttl_s"


async def test_tenants_never_see_each_other(
        client: httpx.AsyncClient, probe: httpx.AsyncClient, tenant: Tenant,
        resources: Resources) -> None:
    other = await make_tenant(resources.pool)
    mine = await client.get("/points/v1/keys", headers=tenant.headers(tenant.admin))
    theirs = await client.get("/points/v1/keys", headers=other.headers(other.admin))
    my_ids = {k["key_id"] for k in mine.json()["items"]}
    their_ids = {k["key_id"] for k in theirs.json()["items"]}
    assert len(my_ids) == 3 and len(their_ids) == 3 and not my_ids & their_ids
    victim = next(iter(their_ids))
    cross = await client.delete(f"/points/v1/keys/{victim}", headers=tenant.headers(tenant.admin))
    assert cross.status_code == 404
    # A transfer id used by one tenant is free for another, and invisible to it.
    for t in (tenant, other):
        response = await probe.post("/probe/v1/transfers", headers=t.headers(t.ingest),
                                    json={"transfer_id": "same-id", "member_id": "m", "amount": 5})
        assert response.status_code == 201
        assert response.headers.get("idempotent-replayed") is None


async def test_a_verified_member_token_is_trusted_until_its_expiry_not_past_it(
        probe: httpx.AsyncClient, resources: Resources, tenant: Tenant) -> None:
    """Verified tokens are cached (for FULI_AUTH_CACHE_TTL_S, 5 s here); one expiring sooner
    is refused once it has expired, cached or not."""
    token, expires_at = await resources.authenticator.mint_member_token(tenant.name, "m-exp", 2)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await probe.get("/probe/v1/members/m-exp", headers=headers)).status_code == 200
    assert (await probe.get("/probe/v1/members/m-exp", headers=headers)).status_code == 200
    await asyncio.sleep(max(0.0, expires_at.timestamp() - time.time()) + 0.2)
    expired = await probe.get("/probe/v1/members/m-exp", headers=headers)
    assert expired.status_code == 401 and error_code(expired) == "token_expired"
