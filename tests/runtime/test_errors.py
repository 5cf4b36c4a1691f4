"""Bad input gets a clear 4xx in the error envelope and changes nothing; never a 500."""

from __future__ import annotations

import httpx
import pytest

from services.runtime.resources import Resources
from tests.support.api import Tenant, error_code

GOOD = {"transfer_id": "t-ok", "member_id": "m1", "amount": 5}

BAD_BODIES = [
    ({**GOOD, "surprise": 1}, "surprise"),
    ({**GOOD, "transfer_id": "x" * 129}, "transfer_id"),
    ({**GOOD, "transfer_id": ""}, "transfer_id"),
    ({**GOOD, "transfer_id": "has space"}, "transfer_id"),
    ({**GOOD, "transfer_id": "emoji-\u2603"}, "transfer_id"),
    ({**GOOD, "amount": "5"}, "amount"),
    ({**GOOD, "amount": 0}, "amount"),
    ({**GOOD, "amount": -5}, "amount"),
    ({**GOOD, "amount": 10**30}, "amount"),
    ({**GOOD, "amount": 1.5}, "amount"),
    ({**GOOD, "amount": None}, "amount"),
    ({**GOOD, "note": "n" * 51}, "note"),
    ({"member_id": "m1", "amount": 5}, "transfer_id"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
async def test_bad_fields_are_422_naming_the_field(
        probe: httpx.AsyncClient, tenant: Tenant, resources: Resources,
        body: dict[str, object], field: str) -> None:
    response = await probe.post("/probe/v1/transfers", headers=tenant.headers(tenant.ingest),
                                json=body)
    assert response.status_code == 422, response.text
    assert error_code(response) == "validation_failed"
    assert response.json()["error"]["details"]["field"] == field
    assert await resources.pool.fetchval(
        "SELECT count(*) FROM probe.transfers WHERE tenant_id = $1", tenant.name) == 0


@pytest.mark.parametrize("raw", [b"{", b"[]", b"null", b"\xff\xfe", b"", b'{"a":}'])
async def test_malformed_bodies_are_4xx(probe: httpx.AsyncClient, tenant: Tenant,
                                        raw: bytes) -> None:
    response = await probe.post(
        "/probe/v1/transfers", content=raw,
        headers={**tenant.headers(tenant.ingest), "Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    error_code(response)


async def test_oversized_body_is_413(probe: httpx.AsyncClient, tenant: Tenant,
                                     resources: Resources) -> None:
    size = resources.settings.max_body_bytes + 1
    raw = b'{"transfer_id": "big", "member_id": "m1", "amount": 5, "note": "' + b"n" * size + b'"}'
    response = await probe.post(
        "/probe/v1/transfers", content=raw,
        headers={**tenant.headers(tenant.ingest), "Content-Type": "application/json"})
    assert response.status_code == 413
    assert error_code(response) == "payload_too_large"


async def test_unknown_path_and_method(client: httpx.AsyncClient, tenant: Tenant) -> None:
    missing = await client.get("/points/v1/nothing-here", headers=tenant.headers(tenant.admin))
    assert missing.status_code == 404 and error_code(missing) == "not_found"
    wrong_method = await client.put("/points/v1/member-tokens",
                                     headers=tenant.headers(tenant.ingest), json={})
    assert wrong_method.status_code == 405 and error_code(wrong_method) == "method_not_allowed"
    outside = await client.get("/elsewhere")
    assert outside.status_code == 404 and error_code(outside) == "not_found"


async def test_bad_path_id_is_422(probe: httpx.AsyncClient, tenant: Tenant) -> None:
    # A newline at the end too: Python's `$` alone would let it through (proto.common.PATTERN_END).
    for bad in ("m" * 200, "m%0A", "m%0Ax"):
        response = await probe.get("/probe/v1/members/" + bad,
                                   headers=tenant.headers(tenant.ingest))
        assert response.status_code == 422, bad
        assert error_code(response) == "validation_failed"


async def test_text_postgresql_refuses_is_422_not_500(probe: httpx.AsyncClient,
                                                      tenant: Tenant) -> None:
    headers = tenant.headers(tenant.ingest)
    assert (await probe.get("/probe/v1/echo", params={"text": "ok"}, headers=headers)
            ).status_code == 200
    response = await probe.get("/probe/v1/echo", params={"text": "a\x00b"}, headers=headers)
    assert response.status_code == 422, response.text
    assert error_code(response) == "validation_failed"
