"""Value scores, KOCs and bad input to groups and the value model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.runtime.resources import Resources
from services.runtime.settings import Settings
from tests.support.api import Points, Tenant, error_code, member_token, uid
from tests.support.bus import deliver

MODEL = {"window_days": 28, "high_value_line": 20, "actions": {
    "purchase": {"category": "consumption", "weight": 1, "per_100_cents": 0.1},
    "speak": {"category": "content", "weight": 2},
    "referral": {"category": "social", "weight": 5},
    "survey": {"category": "interaction", "weight": 3},
    "coupon_used": {"category": "interaction", "weight": 4}}}


def days_ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


async def use_a_coupon(client: httpx.AsyncClient, tenant: Tenant, member: str) -> None:
    operator, ingest = tenant.headers(tenant.operator), tenant.headers(tenant.ingest)
    sku = uid("sku")
    assert (await client.put(f"/rewards/v1/perks/{sku}", headers=operator,
                             json={"name": "Trial kit", "cost_points": 10})).status_code == 200
    issued = await client.post("/rewards/v1/issues", headers=operator, json={
        "issue_id": uid("iss"), "reason": "value test", "kind": "coupon", "sku": sku,
        "member_ids": [member]})
    assert issued.status_code == 201, issued.text
    coupons = (await client.get(f"/rewards/v1/members/{member}/coupons",
                                headers=ingest)).json()["items"]
    used = await client.post(f"/rewards/v1/coupons/{coupons[0]['coupon_id']}/use",
                             headers=ingest, json={"use_id": uid("use")})
    assert used.status_code == 201, used.text


async def test_value_scores_and_kocs_match_hand_computed_values(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources,
        settings: Settings) -> None:
    points = Points(client, tenant)
    admin, operator = tenant.headers(tenant.admin), tenant.headers(tenant.operator)
    put = await client.put("/tiers/v1/value-model", headers=admin, json=MODEL)
    assert put.status_code == 200, put.text
    m1, m2, m3, m4, m5 = (uid(f"m{i}") for i in range(1, 6))
    fillers = [uid("z") for _ in range(15)]

    async def event(member: str, action: str, **fields: Any) -> str:
        response = await points.event(member, action, **fields)
        assert response.status_code == 201, response.text
        return str(response.json()["event_id"])

    big = await event(m1, "purchase", amount_cents=50_000, occurred_at=days_ago(2))
    assert (await points.reverse(big, amount_cents=10_000)).status_code == 201
    await event(m1, "purchase", amount_cents=30_000, occurred_at=days_ago(26))
    for _ in range(3):
        await event(m1, "speak")
    for _ in range(10):
        await event(m2, "speak")
    for _ in range(2):
        await event(m2, "referral")
    await event(m2, "survey")
    await use_a_coupon(client, tenant, m2)
    await event(m3, "purchase", amount_cents=40_000, occurred_at=days_ago(30))  # out of window
    await event(m3, "speak")
    for _ in range(4):
        await event(m4, "referral")
    await event(m5, "speak")
    for member in fillers:
        await event(member, "survey")
    await deliver(resources, settings, tenant.name, twice=True)

    expected = {
        # 2 purchases x 1 + (50 000 - 10 000 + 30 000) x 0.1 / 100 = 72; 3 speaks x 2 = 6
        m1: {"total": 78, "consumption": 72, "content": 6, "interaction": 0, "social": 0},
        # 10 speaks x 2; 2 referrals x 5; a survey x 3 + a used coupon x 4
        m2: {"total": 37, "consumption": 0, "content": 20, "interaction": 7, "social": 10},
        m3: {"total": 2, "consumption": 0, "content": 2, "interaction": 0, "social": 0},
        m4: {"total": 20, "consumption": 0, "content": 0, "interaction": 0, "social": 20},
        m5: {"total": 2, "consumption": 0, "content": 2, "interaction": 0, "social": 0},
    }
    for member, scores in expected.items():
        response = await client.get(f"/tiers/v1/members/{member}/value", headers=operator)
        assert response.status_code == 200, response.text
        body = response.json()
        assert {k: body[k] for k in scores} == pytest.approx(scores), member
        assert body["high_value"] is (scores["total"] >= 20)

    # 20 members: the top 10% is 2 members, the top 20% 4 (ties by member id).
    top = await client.get("/tiers/v1/koc", headers=operator, params={"share": 0.1})
    assert top.status_code == 200, top.text
    assert top.json()["population"] == 20
    assert [(i["rank"], i["member_id"], i["total"]) for i in top.json()["items"]] == [
        (1, m1, 78), (2, m2, 37)]
    assert top.json()["items"][1]["social"] == 10
    wider = await client.get("/tiers/v1/koc", headers=operator, params={"share": 0.2})
    assert [i["member_id"] for i in wider.json()["items"]] == [m1, m2, m4, min(fillers)]

    # A member reads their own value only.
    token = {"Authorization": f"Bearer {await member_token(client, tenant, m2)}"}
    assert (await client.get(f"/tiers/v1/members/{m2}/value", headers=token)).status_code == 200
    assert (await client.get(f"/tiers/v1/members/{m1}/value", headers=token)).status_code == 403
    assert (await client.get("/tiers/v1/koc", headers=token)).status_code == 403


async def test_value_needs_a_model(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get("/tiers/v1/koc", headers=tenant.headers(tenant.operator))
    assert response.status_code == 409 and error_code(response) == "no_value_model"
    shown = await client.get("/tiers/v1/value-model", headers=tenant.headers(tenant.admin))
    assert shown.status_code == 404


async def counts(resources: Resources, tenant: Tenant) -> tuple[int, ...]:
    row = await resources.pool.fetchrow(
        "SELECT (SELECT count(*) FROM tiers.groups WHERE tenant_id = $1),"
        " (SELECT count(*) FROM tiers.group_members WHERE tenant_id = $1),"
        " (SELECT count(*) FROM tiers.value_models WHERE tenant_id = $1),"
        " (SELECT count(*) FROM tiers.policies WHERE tenant_id = $1)", tenant.name)
    return tuple(row)


async def test_bad_input_is_refused_and_changes_nothing(client: httpx.AsyncClient,
                                                        tenant: Tenant,
                                                        resources: Resources) -> None:
    admin, operator = tenant.headers(tenant.admin), tenant.headers(tenant.operator)
    no_policy = await client.put("/tiers/v1/groups/g1", headers=operator,
                                 json={"name": "G", "tier": "fan", "kind": "fan"})
    assert no_policy.status_code == 409 and error_code(no_policy) == "no_policy"
    ladder = {"mode": "threshold", "tiers": [{"name": "fan"},
                                             {"name": "vip", "min": {"spend_cents": 1}}]}
    assert (await client.put("/tiers/v1/policy", headers=admin, json=ladder)).status_code == 200
    assert (await client.put("/tiers/v1/value-model", headers=admin,
                             json=MODEL)).status_code == 200
    assert (await client.put("/tiers/v1/groups/g1", headers=operator,
                             json={"name": "G", "tier": "fan", "kind": "fan"})).status_code == 200
    before = await counts(resources, tenant)
    naive = datetime.now().replace(microsecond=0).isoformat()
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    cases: list[tuple[str, str, dict[str, Any], Any, dict[str, Any] | None]] = [
        ("PUT", "/tiers/v1/groups/g2", operator, {"name": "G", "tier": "gold", "kind": "fan"},
         None),
        ("PUT", "/tiers/v1/groups/g2", operator, {"name": "G", "tier": "fan", "kind": "club"},
         None),
        ("PUT", "/tiers/v1/groups/g2", operator,
         {"name": "G", "tier": "fan", "kind": "fan", "colour": "red"}, None),
        ("PUT", "/tiers/v1/groups/g2", operator, {"name": "G", "tier": "fan"}, None),
        ("PUT", "/tiers/v1/groups/migrations", operator,
         {"name": "G", "tier": "fan", "kind": "fan"}, None),
        ("PUT", "/tiers/v1/groups/bad%20id", operator,
         {"name": "G", "tier": "fan", "kind": "fan"}, None),
        ("PUT", "/tiers/v1/groups/g1", tenant.headers(tenant.ingest),
         {"name": "G", "tier": "fan", "kind": "fan"}, None),
        ("PUT", "/tiers/v1/groups/g1/members/m1", operator, None, {"at": naive}),
        ("PUT", "/tiers/v1/groups/g1/members/m1", operator, None, {"at": future}),
        ("PUT", "/tiers/v1/groups/g1/members/m1", operator, None, {"at": "yesterday"}),
        ("PUT", "/tiers/v1/groups/nope/members/m1", operator, None, None),
        ("DELETE", "/tiers/v1/groups/g1/members/m1", operator, None, None),
        ("GET", "/tiers/v1/groups/g1/report", operator, None, {"period": "year"}),
        ("GET", "/tiers/v1/groups/nope/report", operator, None, None),
        ("GET", "/tiers/v1/koc", operator, None, {"share": 0}),
        ("GET", "/tiers/v1/koc", operator, None, {"share": 0.5}),
        ("GET", "/tiers/v1/groups/migrations", operator, None, {"limit": 0}),
        ("PUT", "/tiers/v1/value-model", admin, {**MODEL, "window_days": 0}, None),
        ("PUT", "/tiers/v1/value-model", admin, {**MODEL, "extra": 1}, None),
        ("PUT", "/tiers/v1/value-model", admin,
         {**MODEL, "actions": {"speak": {"category": "fame", "weight": 1}}}, None),
        ("PUT", "/tiers/v1/value-model", admin,
         {**MODEL, "actions": {"speak": {"category": "content"}}}, None),
        ("PUT", "/tiers/v1/value-model", admin,
         {**MODEL, "actions": {"Speak!": {"category": "content", "weight": 1}}}, None),
        ("PUT", "/tiers/v1/value-model", admin,
         {**MODEL, "actions": {"speak": {"category": "content", "weight": -1}}}, None),
        ("PUT", "/tiers/v1/value-model", admin, {**MODEL, "actions": {}}, None),
        ("PUT", "/tiers/v1/value-model", operator, MODEL, None),
    ]
    for method, path, headers, body, params in cases:
        response = await client.request(method, path, headers=headers, json=body, params=params)
        assert 400 <= response.status_code < 500, (method, path, body, params, response.text)
        assert "error" in response.json(), response.text
    assert await counts(resources, tenant) == before
    model = await client.get("/tiers/v1/value-model", headers=admin)
    assert model.json() == {**MODEL, "actions": {
        k: {"per_100_cents": None, "weight": 0.0, **v} for k, v in MODEL["actions"].items()}}
