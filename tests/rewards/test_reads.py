"""Who may read the catalog, a blind box's odds and proofs, pools, packets and team-buy
campaigns: any credential of the tenant (every API key role and any member token, a member's
own or a visitor's minted before login); without one the tenant is unknown, so 401."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.rewards.boxes.test_boxes import put_box
from tests.rewards.red_packets.test_red_packets import make_pool
from tests.support.api import Rewards, Tenant, error_code, member_token, uid


async def test_published_reads_answer_every_credential_of_the_tenant_and_401_without(
        rewards: Rewards, client: httpx.AsyncClient, tenant: Tenant) -> None:
    sku = await rewards.perk()
    box_id = await put_box(rewards)
    member = uid("m")
    tickets = await rewards.client.post("/rewards/v1/tickets", headers=rewards.ingest, json={
        "ticket_grant_id": uid("t"), "member_id": member, "box_id": box_id})
    assert tickets.status_code == 201, tickets.text
    drawn = await rewards.client.post(f"/rewards/v1/boxes/{box_id}/draws",
                                      headers=rewards.ingest, json={
                                          "draw_id": uid("d"), "member_id": member,
                                          "use_ticket": True})
    assert drawn.status_code == 201, drawn.text
    pool_id = await make_pool(rewards)
    campaign = f"/rewards/v1/campaigns/{uid('camp')}"
    now = datetime.now(UTC)
    put = await client.put(campaign, headers=rewards.operator, json={
        "name": "Spring team-buy", "team_sizes": [2],
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat()})
    assert put.status_code == 200, put.text
    team = await client.post(f"{campaign}/teams", headers=rewards.ingest, json={
        "team_id": "tm", "captain_member_id": member, "size": 2})
    assert team.status_code == 201, team.text

    reads = ["/rewards/v1/perks", f"/rewards/v1/boxes/{box_id}/odds",
             f"/rewards/v1/boxes/{box_id}/draws/{drawn.json()['draw_id']}/proof",
             f"/rewards/v1/pools/{pool_id}", campaign, f"{campaign}/teams/tm",
             f"{campaign}/leaderboard", f"{campaign}/leaderboard/members", f"{campaign}/results"]
    visitor = await member_token(client, tenant, uid("visitor"))
    credentials = {"admin": tenant.admin, "operator": tenant.operator, "ingest": tenant.ingest,
                   "member": await member_token(client, tenant, member), "visitor": visitor}
    for path in reads:
        anonymous = await client.get(path)
        assert anonymous.status_code == 401 and error_code(anonymous) == "unauthorized", path
        for who, credential in credentials.items():
            response = await client.get(path, headers=Tenant.headers(credential))
            assert response.status_code == 200, (path, who, response.text)
    perks = await client.get("/rewards/v1/perks", headers=Tenant.headers(visitor))
    assert sku in {p["sku"] for p in perks.json()["items"]}
