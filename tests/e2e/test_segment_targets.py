"""Issues and grants to a segment with the tiers API in another process, over real HTTP
(FULI_TIERS_URL, as in a cluster): they reach exactly the segment's members; once that tiers
process is stopped they answer 503 and issue nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec

from services.composition.registry import SERVICES
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from services.runtime.stack import Stack
from tests.e2e.process import FuliServer
from tests.support.api import Tenant, error_code, uid
from tests.support.segments import EXAMPLE, example_members, put_segment, seed


@contextlib.asynccontextmanager
async def remote_tiers_client(settings: Settings, url: str
                               ) -> AsyncIterator[httpx.AsyncClient]:
    own = msgspec.structs.replace(settings, tiers_url=url)
    resources = await Resources.open(own, application_name=f"fuli-remote-tiers-{uid('x')}")
    stack = Stack(own, SERVICES)
    await stack.open(resources)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack),
                                     base_url="http://fuli", timeout=30) as client:
            yield client
    finally:
        await stack.close()
        await resources.close()


async def test_targets_read_a_segment_from_a_tiers_process_and_refuse_when_it_stops(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources, settings: Settings,
        configured_env: dict[str, str], tmp_path: Path) -> None:
    seeded = await seed(client, tenant, resources, settings)
    expected = example_members(seeded)
    segment_id = uid("seg")
    assert (await put_segment(client, tenant, segment_id, EXAMPLE)).status_code == 200
    operator = tenant.headers(tenant.operator)
    sku = uid("sku")
    assert (await client.put(f"/rewards/v1/perks/{sku}", headers=operator, json={
        "name": "Trial kit", "cost_points": 1, "stock": 100})).status_code == 200

    server = FuliServer({**configured_env, "FULI_DATA_DIR": str(tmp_path),
                         "FULI_WORKER": "false"}, "serve", "tiers")
    await asyncio.to_thread(server.start)
    stopped = False
    try:
        async with remote_tiers_client(settings, server.base_url) as remote_client:
            issued = await remote_client.post("/rewards/v1/issues", headers=operator, json={
                "issue_id": uid("i"), "reason": "r", "kind": "coupon", "sku": sku,
                "segment_id": segment_id})
            assert issued.status_code == 201, issued.text
            assert issued.json()["member_count"] == len(expected)
            granted = await remote_client.post("/points/v1/grants", headers=operator, json={
                "grant_id": uid("g"), "reason": "r", "segment_id": segment_id, "points": 3})
            assert granted.status_code == 201, granted.text
            assert granted.json()["item_count"] == len(expected)

            assert await asyncio.to_thread(server.stop) == 0
            stopped = True
            for path, body in (
                    ("/rewards/v1/issues", {"issue_id": uid("i"), "reason": "r",
                                            "kind": "coupon", "sku": sku,
                                            "segment_id": segment_id}),
                    ("/points/v1/grants", {"grant_id": uid("g"), "reason": "r",
                                           "segment_id": segment_id, "points": 3})):
                refused = await remote_client.post(path, headers=operator, json=body)
                assert refused.status_code == 503, refused.text
                assert error_code(refused) == "tiers_unavailable"
                assert int(refused.headers["retry-after"]) >= 1
    finally:
        if not stopped:
            server.stop()

    issues = await resources.pool.fetchval(
        "SELECT count(*) FROM rewards.issue_audit WHERE tenant_id = $1", tenant.name)
    coupons = await resources.pool.fetch(
        "SELECT member_id FROM rewards.coupons WHERE tenant_id = $1 AND sku = $2",
        tenant.name, sku)
    grants = await resources.pool.fetchval(
        "SELECT count(*) FROM points.grant_audit WHERE tenant_id = $1 AND segment_id = $2",
        tenant.name, segment_id)
    assert (issues, grants) == (1, 1)
    assert sorted(r["member_id"] for r in coupons) == sorted(expected)
