"""The operators' list of team-buy campaigns: newest first, by state, paged, each as its own
GET shows it with its number of teams."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.rewards.team_buy import actors
from services.runtime.settings import Settings
from tests.rewards.helpers import BAD_NEWEST_FIRST_CURSORS
from tests.rewards.team_buy.test_team_buy import TeamBuy, run
from tests.support.api import Tenant, error_code, member_token, uid


async def campaigns(api: TeamBuy, headers: dict[str, str] | None = None,
                    **params: Any) -> Any:
    return await api.client.get("/rewards/v1/campaigns", params=params,
                                headers=headers or api.operator)


async def test_campaigns_newest_first_by_state_with_their_teams(
        client: httpx.AsyncClient, tenant: Tenant, settings: Settings) -> None:
    ended, busy, fresh = (TeamBuy(client, tenant, uid(name))
                          for name in ("ended", "busy", "fresh"))
    now = datetime.now(UTC)
    assert (await ended.put(settle_grace_s=0, starts_at=(now - timedelta(hours=2)).isoformat(),
                            ends_at=(now - timedelta(seconds=1)).isoformat())
            ).status_code == 200
    assert (await busy.put(name="Busy team-buy")).status_code == 200
    assert (await fresh.put(team_sizes=[3])).status_code == 200
    for team_id in ("red", "blue"):
        assert (await busy.team(team_id, uid("m"), size=2)).status_code == 201
    await run(settings, actors.settle_campaigns())
    assert (await client.get(ended.base, headers=ended.ingest)).json()["state"] == "settled"

    listed = await campaigns(busy)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [c["campaign_id"] for c in items] == [
        fresh.campaign_id, busy.campaign_id, ended.campaign_id]
    assert listed.json()["next_cursor"] is None
    assert [c["teams"] for c in items] == [0, 2, 0]
    for api, item in zip((fresh, busy, ended), items, strict=True):
        shown = (await client.get(api.base, headers=api.ingest)).json()
        assert {k: v for k, v in item.items() if k not in ("teams", "created_at")} == shown
    assert items[1]["name"] == "Busy team-buy" and items[0]["team_sizes"] == [3]
    created = [datetime.fromisoformat(c["created_at"]) for c in items]
    assert created == sorted(created, reverse=True)

    by_state = {state: [c["campaign_id"] for c in
                        (await campaigns(busy, status=state)).json()["items"]]
                for state in ("open", "settling", "settled")}
    assert by_state == {"open": [fresh.campaign_id, busy.campaign_id], "settling": [],
                        "settled": [ended.campaign_id]}

    first = (await campaigns(busy, limit=2)).json()
    assert [c["campaign_id"] for c in first["items"]] == [fresh.campaign_id, busy.campaign_id]
    second = (await campaigns(busy, headers=tenant.headers(tenant.admin), limit=2,
                              cursor=first["next_cursor"])).json()
    assert [c["campaign_id"] for c in second["items"]] == [ended.campaign_id]
    assert second["next_cursor"] is None


async def test_bad_campaign_queries_are_422_and_only_operators_list(
        client: httpx.AsyncClient, tenant: Tenant) -> None:
    api = TeamBuy(client, tenant, uid("camp"))
    assert (await api.put()).status_code == 200
    for params in ({"status": "closed"}, {"status": "OPEN"}, {"limit": 0}, {"limit": 201},
                   *({"cursor": cursor} for cursor in BAD_NEWEST_FIRST_CURSORS)):
        response = await campaigns(api, **params)
        assert response.status_code == 422, (params, response.text)
        assert error_code(response) == "validation_failed", (params, response.text)
    token = api.tenant.headers(await member_token(api.client, api.tenant, uid("m")))
    assert (await campaigns(api, headers=api.ingest)).status_code == 403
    assert (await campaigns(api, headers=token)).status_code == 403
    assert [c["campaign_id"] for c in (await campaigns(api)).json()["items"]] == [
        api.campaign_id]
