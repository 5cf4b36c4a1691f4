"""Points grants to a tiers segment: the same points to exactly the segment's frozen members,
all or nothing, once per grant id, audited with the segment's count and computation time;
tiers unreachable is a 503 that grants nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.runtime.resources import Resources
from services.runtime.settings import Settings
from tests.support.api import Tenant, error_code, uid
from tests.support.segments import (
    EXAMPLE,
    Seeded,
    example_members,
    put_segment,
    tenant_members,
    tiers_down_client,
)


async def balances(client: httpx.AsyncClient, tenant: Tenant,
                   members: list[str]) -> dict[str, int]:
    found = {}
    for member in members:
        response = await client.get(f"/points/v1/members/{member}",
                                    headers=tenant.headers(tenant.ingest))
        assert response.status_code == 200, response.text
        found[member] = int(response.json()["available"])
    return found


async def audit_rows(resources: Resources, tenant: Tenant) -> list[dict[str, Any]]:
    rows = await resources.pool.fetch(
        "SELECT grant_id, item_count, total_points, segment_id, segment_count,"
        " segment_computed_at FROM points.grant_audit WHERE tenant_id = $1 ORDER BY grant_id",
        tenant.name)
    return [dict(row) for row in rows]


async def test_a_grant_to_a_segment_gives_exactly_its_members_the_points_once(
        client: httpx.AsyncClient, tenant: Tenant, seeded: Seeded,
        resources: Resources) -> None:
    expected = example_members(seeded)
    segment_id = uid("seg")
    segment = (await put_segment(client, tenant, segment_id, EXAMPLE)).json()
    before = await balances(client, tenant, seeded.members)
    body = {"grant_id": uid("g"), "reason": "loyalty bonus", "segment_id": segment_id,
            "points": 25, "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat()}
    granted = await client.post("/points/v1/grants", headers=tenant.headers(tenant.operator),
                                json=body)
    assert granted.status_code == 201, granted.text
    assert granted.json() == {"grant_id": body["grant_id"], "item_count": len(expected),
                              "total_points": 25 * len(expected)}
    after = await balances(client, tenant, seeded.members)
    assert {m: after[m] - before[m] for m in seeded.members} == {
        m: 25 if m in expected else 0 for m in seeded.members}
    [audit] = await audit_rows(resources, tenant)
    assert audit["segment_id"] == segment_id and audit["segment_count"] == len(expected)
    assert audit["segment_computed_at"] == datetime.fromisoformat(segment["computed_at"])

    again = await client.post("/points/v1/grants", headers=tenant.headers(tenant.operator),
                              json=body)
    assert again.status_code == 201 and again.content == granted.content
    assert await balances(client, tenant, seeded.members) == after
    assert len(await audit_rows(resources, tenant)) == 1
    ledger = await client.get("/points/v1/ledger/check", headers=tenant.headers(tenant.admin))
    assert ledger.json()["ok"] is True


async def test_bad_segment_grants_are_refused_and_grant_nothing(
        client: httpx.AsyncClient, tenant: Tenant, seeded: Seeded,
        resources: Resources) -> None:
    segment_id = uid("seg")
    assert (await put_segment(client, tenant, segment_id, EXAMPLE)).status_code == 200
    empty = uid("seg")
    assert (await put_segment(client, tenant, empty, {"tags": {"all": ["nobody"]}})).json()[
        "count"] == 0
    before = await balances(client, tenant, seeded.members)
    item = {"member_id": seeded.members[0], "points": 5}
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    cases = [
        ({"segment_id": segment_id, "points": 5, "items": [item]}, 422, "validation_failed"),
        ({"segment_id": segment_id}, 422, "validation_failed"),          # no points
        ({"items": [item], "points": 5}, 422, "validation_failed"),       # points with items
        ({}, 422, "validation_failed"),
        ({"segment_id": segment_id, "points": 5, "expires_at": past}, 422, "validation_failed"),
        ({"segment_id": "no-such-segment", "points": 5}, 404, "unknown_segment"),
        ({"segment_id": empty, "points": 5}, 409, "segment_empty"),
    ]
    for extra, status, code in cases:
        response = await client.post("/points/v1/grants",
                                     headers=tenant.headers(tenant.operator),
                                     json={"grant_id": uid("g"), "reason": "r", **extra})
        assert response.status_code == status, (extra, response.text)
        assert error_code(response) == code
    assert await audit_rows(resources, tenant) == []
    assert await balances(client, tenant, seeded.members) == before


async def test_a_segment_larger_than_the_grant_limit_is_refused(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources) -> None:
    await tenant_members(resources, tenant, 10_001)
    segment_id = uid("seg")
    assert (await put_segment(client, tenant, segment_id, {})).json()["count"] == 10_001
    response = await client.post("/points/v1/grants", headers=tenant.headers(tenant.operator),
                                 json={"grant_id": uid("g"), "reason": "all",
                                       "segment_id": segment_id, "points": 1})
    assert response.status_code == 422 and error_code(response) == "segment_too_large"
    assert await audit_rows(resources, tenant) == []


async def test_tiers_unreachable_is_503_and_grants_nothing(
        client: httpx.AsyncClient, tenant: Tenant, seeded: Seeded, resources: Resources,
        settings: Settings) -> None:
    segment_id = uid("seg")
    assert (await put_segment(client, tenant, segment_id, EXAMPLE)).status_code == 200
    before = await balances(client, tenant, seeded.members)
    async with tiers_down_client(settings) as down:
        response = await down.post("/points/v1/grants",
                                   headers=tenant.headers(tenant.operator),
                                   json={"grant_id": uid("g"), "reason": "r",
                                         "segment_id": segment_id, "points": 5})
        # The list form does not need tiers.
        listed = await down.post("/points/v1/grants", headers=tenant.headers(tenant.operator),
                                 json={"grant_id": uid("g"), "reason": "r", "items": [
                                     {"member_id": "solo", "points": 1}]})
        assert listed.status_code == 201, listed.text
    assert response.status_code == 503, response.text
    assert error_code(response) == "tiers_unavailable"
    assert int(response.headers["retry-after"]) >= 1
    assert [row["segment_id"] for row in await audit_rows(resources, tenant)] == [None]
    assert await balances(client, tenant, seeded.members) == before
