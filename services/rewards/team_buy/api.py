"""HTTP handlers of team-buy campaigns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from proto import team_buy as tb
from services.rewards import store
from services.rewards.api import body
from services.rewards.team_buy import store as team_store
from services.rewards.team_buy import team_buy
from services.rewards.team_buy.leaderboard import Leaderboards
from services.rewards.team_buy.rules import decode_cursor, encode_cursor
from services.runtime.app import json_response
from services.runtime.auth import allow
from services.runtime.deps import PathId, PrincipalDep, ResourcesDep
from services.runtime.errors import NotFound

WRITE = {"rate_group": "write"}
BoardLimit = Annotated[int, Parameter(ge=1, le=100)]
BoardCursor = Annotated[str | None, Parameter(max_length=12)]
AroundTeam = Annotated[str | None, Parameter(min_length=1, max_length=128,
                                             pattern=r"^[A-Za-z0-9._:-]+$")]
_encoder = msgspec.json.Encoder()


def team_response(created: bool, team: tb.Team) -> Response[bytes]:
    return json_response(_encoder.encode(team), 201 if created else 200)


class TeamBuyController(Controller):
    path = "/campaigns/{campaign_id:str}"
    tags = ["team-buy"]

    @put(guards=[allow("operator")])
    async def put_campaign(self, campaign_id: PathId, data: JSONBody[tb.CampaignIn],
                           principal: PrincipalDep, resources: ResourcesDep) -> tb.Campaign:
        """Creates or changes a campaign until it settles. Times without an offset are the
        tenant's local times."""
        async with resources.pool.acquire() as conn:
            return await team_buy.put_campaign(conn, principal.tenant_id, campaign_id, data)

    @get(guards=[allow("operator", "ingest", member=True)])
    async def get_campaign(self, campaign_id: PathId, principal: PrincipalDep,
                           resources: ResourcesDep) -> tb.Campaign:
        row = await team_buy.require_campaign(resources.pool, principal.tenant_id, campaign_id)
        zone = await store.tenant_time_zone(resources.pool, principal.tenant_id)
        return team_buy.campaign_view(row, zone)

    @post("/teams", guards=[allow("operator", "ingest", member=True)], opt=WRITE,
          status_code=201, responses=body(201, tb.Team))
    async def create_team(self, campaign_id: PathId, data: JSONBody[tb.TeamIn],
                          principal: PrincipalDep, resources: ResourcesDep) -> Response[bytes]:
        """A team with its captain (a member token may only captain itself); repeating the
        same request returns the team with 200."""
        principal.require_member(data.captain_member_id)
        async with resources.pool.acquire() as conn:
            created, team = await team_buy.create_team(conn, principal.tenant_id, campaign_id,
                                                       data, datetime.now(UTC))
        return team_response(created, team)

    @post("/teams/{team_id:str}/members", guards=[allow("operator", "ingest", member=True)],
          opt=WRITE, status_code=201, responses=body(201, tb.Team))
    async def join_team(self, campaign_id: PathId, team_id: PathId, data: JSONBody[tb.JoinIn],
                        principal: PrincipalDep, resources: ResourcesDep) -> Response[bytes]:
        """Joins a team (409 team_full, already_in_team, campaign_ended); joining the same
        team again returns it with 200."""
        principal.require_member(data.member_id)
        async with resources.pool.acquire() as conn:
            created, team = await team_buy.join_team(conn, principal.tenant_id, campaign_id,
                                                     team_id, data.member_id, datetime.now(UTC))
        return team_response(created, team)

    @get("/teams/{team_id:str}", guards=[allow("operator", "ingest", member=True)])
    async def get_team(self, campaign_id: PathId, team_id: PathId, principal: PrincipalDep,
                       resources: ResourcesDep) -> tb.Team:
        return await team_buy.team_view(resources.pool, principal.tenant_id, campaign_id,
                                        team_id)

    @get("/leaderboard", guards=[allow("operator", "ingest", member=True)])
    async def leaderboard(self, campaign_id: PathId, principal: PrincipalDep,
                          resources: ResourcesDep, boards: NamedDependency[Leaderboards],
                          limit: BoardLimit = 20, cursor: BoardCursor = None,
                          around_team: AroundTeam = None) -> tb.Leaderboard:
        """Teams by score (net spend in cents), ties by earlier reach of the score, then team
        id. ``around_team`` centres the page on a team; a member token also gets ``me``, the
        row of its own team."""
        tenant = principal.tenant_id
        await team_buy.require_campaign(resources.pool, tenant, campaign_id)
        board = boards
        await board.ensure_built(resources.pool, tenant, campaign_id)
        offset = decode_cursor(cursor)
        if around_team is not None:
            position = await board.team_rank(tenant, campaign_id, around_team)
            if position is None:
                raise NotFound(f"no team {around_team!r} on the board", code="unknown_team")
            offset = max(position - limit // 2, 0)
        page, size = await board.team_page(tenant, campaign_id, offset, limit)
        me = None
        if principal.is_member and principal.member_id:
            own = await team_store.membership(resources.pool, tenant, campaign_id,
                                              principal.member_id)
            position = await board.team_rank(tenant, campaign_id, own["team_id"]) if own \
                else None
            if position is not None:
                me_rows, _ = await board.team_page(tenant, campaign_id, position, 1)
                page_me = await self._rows(resources, tenant, campaign_id, me_rows)
                me = page_me[0] if page_me else None
        return tb.Leaderboard(
            items=await self._rows(resources, tenant, campaign_id, page),
            next_cursor=encode_cursor(offset + limit) if offset + limit < size else None,
            me=me)

    @staticmethod
    async def _rows(resources: Any, tenant: str, campaign_id: str,
                    page: list[tuple[int, str, int]]) -> list[tb.LeaderboardRow]:
        teams = await team_store.teams_by_id(resources.pool, tenant, campaign_id,
                                             [team_id for _, team_id, _ in page])
        return [tb.LeaderboardRow(rank=rank, team_id=team_id, score=score,
                                  name=teams[team_id]["name"] if team_id in teams else None,
                                  members=teams[team_id]["members"] if team_id in teams else 0)
                for rank, team_id, score in page]

    @get("/leaderboard/members", guards=[allow("operator", "ingest", member=True)])
    async def member_board(self, campaign_id: PathId, principal: PrincipalDep,
                           resources: ResourcesDep, boards: NamedDependency[Leaderboards],
                           limit: BoardLimit = 20) -> tb.MemberBoard:
        """The top individual spenders (counted spend in their team), ties by member id."""
        tenant = principal.tenant_id
        await team_buy.require_campaign(resources.pool, tenant, campaign_id)
        board = boards
        await board.ensure_built(resources.pool, tenant, campaign_id)
        page = await board.member_page(tenant, campaign_id, limit)
        teams = {r["member_id"]: r["team_id"] for r in
                 await team_store.board_members(resources.pool, tenant, campaign_id)
                 if r["member_id"] in {m for _, m, _ in page}}
        return tb.MemberBoard(items=[
            tb.MemberRow(rank=rank, member_id=member, team_id=teams.get(member, ""), score=score)
            for rank, member, score in page])

    @get("/results", guards=[allow("operator", "ingest", member=True)])
    async def results(self, campaign_id: PathId, principal: PrincipalDep,
                      resources: ResourcesDep) -> tb.Results:
        """The frozen ranking with prizes; empty until the campaign is settled."""
        row = await team_buy.require_campaign(resources.pool, principal.tenant_id, campaign_id)
        if row["state"] != "settled":
            return tb.Results(state=row["state"], items=[])
        return tb.Results(state="settled", items=[
            tb.Result(rank=r["rank"], team_id=r["team_id"], score=r["score"],
                      prize=msgspec.convert(r["prize"], tb.PrizeOut) if r["prize"] else None)
            for r in await team_store.results(resources.pool, principal.tenant_id,
                                              campaign_id)])
