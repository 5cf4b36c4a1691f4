"""Percentile stratification: one set-based pass over the whole tenant."""

from __future__ import annotations

import httpx

from services.composition.registry import SERVICES
from services.runtime.resources import Resources
from tests.support.api import Tenant, error_code

POLICY = {"mode": "percentile", "metric": "spend_cents", "grace_days": 0, "tiers": [
    {"name": "fan", "share": 0.5}, {"name": "member", "share": 0.3},
    {"name": "vip", "share": 0.2, "benefits": {"earn_multiplier": 1.5}}]}


async def seed(resources: Resources, tenant: str, n: int) -> None:
    """n members with distinct spends 100, 200, ... cents (what the event consumer builds)."""
    await resources.pool.execute(
        "INSERT INTO tiers.members (tenant_id, member_id)"
        " SELECT $1, 'm' || lpad(i::text, 6, '0') FROM generate_series(1, $2) AS i", tenant, n)
    await resources.pool.execute(
        "INSERT INTO tiers.member_days (tenant_id, member_id, day, spend_cents)"
        " SELECT $1, 'm' || lpad(i::text, 6, '0'), current_date, i * 100"
        " FROM generate_series(1, $2) AS i", tenant, n)


async def test_50_30_20_over_10000_members(client: httpx.AsyncClient, tenant: Tenant,
                                           resources: Resources) -> None:
    operator = tenant.headers(tenant.operator)
    assert (await client.put("/tiers/v1/policy", headers=tenant.headers(tenant.admin),
                             json=POLICY)).status_code == 200
    await seed(resources, tenant.name, 10_000)
    evaluation = await client.post("/tiers/v1/evaluations", headers=operator)
    assert evaluation.status_code == 200, evaluation.text
    body = evaluation.json()
    assert body["members"] == 10_000 and body["changed"] == 10_000
    assert [(c["tier"], c["members"], c["from_value"]) for c in body["cuts"]] == [
        ("fan", 5000, 100), ("member", 3000, 500_100), ("vip", 2000, 800_100)]
    distribution = (await client.get("/tiers/v1/distribution", headers=operator)).json()
    assert [(t["tier"], t["members"], t["share"]) for t in distribution["tiers"]] == [
        ("fan", 5000, 0.5), ("member", 3000, 0.3), ("vip", 2000, 0.2)]
    assert distribution["cut_lines"] == body["cuts"]
    top = await client.get("/tiers/v1/members/m010000/tier", headers=operator)
    assert top.json()["tier"] == "vip"
    changed = await resources.pool.fetchval(
        "SELECT count(*) FROM fuli.outbox WHERE tenant_id = $1 AND event_type = 'TierChanged'",
        tenant.name)
    assert changed == 10_000
    # Nothing moved: a second pass changes nothing and announces nothing.
    again = (await client.post("/tiers/v1/evaluations", headers=operator)).json()
    assert again["changed"] == 0


async def test_stratification_needs_a_percentile_policy(client: httpx.AsyncClient,
                                                        tenant: Tenant) -> None:
    response = await client.post("/tiers/v1/evaluations", headers=tenant.headers(tenant.operator))
    assert response.status_code == 409 and error_code(response) == "not_percentile"


async def test_the_scheduled_job_stratifies_percentile_tenants(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources, settings) -> None:  # type: ignore[no-untyped-def]
    from services.runtime.worker import WorkerContext
    from services.tiers import actors

    await client.put("/tiers/v1/policy", headers=tenant.headers(tenant.admin), json=POLICY)
    await seed(resources, tenant.name, 100)
    WorkerContext.configure(settings, SERVICES)
    try:
        await actors.stratify_all()
    finally:
        await WorkerContext.close()
    distribution = (await client.get("/tiers/v1/distribution",
                                     headers=tenant.headers(tenant.operator))).json()
    assert [t["members"] for t in distribution["tiers"]] == [50, 30, 20]
