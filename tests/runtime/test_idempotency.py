from __future__ import annotations

import asyncio

import httpx

from services.runtime.resources import Resources
from tests.support.api import Tenant, error_code


async def count_transfers(resources: Resources, tenant: Tenant, transfer_id: str) -> int:
    return int(await resources.pool.fetchval(
        "SELECT count(*) FROM probe.transfers WHERE tenant_id = $1 AND transfer_id = $2",
        tenant.name, transfer_id))


async def test_replay_returns_the_original(probe: httpx.AsyncClient, tenant: Tenant) -> None:
    body = {"transfer_id": "tr-1", "member_id": "m1", "amount": 7, "note": "hello"}
    first = await probe.post("/probe/v1/transfers", headers=tenant.headers(tenant.ingest),
                             json=body)
    assert first.status_code == 201
    # Same request, keys in another order: still the same request.
    reordered = dict(reversed(list(body.items())))
    again = await probe.post("/probe/v1/transfers", headers=tenant.headers(tenant.ingest),
                             json=reordered)
    assert again.status_code == 201
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"


async def test_same_id_other_body_is_409(probe: httpx.AsyncClient, tenant: Tenant,
                                         resources: Resources) -> None:
    headers = tenant.headers(tenant.ingest)
    first = await probe.post("/probe/v1/transfers", headers=headers,
                             json={"transfer_id": "tr-2", "member_id": "m1", "amount": 7})
    assert first.status_code == 201
    other = await probe.post("/probe/v1/transfers", headers=headers,
                             json={"transfer_id": "tr-2", "member_id": "m1", "amount": 8})
    assert other.status_code == 409
    assert error_code(other) == "idempotency_conflict"
    assert await count_transfers(resources, tenant, "tr-2") == 1


async def test_fifty_concurrent_identical_requests_have_one_effect(
        probe: httpx.AsyncClient, tenant: Tenant, resources: Resources) -> None:
    body = {"transfer_id": "tr-burst", "member_id": "m1", "amount": 3}
    responses = await asyncio.gather(*[
        probe.post("/probe/v1/transfers", headers=tenant.headers(tenant.ingest), json=body)
        for _ in range(50)])
    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1
    assert sum(1 for r in responses if r.headers.get("idempotent-replayed") != "true") == 1
    assert await count_transfers(resources, tenant, "tr-burst") == 1


async def test_concurrent_different_bodies_same_id_one_wins(
        probe: httpx.AsyncClient, tenant: Tenant, resources: Resources) -> None:
    responses = await asyncio.gather(*[
        probe.post("/probe/v1/transfers", headers=tenant.headers(tenant.ingest),
                   json={"transfer_id": "tr-race", "member_id": "m1", "amount": n})
        for n in range(1, 21)])
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1 and statuses.count(409) == 19
    assert await count_transfers(resources, tenant, "tr-race") == 1


async def test_refusal_is_stored_and_replayed_but_changes_nothing(
        probe: httpx.AsyncClient, tenant: Tenant, resources: Resources) -> None:
    body = {"transfer_id": "tr-big", "member_id": "m1", "amount": 5000}
    first = await probe.post("/probe/v1/transfers", headers=tenant.headers(tenant.ingest),
                             json=body)
    assert first.status_code == 409
    assert error_code(first) == "limit_reached"
    assert first.json()["error"]["details"] == {"limit": 1000}
    again = await probe.post("/probe/v1/transfers", headers=tenant.headers(tenant.ingest),
                             json=body)
    assert again.status_code == 409 and again.content == first.content
    assert await count_transfers(resources, tenant, "tr-big") == 0


async def test_failed_validation_stores_nothing(probe: httpx.AsyncClient, tenant: Tenant,
                                                resources: Resources) -> None:
    bad = await probe.post("/probe/v1/transfers", headers=tenant.headers(tenant.ingest),
                           json={"transfer_id": "tr-v", "member_id": "m1", "amount": -1})
    assert bad.status_code == 422
    stored = await resources.pool.fetchval(
        "SELECT count(*) FROM fuli.idempotency WHERE tenant_id = $1", tenant.name)
    assert stored == 0
    good = await probe.post("/probe/v1/transfers", headers=tenant.headers(tenant.ingest),
                            json={"transfer_id": "tr-v", "member_id": "m1", "amount": 1})
    assert good.status_code == 201
