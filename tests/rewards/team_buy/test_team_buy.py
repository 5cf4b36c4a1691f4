"""Team-buy campaigns: teams, scores from purchase events, leaderboards against an independent
ranking, Redis rebuilds and settlement exactly once."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest

from proto.events import Envelope, PurchaseRecorded, PurchaseReversed
from services.rewards.app import components as rewards_components
from services.rewards.ids import digest
from services.rewards.team_buy import actors, store
from services.rewards.team_buy.team_buy import freeze
from services.runtime.outbox import MAX_BATCH
from services.runtime.pagination import encode_cursor
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from services.runtime.worker import WorkerContext
from tests.support.api import Points, Tenant, error_code, make_tenant, member_token, uid
from tests.support.bus import deliver, worker_context


class TeamBuy:
    def __init__(self, client: httpx.AsyncClient, tenant: Tenant, campaign_id: str) -> None:
        self.client = client
        self.tenant = tenant
        self.campaign_id = campaign_id
        self.base = f"/rewards/v1/campaigns/{campaign_id}"
        self.operator = tenant.headers(tenant.operator)
        self.ingest = tenant.headers(tenant.ingest)

    async def put(self, **fields: Any) -> httpx.Response:
        now = datetime.now(UTC)
        body = {"name": "Spring team-buy", "team_sizes": [2, 5],
                "starts_at": (now - timedelta(hours=1)).isoformat(),
                "ends_at": (now + timedelta(hours=1)).isoformat(), **fields}
        return await self.client.put(self.base, headers=self.operator, json=body)

    async def team(self, team_id: str, captain: str, size: int = 5) -> httpx.Response:
        return await self.client.post(f"{self.base}/teams", headers=self.ingest, json={
            "team_id": team_id, "captain_member_id": captain, "size": size,
            "name": f"Team {team_id}"})

    async def join(self, team_id: str, member: str) -> httpx.Response:
        return await self.client.post(f"{self.base}/teams/{team_id}/members",
                                      headers=self.ingest, json={"member_id": member})

    async def show(self, team_id: str) -> dict[str, Any]:
        response = await self.client.get(f"{self.base}/teams/{team_id}", headers=self.ingest)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def board(self, **params: Any) -> dict[str, Any]:
        response = await self.client.get(f"{self.base}/leaderboard", headers=self.ingest,
                                         params=params)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def whole_board(self) -> list[tuple[int, str, int]]:
        rows, cursor = [], None
        while True:
            page = await self.board(limit=100, **({"cursor": cursor} if cursor else {}))
            rows += [(r["rank"], r["team_id"], r["score"]) for r in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return rows


@pytest.fixture
def team_buy_api(client: httpx.AsyncClient, tenant: Tenant) -> TeamBuy:
    return TeamBuy(client, tenant, uid("camp"))


def envelope(tenant: str, event: Any) -> str:
    return msgspec.json.encode(Envelope(
        event_id=str(uuid.uuid4()), tenant_id=tenant, service="points",
        type=type(event).__name__, emitted_at=datetime.now(UTC),
        data=msgspec.Raw(msgspec.json.encode(event)))).decode()


async def run(settings: Settings, *steps: Any) -> None:
    """Runs worker steps concurrently on one worker context."""
    async with worker_context(settings):
        await asyncio.gather(*steps)


async def apply(settings: Settings, bodies: list[str]) -> None:
    """What the relay and the worker do with these events: batches to the real actor."""
    async with worker_context(settings):
        for start in range(0, len(bodies), MAX_BATCH):
            await actors.apply_team_purchases(bodies[start:start + MAX_BATCH])


async def test_leaderboard_of_810_teams_equals_an_independent_ranking(
        team_buy_api: TeamBuy, tenant: Tenant, resources: Resources, settings: Settings) -> None:
    api = team_buy_api
    assert (await api.put()).status_code == 200
    rng = random.Random(7)
    teams: dict[str, list[str]] = {}

    async def form(index: int) -> None:
        size = 2 if index % 2 else 5
        team_id = f"t{index:04d}"
        captain = f"{team_id}-m0"
        assert (await api.team(team_id, captain, size)).status_code == 201
        members = [captain]
        for n in range(1, rng.randint(1, size)):
            member = f"{team_id}-m{n}"
            assert (await api.join(team_id, member)).status_code == 201
            members.append(member)
        teams[team_id] = members

    for start in range(0, 810, 90):
        await asyncio.gather(*(form(i) for i in range(start, min(start + 90, 810))))
    joined = {r["member_id"]: r["joined_at"] for r in await resources.pool.fetch(
        "SELECT member_id, joined_at FROM rewards.team_members WHERE tenant_id = $1"
        " AND campaign_id = $2", tenant.name, api.campaign_id)}
    created = {r["team_id"]: r["created_at"] for r in await resources.pool.fetch(
        "SELECT team_id, created_at FROM rewards.teams WHERE tenant_id = $1"
        " AND campaign_id = $2", tenant.name, api.campaign_id)}

    # Raw events: purchases after joining (amounts from a small set, so scores tie), some
    # before joining (not counted), refunds of some; times from a small set so reaches tie too.
    later = max(joined.values()) + timedelta(seconds=1)
    moments = [later + timedelta(seconds=s) for s in range(5)]
    events: list[Any] = []
    counted: dict[str, tuple[str, int, datetime]] = {}   # event id -> team, amount, at
    for team_id, members in teams.items():
        for member in members:
            for _ in range(rng.randint(0, 2)):
                event_id = uid("buy")
                amount = rng.choice([1_000, 2_000, 5_000])
                at = rng.choice(moments)
                events.append(PurchaseRecorded(member_id=member, event_id=event_id,
                                               amount_cents=amount, occurred_at=at))
                counted[event_id] = (team_id, amount, at)
            if rng.random() < 0.1:
                events.append(PurchaseRecorded(
                    member_id=member, event_id=uid("early"), amount_cents=9_000,
                    occurred_at=joined[member] - timedelta(seconds=1)))
    refunds = []
    for event_id in rng.sample(sorted(counted), 300):
        team_id, amount, at = counted[event_id]
        cut = rng.choice([amount, amount // 2])
        reversed_at = rng.choice(moments) + timedelta(seconds=10)
        refunds.append(PurchaseReversed(member_id="x", event_id=event_id, reversal_id=uid("r"),
                                        amount_cents=cut, occurred_at=at,
                                        reversed_at=reversed_at))
    bodies = [envelope(tenant.name, e) for e in events + refunds]
    await apply(settings, bodies)
    await apply(settings, bodies[:500])   # a redelivery changes nothing

    score = {team_id: 0 for team_id in teams}
    reached = dict(created)
    for team_id, amount, at in counted.values():
        score[team_id] += amount
        reached[team_id] = max(reached[team_id], at)
    for refund in refunds:
        team_id = counted[refund.event_id][0]
        score[team_id] -= refund.amount_cents
        reached[team_id] = max(reached[team_id], refund.reversed_at)
    expected = sorted(teams, key=lambda t: (-score[t], reached[t], t))
    board = await api.whole_board()
    assert board == [(rank, t, score[t]) for rank, t in enumerate(expected, 1)]
    assert len({score[t] for t in teams}) < 810 // 4   # plenty of ties were decided

    around = await api.board(around_team=expected[400], limit=10)
    assert [r["team_id"] for r in around["items"]] == expected[395:405]
    assert around["items"][5]["rank"] == 401

    # Pages read together (grouped into shared reads): each is its own slice of the ranking.
    pages = [(offset, limit) for offset in (0, 20, 500, 800) for limit in (1, 20, 50)] * 8
    read = await asyncio.gather(*(api.board(limit=limit, cursor=encode_cursor(offset))
                                  for offset, limit in pages))
    for (offset, limit), page in zip(pages, read, strict=True):
        assert [(r["rank"], r["team_id"], r["score"]) for r in page["items"]] == [
            (rank, t, score[t]) for rank, t in
            enumerate(expected[offset:offset + limit], offset + 1)], (offset, limit)
        assert (page["next_cursor"] is None) == (offset + limit >= 810)

    # Redis flushed: the board is rebuilt from PostgreSQL, identical.
    await resources.redis.flushdb()
    assert await api.whole_board() == board

    top = await api.client.get(f"{api.base}/leaderboard/members", headers=api.ingest,
                               params={"limit": 5})
    spend: dict[str, int] = {}
    for event in events:
        if event.event_id in counted:
            spend[event.member_id] = spend.get(event.member_id, 0) + event.amount_cents
    for refund in refunds:
        bought = next(e for e in events if e.event_id == refund.event_id)
        spend[bought.member_id] -= refund.amount_cents
    best = sorted(spend, key=lambda m: (-spend[m], m))[:5]
    assert [(r["member_id"], r["score"]) for r in top.json()["items"]] == [
        (m, spend[m]) for m in best]


async def test_scores_count_from_joining_and_refunds_within_the_grace(
        team_buy_api: TeamBuy, tenant: Tenant, resources: Resources, settings: Settings,
        client: httpx.AsyncClient) -> None:
    api = team_buy_api
    points = Points(client, tenant)
    assert (await api.put()).status_code == 200
    captain, late = uid("cap"), uid("late")
    before_join = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    assert (await points.event(late, "purchase", amount_cents=7_000,
                               occurred_at=before_join)).status_code == 201
    assert (await api.team("team-a", captain, size=2)).status_code == 201
    assert (await api.join("team-a", late)).status_code == 201
    bought = await points.event(captain, "purchase", amount_cents=30_000)
    assert (await points.event(late, "purchase", amount_cents=5_000)).status_code == 201
    await deliver(resources, settings, tenant.name, twice=True)
    team = await api.show("team-a")
    assert team["score"] == 35_000 and team["full"] is True
    assert {m["member_id"]: m["spend_cents"] for m in team["members"]} == {
        captain: 30_000, late: 5_000}

    # The campaign ends; within the grace a refund still counts, a join does not.
    now = datetime.now(UTC)
    assert (await api.put(starts_at=(now - timedelta(hours=2)).isoformat(),
                          ends_at=(now - timedelta(seconds=1)).isoformat())).status_code == 200
    refund = await points.reverse(bought.json()["event_id"], amount_cents=10_000)
    assert refund.status_code == 201
    await deliver(resources, settings, tenant.name)
    assert (await api.show("team-a"))["score"] == 25_000
    board = await api.board()
    assert board["items"][0]["score"] == 25_000
    refused = await api.team("team-b", uid("m"), size=2)
    assert refused.status_code == 409 and error_code(refused) == "campaign_ended"


async def test_concurrent_joins_fill_a_team_of_five_exactly(team_buy_api: TeamBuy) -> None:
    api = team_buy_api
    assert (await api.put()).status_code == 200
    assert (await api.team("five", uid("cap"), size=5)).status_code == 201
    members = [uid("m") for _ in range(20)]
    answers = await asyncio.gather(*(api.join("five", m) for m in members))
    assert sorted(a.status_code for a in answers) == [201] * 4 + [409] * 16
    assert {error_code(a) for a in answers if a.status_code == 409} == {"team_full"}
    team = await api.show("five")
    assert len(team["members"]) == 5 and team["full"] is True
    # A member in one team cannot join another; joining one's own team again is a no-op.
    winner = next(m for m, a in zip(members, answers, strict=True) if a.status_code == 201)
    assert (await api.team("two", uid("cap"), size=2)).status_code == 201
    other = await api.join("two", winner)
    assert other.status_code == 409 and error_code(other) == "already_in_team"
    again = await api.join("five", winner)
    assert again.status_code == 200
    # A member token may only join as itself.
    token = {"Authorization": "Bearer " + await member_token(api.client, api.tenant, "mx")}
    forged = await api.client.post(f"{api.base}/teams/two/members", headers=token,
                                   json={"member_id": "someone-else"})
    assert forged.status_code == 403


async def settled_campaign(api: TeamBuy, client: httpx.AsyncClient, tenant: Tenant,
                           resources: Resources, settings: Settings) -> dict[str, list[str]]:
    """Three teams with purchases, a campaign that ended with no grace left."""
    points = Points(client, tenant)
    sku = uid("sku")
    assert (await client.put(f"/rewards/v1/perks/{sku}", headers=api.operator, json={
        "name": "Trial kit", "cost_points": 10})).status_code == 200
    assert (await api.put(min_team_spend_cents=1_000, settle_grace_s=0, prizes=[
        {"rank_from": 1, "rank_to": 1, "points": 500, "sku": sku},
        {"rank_from": 2, "rank_to": 3, "points": 100}])).status_code == 200
    teams = {"gold": [uid("g") for _ in range(5)], "silver": [uid("s") for _ in range(2)],
             "bronze": [uid("b") for _ in range(2)], "idle": [uid("i")]}
    for team_id, members in teams.items():
        assert (await api.team(team_id, members[0], size=5 if team_id == "gold" else 2)
                ).status_code == 201
        for member in members[1:]:
            assert (await api.join(team_id, member)).status_code == 201
    for team_id, amount in (("gold", 9_000), ("silver", 5_000), ("bronze", 2_000)):
        for member in teams[team_id]:
            assert (await points.event(member, "purchase", amount_cents=amount)
                    ).status_code == 201
    await deliver(resources, settings, tenant.name)
    now = datetime.now(UTC)
    assert (await api.put(min_team_spend_cents=1_000, settle_grace_s=0,
                          starts_at=(now - timedelta(hours=2)).isoformat(),
                          ends_at=(now - timedelta(seconds=1)).isoformat(), prizes=[
                              {"rank_from": 1, "rank_to": 1, "points": 500, "sku": sku},
                              {"rank_from": 2, "rank_to": 3, "points": 100}])).status_code == 200
    return teams


async def check_prizes(api: TeamBuy, client: httpx.AsyncClient, teams: dict[str, list[str]],
                       resources: Resources, tenant: Tenant) -> None:
    points = Points(client, tenant)
    earned = {"gold": 90, "silver": 50, "bronze": 20, "idle": 0}   # 1 point per 100 cents
    prize = {"gold": 500, "silver": 100, "bronze": 100, "idle": 0}
    for team_id, members in teams.items():
        for member in members:
            state = await points.member(member)
            assert state["available"] == earned[team_id] + prize[team_id], (team_id, member)
    for member in teams["gold"]:
        coupons = await client.get(f"/rewards/v1/members/{member}/coupons", headers=api.ingest)
        assert len(coupons.json()["items"]) == 1
    check = await client.get("/points/v1/ledger/check", headers=tenant.headers(tenant.admin))
    assert check.status_code == 200 and check.json()["ok"] is True, check.text
    results = await client.get(f"{api.base}/results", headers=api.ingest)
    assert [(r["rank"], r["team_id"], r["score"]) for r in results.json()["items"]] == [
        (1, "gold", 45_000), (2, "silver", 10_000), (3, "bronze", 4_000)]
    settled = await resources.pool.fetchval(
        "SELECT count(*) FROM fuli.outbox WHERE tenant_id = $1 AND event_type ="
        " 'CampaignSettled'", tenant.name)
    assert settled == 1


async def test_settlement_run_twice_concurrently_issues_once(
        team_buy_api: TeamBuy, client: httpx.AsyncClient, tenant: Tenant,
        resources: Resources, settings: Settings) -> None:
    teams = await settled_campaign(team_buy_api, client, tenant, resources, settings)
    empty = await client.get(f"{team_buy_api.base}/results", headers=team_buy_api.ingest)
    assert empty.json() == {"state": "open", "items": []}
    await run(settings, actors.settle_campaigns(), actors.settle_campaigns())
    await run(settings, actors.settle_campaigns())
    await check_prizes(team_buy_api, client, teams, resources, tenant)


async def test_settlement_killed_halfway_finishes_once(
        team_buy_api: TeamBuy, client: httpx.AsyncClient, tenant: Tenant,
        resources: Resources, settings: Settings) -> None:
    api = team_buy_api
    teams = await settled_campaign(api, client, tenant, resources, settings)
    now = datetime.now(UTC)

    async def die_after_first_prize() -> None:
        # A run that froze the ranking and issued rank 1, then died.
        resources_ = await WorkerContext.resources()
        components = await rewards_components()
        async with resources_.pool.acquire() as conn, conn.transaction():
            campaign = await store.start_settling(conn, tenant.name, api.campaign_id)
            assert campaign is not None
            await freeze(conn, campaign)
        assert await components.team_buy.issue_next(tenant.name, api.campaign_id, now)
        # ... and one that granted rank 2's points but died before recording it.
        await components.points.grant_each(tenant.name,
                                           "teambuy:" + digest(api.campaign_id, "2"),
                                           sorted(teams["silver"]), 100,
                                           f"team-buy {api.campaign_id} rank 2")

    await run(settings, die_after_first_prize())
    assert (await client.get(f"{api.base}/results", headers=api.ingest)).json()["items"] == []
    await run(settings, actors.settle_campaigns())
    await run(settings, actors.settle_campaigns())
    await check_prizes(api, client, teams, resources, tenant)


async def counts(resources: Resources, tenant: Tenant) -> tuple[int, ...]:
    row = await resources.pool.fetchrow(
        "SELECT (SELECT count(*) FROM rewards.campaigns WHERE tenant_id = $1),"
        " (SELECT count(*) FROM rewards.teams WHERE tenant_id = $1),"
        " (SELECT count(*) FROM rewards.team_members WHERE tenant_id = $1)", tenant.name)
    return tuple(row)


async def test_bad_input_is_refused_and_changes_nothing(team_buy_api: TeamBuy,
                                                        tenant: Tenant,
                                                        resources: Resources) -> None:
    api = team_buy_api
    assert (await api.put()).status_code == 200
    assert (await api.team("t1", "cap1", size=2)).status_code == 201
    before = await counts(resources, tenant)
    now = datetime.now(UTC)
    bad_campaigns: list[dict[str, Any]] = [
        {"prizes": [{"rank_from": 1, "rank_to": 3, "points": 10},
                    {"rank_from": 3, "rank_to": 5, "points": 5}]},
        {"prizes": [{"rank_from": 2, "rank_to": 1, "points": 10}]},
        {"prizes": [{"rank_from": 1, "rank_to": 1}]},
        {"prizes": [{"rank_from": 1, "rank_to": 1, "sku": "no-such-perk"}]},
        {"ends_at": (now - timedelta(days=2)).isoformat()},
        {"team_sizes": [2, 2]},
        {"team_sizes": [1]},
        {"team_sizes": []},
        {"colour": "red"},
        {"min_team_spend_cents": -1},
        {"settle_grace_s": "soon"},
    ]
    for fields in bad_campaigns:
        response = await api.put(**fields)
        assert 400 <= response.status_code < 500, (fields, response.text)
        assert "error" in response.json()
    cases = [
        await api.team("t2", "cap2", size=3),                       # size not offered
        await api.client.post(f"{api.base}/teams", headers=api.ingest, json={
            "team_id": "t3", "captain_member_id": "cap3", "size": 2, "extra": 1}),
        await api.client.post("/rewards/v1/campaigns/nope/teams", headers=api.ingest, json={
            "team_id": "t4", "captain_member_id": "cap4", "size": 2}),
        await api.join("missing-team", "m1"),
        await api.client.post("/rewards/v1/campaigns/nope/teams/t1/members",
                              headers=api.ingest, json={"member_id": "m1"}),
        await api.client.post(f"{api.base}/teams/t1/members", headers=api.ingest,
                              json={"member_id": "m1", "note": "hi"}),
        await api.team("t1", "someone-else", size=2),                # same id, other captain
        await api.team("t5", "cap1", size=2),                        # captain already in t1
        await api.client.get("/rewards/v1/campaigns/nope/leaderboard", headers=api.ingest),
        await api.client.get(f"{api.base}/leaderboard", headers=api.ingest,
                             params={"cursor": "abc"}),
        await api.client.get(f"{api.base}/leaderboard", headers=api.ingest,
                             params={"limit": 0}),
        await api.client.get(f"{api.base}/leaderboard", headers=api.ingest,
                             params={"around_team": "ghost"}),
        await api.client.get("/rewards/v1/campaigns/nope/results", headers=api.ingest),
    ]
    for response in cases:
        assert 400 <= response.status_code < 500, response.text
        assert "error" in response.json()
    assert await counts(resources, tenant) == before
    shown = await api.client.get(api.base, headers=api.ingest)
    assert shown.json()["team_sizes"] == [2, 5] and shown.json()["prizes"] == []


async def test_the_leaderboard_of_an_unknown_campaign_is_404_however_read(
        team_buy_api: TeamBuy, resources: Resources) -> None:
    """A page is read from a built board without asking PostgreSQL for the campaign first; a
    board left in Redis by another tenant's campaign of the same id is no campaign of this
    one."""
    api = team_buy_api
    for params in ({}, {"limit": 5, "cursor": "NQ"}, {"around_team": "t1"}):
        answer = await api.client.get(f"{api.base}/leaderboard", headers=api.ingest,
                                      params=params)
        assert answer.status_code == 404 and error_code(answer) == "unknown_campaign", params
    assert (await api.put()).status_code == 200
    assert (await api.team("t1", "m1")).status_code == 201
    assert [r["team_id"] for r in (await api.board())["items"]] == ["t1"]  # built now
    # Read together with the pages of a campaign that does not exist, each gets its own answer.
    unknown = f"/rewards/v1/campaigns/{uid('camp')}/leaderboard"
    answers = await asyncio.gather(*(api.client.get(path, headers=api.ingest)
                                     for path in [f"{api.base}/leaderboard", unknown] * 20))
    assert [a.status_code for a in answers] == [200, 404] * 20
    assert all(a.json()["items"][0]["team_id"] == "t1" for a in answers[::2])
    # The same board in Redis under a tenant that has no such campaign.
    other = await make_tenant(resources.pool)
    for kind in ("built", "teams", "teams:index"):
        assert await resources.redis.copy(
            f"fuli:{{{api.tenant.name}}}:teambuy:{api.campaign_id}:{kind}",
            f"fuli:{{{other.name}}}:teambuy:{api.campaign_id}:{kind}")
    answer = await api.client.get(f"{api.base}/leaderboard",
                                  headers=other.headers(other.ingest))
    assert answer.status_code == 404 and error_code(answer) == "unknown_campaign"
