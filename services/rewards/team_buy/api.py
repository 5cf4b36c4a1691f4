"""HTTP handlers of team-buy campaigns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import msgspec
from litestar import Controller, Response, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from proto import team_buy as tb
from proto.common import ID_PATTERN
from services.rewards.params import Cursor, PageLimit
from services.rewards.team_buy.team_buy import TeamBuy
from services.runtime.app import json_response, replayable
from services.runtime.auth import allow
from services.runtime.deps import PathId, PrincipalDep
from services.runtime.ratelimit import WRITE

BoardLimit = Annotated[int, Parameter(ge=1, le=100)]
BoardCursor = Annotated[str | None, Parameter(max_length=24)]
AroundTeam = Annotated[str | None, Parameter(min_length=1, max_length=128,
                                             pattern=ID_PATTERN)]
StatusParam = Annotated[tb.CampaignState | None, Parameter(
    description="open, settling or settled")]
_encoder = msgspec.json.Encoder()


def team_response(created: bool, team: tb.Team) -> Response[bytes]:
    return json_response(_encoder.encode(team), 201 if created else 200)


class CampaignsController(Controller):
    tags = ["team-buy"]

    @get("/campaigns", access=allow("operator"))
    async def list_campaigns(self, principal: PrincipalDep, team_buy: NamedDependency[TeamBuy],
                             status: StatusParam = None, limit: PageLimit = 50,
                             cursor: Cursor = None) -> tb.CampaignList:
        """The tenant's campaigns newest first (in one ``state`` only with ``status``), each
        as ``GET /campaigns/{campaign_id}`` shows it with its number of teams."""
        return await team_buy.campaigns(principal.tenant_id, status, limit, cursor)


class TeamBuyController(Controller):
    path = "/campaigns/{campaign_id:str}"
    tags = ["team-buy"]

    @put(access=allow("operator"))
    async def put_campaign(self, campaign_id: PathId, data: JSONBody[tb.CampaignIn],
                           principal: PrincipalDep,
                           team_buy: NamedDependency[TeamBuy]) -> tb.Campaign:
        """Creates or changes a campaign until it settles. Times without an offset are the
        tenant's local times."""
        return await team_buy.put_campaign(principal.tenant_id, campaign_id, data)

    @get(access=allow("ingest", member=True))
    async def get_campaign(self, campaign_id: PathId, principal: PrincipalDep,
                           team_buy: NamedDependency[TeamBuy]) -> tb.Campaign:
        return await team_buy.campaign(principal.tenant_id, campaign_id)

    @post("/teams", access=allow("ingest", member=True), opt=WRITE,
          status_code=201, responses=replayable(201, tb.Team))
    async def create_team(self, campaign_id: PathId, data: JSONBody[tb.TeamIn],
                          principal: PrincipalDep,
                          team_buy: NamedDependency[TeamBuy]) -> Response[bytes]:
        """A team with its captain (a member token may only captain itself); repeating the
        same request returns the team with 200."""
        principal.require_member(data.captain_member_id)
        created, team = await team_buy.create_team(principal.tenant_id, campaign_id, data,
                                                   datetime.now(UTC))
        return team_response(created, team)

    @post("/teams/{team_id:str}/members", access=allow("ingest", member=True),
          opt=WRITE, status_code=201, responses=replayable(201, tb.Team))
    async def join_team(self, campaign_id: PathId, team_id: PathId, data: JSONBody[tb.JoinIn],
                        principal: PrincipalDep,
                        team_buy: NamedDependency[TeamBuy]) -> Response[bytes]:
        """Joins a team (409 team_full, already_in_team, campaign_ended); joining the same
        team again returns it with 200."""
        principal.require_member(data.member_id)
        created, team = await team_buy.join_team(principal.tenant_id, campaign_id, team_id,
                                                 data.member_id, datetime.now(UTC))
        return team_response(created, team)

    @get("/teams/{team_id:str}", access=allow("ingest", member=True))
    async def get_team(self, campaign_id: PathId, team_id: PathId, principal: PrincipalDep,
                       team_buy: NamedDependency[TeamBuy]) -> tb.Team:
        return await team_buy.team(principal.tenant_id, campaign_id, team_id)

    @get("/leaderboard", access=allow("ingest", member=True))
    async def leaderboard(self, campaign_id: PathId, principal: PrincipalDep,
                          team_buy: NamedDependency[TeamBuy], limit: BoardLimit = 20,
                          cursor: BoardCursor = None,
                          around_team: AroundTeam = None) -> tb.Leaderboard:
        """Teams by score (net spend in cents), ties by earlier reach of the score, then team
        id. ``around_team`` centres the page on a team; a member token also gets ``me``, the
        row of its own team."""
        return await team_buy.leaderboard(
            principal.tenant_id, campaign_id, limit=limit, cursor=cursor,
            around_team=around_team,
            member_id=principal.member_id if principal.is_member else None)

    @get("/leaderboard/members", access=allow("ingest", member=True))
    async def member_board(self, campaign_id: PathId, principal: PrincipalDep,
                           team_buy: NamedDependency[TeamBuy],
                           limit: BoardLimit = 20) -> tb.MemberBoard:
        """The top individual spenders (counted spend in their team), ties by member id."""
        return await team_buy.member_board(principal.tenant_id, campaign_id, limit)

    @get("/results", access=allow("ingest", member=True))
    async def results(self, campaign_id: PathId, principal: PrincipalDep,
                      team_buy: NamedDependency[TeamBuy]) -> tb.Results:
        """The frozen ranking with prizes; empty until the campaign is settled."""
        return await team_buy.results(principal.tenant_id, campaign_id)
