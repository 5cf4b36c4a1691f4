"""Endpoints over HTTP: register, read, change, remove; secrets shown once and rotated with an
overlap; bad input and refused targets answered 4xx with nothing stored."""

from __future__ import annotations

import base64

import pytest

from proto.events import PUBLIC_EVENT_TYPES
from services.runtime.resources import Resources
from tests.support.api import Tenant, error_code
from tests.webhooks.conftest import Hooks, names

BASE = "/webhooks/v1/endpoints"


async def stored_endpoints(resources: Resources, tenant: Tenant) -> int:
    return int(await resources.pool.fetchval(
        "SELECT count(*) FROM webhooks.endpoints WHERE tenant_id = $1", tenant.name))


async def test_an_endpoint_is_registered_read_changed_and_removed(
        hooks: Hooks, tenant: Tenant) -> None:
    admin = tenant.headers(tenant.admin)
    created = await hooks.client.post(BASE, headers=admin, json={
        "url": "http://127.0.0.1:9/hook", "event_types": ["TierChanged", "PointsAwarded"],
        "description": "CRM", "allow_http": True})
    assert created.status_code == 201, created.text
    body = created.json()
    endpoint_id, secret = body["endpoint_id"], body["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    assert body["endpoint"]["event_types"] == ["TierChanged", "PointsAwarded"]

    shown = await hooks.client.get(f"{BASE}/{endpoint_id}", headers=admin)
    assert shown.status_code == 200 and "secret" not in shown.json()
    assert shown.json()["enabled"] is True and shown.json()["description"] == "CRM"

    patched = await hooks.client.patch(f"{BASE}/{endpoint_id}", headers=admin, json={
        "event_types": ["*"], "enabled": False})
    assert patched.status_code == 200, patched.text
    assert patched.json()["event_types"] == ["*"] and patched.json()["enabled"] is False

    listed = await hooks.client.get(BASE, headers=admin)
    assert [e["endpoint_id"] for e in listed.json()["items"]] == [endpoint_id]

    assert (await hooks.client.delete(f"{BASE}/{endpoint_id}", headers=admin)).status_code \
        == 204
    missing = await hooks.client.get(f"{BASE}/{endpoint_id}", headers=admin)
    assert missing.status_code == 404 and error_code(missing) == "unknown_endpoint"


async def test_only_admins_manage_endpoints(hooks: Hooks, tenant: Tenant) -> None:
    response = await hooks.client.post(BASE, headers=tenant.headers(tenant.operator), json={
        "url": "https://hooks.example.com/x", "event_types": ["*"]})
    assert response.status_code == 403


async def test_endpoints_list_in_pages(hooks: Hooks, tenant: Tenant) -> None:
    admin = tenant.headers(tenant.admin)
    ids = []
    for _ in range(3):
        created = await hooks.client.post(BASE, headers=admin, json={
            "url": "http://127.0.0.1:9/hook", "event_types": ["*"], "allow_http": True})
        ids.append(created.json()["endpoint_id"])
    first = (await hooks.client.get(BASE, headers=admin, params={"limit": 2})).json()
    second = (await hooks.client.get(BASE, headers=admin, params={
        "limit": 2, "cursor": first["next_cursor"]})).json()
    assert [e["endpoint_id"] for e in first["items"] + second["items"]] == sorted(ids)
    assert second["next_cursor"] is None


@pytest.mark.parametrize("body", [
    {"url": "not a url", "event_types": ["*"]},
    {"url": "ftp://hooks.example.com/x", "event_types": ["*"]},
    {"url": "https://user:pw@hooks.example.com/x", "event_types": ["*"]},
    {"url": "https://hooks.example.com/x#frag", "event_types": ["*"]},
    {"url": "https://bad_host!.example.com/x", "event_types": ["*"]},
    {"url": "https:///nohost", "event_types": ["*"]},
    {"url": "https://hooks.example.com/x", "event_types": ["NoSuchEvent"]},
    {"url": "https://hooks.example.com/x", "event_types": ["ActionRecorded"]},
    {"url": "https://hooks.example.com/x", "event_types": []},
    {"url": "https://hooks.example.com/x"},
    {"url": "https://hooks.example.com/x", "event_types": ["*"], "secret": "mine"},
])
async def test_bad_input_is_refused_and_nothing_is_stored(
        hooks: Hooks, tenant: Tenant, resources: Resources, body: dict[str, object]) -> None:
    names["hooks.example.com"] = ["93.184.216.34"]
    response = await hooks.client.post(BASE, headers=tenant.headers(tenant.admin), json=body)
    assert response.status_code == 422, response.text
    assert error_code(response) == "validation_failed"
    assert await stored_endpoints(resources, tenant) == 0


async def test_a_bad_patch_changes_nothing(hooks: Hooks, tenant: Tenant) -> None:
    admin = tenant.headers(tenant.admin)
    created = (await hooks.client.post(BASE, headers=admin, json={
        "url": "http://127.0.0.1:9/a", "event_types": ["PointsSpent"],
        "allow_http": True})).json()
    endpoint = f"{BASE}/{created['endpoint_id']}"
    bodies: list[dict[str, object]] = [{"event_types": []}, {"event_types": ["Nope"]},
                                       {"url": "ftp://x/y"}, {"enabled": "yes"}]
    for body in bodies:
        response = await hooks.client.patch(endpoint, headers=admin, json=body)
        assert response.status_code == 422, (body, response.text)
    assert (await hooks.client.get(endpoint, headers=admin)).json() == created["endpoint"]


async def test_http_needs_the_endpoint_flag_and_a_deployment_that_allows_it(
        hooks: Hooks, strict_hooks: Hooks, tenant: Tenant, resources: Resources) -> None:
    admin = tenant.headers(tenant.admin)
    names["plain.example.com"] = ["93.184.216.34"]
    without_flag = await hooks.client.post(BASE, headers=admin, json={
        "url": "http://plain.example.com/x", "event_types": ["*"]})
    assert without_flag.status_code == 422
    not_in_production = await strict_hooks.client.post(BASE, headers=admin, json={
        "url": "http://plain.example.com/x", "event_types": ["*"], "allow_http": True})
    assert not_in_production.status_code == 422
    assert await stored_endpoints(resources, tenant) == 0


@pytest.mark.parametrize("url, reason", [
    ("https://127.0.0.1/hook", "loopback"),
    ("https://169.254.169.254/latest/meta-data", "metadata"),
    ("https://[::1]/hook", "loopback"),
    ("https://10.1.2.3/hook", "private"),
    ("https://[fd00::1]/hook", "private"),
    ("https://[::ffff:127.0.0.1]/hook", "loopback"),
    ("https://100.64.0.1/hook", "not_global"),
    ("https://internal.example.com/hook", "private"),
    ("https://mixed.example.com/hook", "private"),
    ("https://localhost/hook", "loopback"),
])
async def test_private_targets_are_refused_without_the_setting(
        strict_hooks: Hooks, tenant: Tenant, resources: Resources, url: str,
        reason: str) -> None:
    names["internal.example.com"] = ["10.0.0.1"]
    names["mixed.example.com"] = ["93.184.216.34", "192.168.1.10"]
    response = await strict_hooks.client.post(BASE, headers=tenant.headers(tenant.admin),
                                              json={"url": url, "event_types": ["*"]})
    assert response.status_code == 422, response.text
    assert error_code(response) == "target_refused"
    assert response.json()["error"]["details"]["reason"] == reason
    assert await stored_endpoints(resources, tenant) == 0


async def test_a_public_https_target_is_accepted_and_a_patch_to_a_private_one_refused(
        strict_hooks: Hooks, tenant: Tenant) -> None:
    admin = tenant.headers(tenant.admin)
    names["crm.example.com"] = ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]
    names["rebound.example.com"] = ["10.0.0.1"]
    created = await strict_hooks.client.post(BASE, headers=admin, json={
        "url": "https://crm.example.com/hooks", "event_types": ["*"]})
    assert created.status_code == 201, created.text
    endpoint = f"{BASE}/{created.json()['endpoint_id']}"
    refused = await strict_hooks.client.patch(endpoint, headers=admin, json={
        "url": "https://rebound.example.com/hooks"})
    assert refused.status_code == 422 and error_code(refused) == "target_refused"
    assert (await strict_hooks.client.get(endpoint, headers=admin)).json()["url"] \
        == "https://crm.example.com/hooks"


