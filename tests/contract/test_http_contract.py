"""What the OpenAPI contract promises, over HTTP: OPTIONS lists every method of a path, a settle
body is optional, times are RFC 3339 with an offset within 1900-8999 (never a Unix number), and a
whole number written as 10.0 is the integer 10 as JSON Schema says."""

from __future__ import annotations

import httpx
import pytest

from tests.support.api import Points, Tenant, error_code, uid


@pytest.mark.parametrize(("path", "methods"), [
    ("/points/v1/keys", {"GET", "POST", "OPTIONS"}),
    ("/tiers/v1/policy", {"GET", "PUT", "OPTIONS"}),
    ("/rewards/v1/campaigns/c-1", {"GET", "PUT", "OPTIONS"}),
    ("/tiers/v1/groups/g-1/members/m-1", {"PUT", "DELETE", "OPTIONS"}),
])
async def test_options_allows_every_method_of_the_path(client: httpx.AsyncClient, tenant: Tenant,
                                                       path: str, methods: set[str]) -> None:
    response = await client.options(path, headers=tenant.headers(tenant.admin))
    assert response.status_code == 204, response.text
    assert set(response.headers["allow"].replace(" ", "").split(",")) == methods


async def test_void_and_capture_take_no_body(client: httpx.AsyncClient, tenant: Tenant) -> None:
    points = Points(client, tenant)
    member = uid("m")
    await points.give(member, 100)
    for action in ("void", "capture"):
        hold = await points.hold(member, 10)
        assert hold.status_code == 201, hold.text
        settled = await client.post(f"/points/v1/holds/{hold.json()['hold_id']}/{action}",
                                    headers=points.ingest)
        assert settled.status_code == 200, settled.text


@pytest.mark.parametrize("at", ["0.5", "1700000000", "null", "2026-01-01T00:00:00",
                                "2026-02-29T00:00:00Z", "0001-01-01T00:00:00Z"])
async def test_at_is_an_rfc3339_time_never_a_unix_number(client: httpx.AsyncClient,
                                                         tenant: Tenant, at: str) -> None:
    response = await client.get(f"/tiers/v1/groups/{uid('g')}/report", params={"at": at},
                                headers=tenant.headers(tenant.operator))
    assert response.status_code == 422, response.text
    assert error_code(response) == "validation_failed"
    assert response.json()["error"]["details"]["field"] == "at"


async def test_at_takes_an_rfc3339_time(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get(f"/tiers/v1/groups/{uid('g')}/report",
                                params={"at": "2026-03-04T05:06:07.25+08:00", "period": "month"},
                                headers=tenant.headers(tenant.operator))
    # Taken as a time: the refusal is about the group, not about ``at``.
    assert response.status_code == 404, response.text
    assert error_code(response) == "unknown_group"


# The last two are in range as written and not in UTC: 1899-12-31T23:00Z and 9000-01-01T00:30Z.
@pytest.mark.parametrize("expires_at", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00",
                                        "2999-01-01T00:00:00", "1900-01-01T00:00:00+01:00",
                                        "8999-12-31T23:30:00-01:00"])
async def test_sent_times_need_an_offset_and_a_year_from_1900_to_8999(
        client: httpx.AsyncClient, tenant: Tenant, expires_at: str) -> None:
    response = await Points(client, tenant).grant(
        [{"member_id": uid("m"), "points": 5, "expires_at": expires_at}])
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]["field"] == "items[0].expires_at"


async def test_a_whole_number_with_a_fraction_is_an_integer(client: httpx.AsyncClient,
                                                            tenant: Tenant) -> None:
    points = Points(client, tenant)
    member = uid("m")
    taken = await points.grant([{"member_id": member, "points": 7.0}])
    assert taken.status_code == 201, taken.text
    balance = await client.get(f"/points/v1/members/{member}", headers=points.ingest)
    assert balance.json()["available"] == 7
    refused = await points.grant([{"member_id": member, "points": 7.5}])
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["details"]["field"] == "items[0].points"
    as_text = await points.grant([{"member_id": member, "points": "7"}])
    assert as_text.status_code == 422, as_text.text


async def test_a_settle_body_of_json_null_is_no_body(client: httpx.AsyncClient,
                                                     tenant: Tenant) -> None:
    points = Points(client, tenant)
    member = uid("m")
    await points.give(member, 100)
    hold = await points.hold(member, 10)
    settled = await client.post(f"/points/v1/holds/{hold.json()['hold_id']}/void",
                                content=b"null", headers=points.ingest)
    assert settled.status_code == 200, settled.text
    wrong = await client.post(f"/points/v1/holds/{uid('h')}/void", content=b"[]",
                              headers=points.ingest)
    assert wrong.status_code == 422, wrong.text


@pytest.mark.parametrize("body", [b"t1", b"{", b"[]", b'{"kind": "nosuch"}'])
async def test_a_union_body_that_is_not_json_or_not_a_member_is_422(
        client: httpx.AsyncClient, tenant: Tenant, body: bytes) -> None:
    response = await client.put("/tiers/v1/policy", content=body,
                                headers=tenant.headers(tenant.admin))
    assert response.status_code == 422, response.text
    assert error_code(response) == "validation_failed"


async def test_a_nul_in_a_query_parameter_is_422_not_500(client: httpx.AsyncClient,
                                                         tenant: Tenant) -> None:
    response = await client.get("/rewards/v1/perks", params={"member_id": "a\x00b"},
                                headers=tenant.headers(tenant.operator))
    assert response.status_code == 422, response.text
