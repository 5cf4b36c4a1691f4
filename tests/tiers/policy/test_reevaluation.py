"""A changed tier policy re-evaluates every member in the background: recorded in PostgreSQL
with the policy, worked through by the worker in batches that survive a crash, with its
progress on GET /policy."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.composition.registry import SERVICES
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from services.runtime.worker import WorkerContext
from services.tiers import actors as tier_actors
from services.tiers.policy.policy import Policies
from tests.support.api import Points, Tenant, uid
from tests.support.bus import deliver

LADDER = {"mode": "threshold", "tiers": [
    {"name": "fan"},
    {"name": "member", "min": {"spend_cents": 30_000}},
    {"name": "vip", "min": {"spend_cents": 100_000}, "benefits": {"earn_multiplier": 1.5}}]}
HIGH_BAR = {**LADDER, "tiers": [LADDER["tiers"][0],  # type: ignore[index]
                                {"name": "member", "min": {"spend_cents": 10_000_000}}]}


async def policy(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    response = await client.get("/tiers/v1/policy", headers=tenant.headers(tenant.admin))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def put_policy(client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any]) -> None:
    response = await client.put("/tiers/v1/policy", headers=tenant.headers(tenant.admin),
                                json=body)
    assert response.status_code == 200, response.text


async def tiers_of(resources: Resources, tenant: Tenant) -> dict[str, str | None]:
    rows = await resources.pool.fetch(
        "SELECT member_id, tier FROM tiers.members WHERE tenant_id = $1", tenant.name)
    return {row["member_id"]: row["tier"] for row in rows}


async def test_a_lowered_minimum_reaches_existing_members_in_the_background(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources, settings: Settings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    points = Points(client, tenant)
    await put_policy(client, tenant, HIGH_BAR)
    big, small = [uid("big") for _ in range(23)], [uid("small") for _ in range(9)]
    for member in big:
        assert (await points.event(member, "purchase", amount_cents=40_000)).status_code == 201
    for member in small:
        assert (await points.event(member, "purchase", amount_cents=5_000)).status_code == 201
    await deliver(resources, settings, tenant.name)
    assert set((await tiers_of(resources, tenant)).values()) == {"fan"}

    await put_policy(client, tenant, LADDER)
    shown = await policy(client, tenant)
    assert shown["mode"] == "threshold"
    assert [t["name"] for t in shown["tiers"]] == ["fan", "member", "vip"]
    progress = shown["reevaluation"]
    assert (progress["state"], progress["members_done"], progress["started_at"]) == \
        ("pending", 0, None)
    assert set((await tiers_of(resources, tenant)).values()) == {"fan"}  # not yet

    # A worker takes two batches, then dies: the cursor and the count were committed with them.
    policies = Policies(resources.pool)
    assert await policies.reevaluate_members(tenant_id=tenant.name, batch=7,
                                             max_batches=2) == 2
    progress = (await policy(client, tenant))["reevaluation"]
    assert (progress["state"], progress["members_done"], progress["members_total"]) == \
        ("running", 14, 32)
    assert progress["started_at"] is not None and progress["finished_at"] is None

    # The next run dies in the middle of a batch: the batch rolls back, cursor and all.
    from services.tiers.policy import policy as policy_module

    calls = 0
    real_evaluate = policy_module.evaluate

    async def dies_on_the_fourth(*args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise RuntimeError("worker killed")
        await real_evaluate(*args)

    monkeypatch.setattr(policy_module, "evaluate", dies_on_the_fourth)
    with pytest.raises(RuntimeError):
        await policies.reevaluate_members(tenant_id=tenant.name, batch=7)
    monkeypatch.undo()
    assert (await policy(client, tenant))["reevaluation"]["members_done"] == 14
    # The first 14 members by id are all "big-" ones; the three of the dead batch kept "fan".
    assert sum(tier == "member" for tier in (await tiers_of(resources, tenant)).values()) == 14

    WorkerContext.configure(settings, SERVICES)  # the next run, as the worker runs it
    try:
        await tier_actors.reevaluate_members()
    finally:
        await WorkerContext.close()
    progress = (await policy(client, tenant))["reevaluation"]
    assert (progress["state"], progress["members_done"], progress["members_total"]) == \
        ("done", 32, 32)
    assert progress["finished_at"] is not None
    tiers = await tiers_of(resources, tenant)
    assert {tiers[m] for m in big} == {"member"} and {tiers[m] for m in small} == {"fan"}
    history = await client.get(f"/tiers/v1/members/{big[0]}/tier-history",
                               headers=tenant.headers(tenant.ingest))
    latest = history.json()["items"][0]
    assert (latest["from_tier"], latest["to_tier"]) == ("fan", "member")

    # The same policy again changes nothing: no new run.
    await put_policy(client, tenant, LADDER)
    assert (await policy(client, tenant))["reevaluation"] == progress
    await deliver(resources, settings, tenant.name)  # the TierChanged events reach points


async def test_a_new_percentile_policy_stratifies_the_tenant_in_the_background(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources,
        settings: Settings) -> None:
    points = Points(client, tenant)
    members = [uid("m") for _ in range(10)]
    for rank, member in enumerate(members):
        await points.event(member, "purchase", amount_cents=1_000 * (rank + 1))
    await deliver(resources, settings, tenant.name)
    await put_policy(client, tenant, {"mode": "percentile", "metric": "spend_cents", "tiers": [
        {"name": "low", "share": 0.5}, {"name": "high", "share": 0.5}]})
    assert (await policy(client, tenant))["reevaluation"]["state"] == "pending"
    await Policies(resources.pool).reevaluate_members(tenant_id=tenant.name)
    progress = (await policy(client, tenant))["reevaluation"]
    assert (progress["state"], progress["members_done"]) == ("done", 10)
    tiers = await tiers_of(resources, tenant)
    assert [tiers[m] for m in members] == ["low"] * 5 + ["high"] * 5