async def test_unresolvable_hosts_are_refused(strict_hooks: Hooks, tenant: Tenant) -> None:
    names["nowhere.example.com"] = []
    response = await strict_hooks.client.post(BASE, headers=tenant.headers(tenant.admin), json={
        "url": "https://nowhere.example.com/x", "event_types": ["*"]})
    assert response.status_code == 422 and error_code(response) == "unresolvable_host"


async def test_star_and_every_public_type_are_accepted(hooks: Hooks, tenant: Tenant) -> None:
    response = await hooks.client.post(BASE, headers=tenant.headers(tenant.admin), json={
        "url": "http://127.0.0.1:9/x", "event_types": list(PUBLIC_EVENT_TYPES),
        "allow_http": True})
    assert response.status_code == 201, response.text
    assert response.json()["endpoint"]["event_types"] == list(PUBLIC_EVENT_TYPES)
    star = await hooks.client.post(BASE, headers=tenant.headers(tenant.admin), json={
        "url": "http://127.0.0.1:9/x", "event_types": ["PointsAwarded", "*"],
        "allow_http": True})
    assert star.json()["endpoint"]["event_types"] == ["*"]


async def test_no_secret_is_stored(hooks: Hooks, tenant: Tenant, resources: Resources) -> None:
    created = (await hooks.client.post(BASE, headers=tenant.headers(tenant.admin), json={
        "url": "http://127.0.0.1:9/x", "event_types": ["*"], "allow_http": True})).json()
    raw = base64.b64decode(created["secret"][6:])
    row = await resources.pool.fetchrow(
        "SELECT * FROM webhooks.endpoints WHERE tenant_id = $1", tenant.name)
    assert row is not None
    for value in row.values():
        assert raw not in (value if isinstance(value, bytes) else str(value).encode())
        assert created["secret"] not in str(value)
