"""Contracts of team-buy campaigns (``/rewards/v1/campaigns``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from proto.common import Cents, Id, Request, Response, ShortText

Rank = Annotated[int, Meta(ge=1, le=100_000)]
TeamSize = Annotated[int, Meta(ge=2, le=50)]
CampaignState = Literal["open", "settling", "settled"]


class Prize(Request, frozen=True, kw_only=True):
    """For every member of each team ranked rank_from..rank_to."""

    rank_from: Rank
    rank_to: Rank
    points: Annotated[int, Meta(ge=1, le=1_000_000_000)] | None = None
    sku: Id | None = None


class CampaignIn(Request, frozen=True, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
    team_sizes: Annotated[list[TeamSize], Meta(min_length=1, max_length=10)]
    starts_at: datetime
    ends_at: datetime
    min_team_spend_cents: Cents = 0
    prizes: Annotated[list[Prize], Meta(max_length=100)] = []
    settle_grace_s: Annotated[int, Meta(ge=0, le=30 * 86_400)] = 3600


class PrizeOut(Response, frozen=True, kw_only=True):
    rank_from: int
    rank_to: int
    points: int | None
    sku: str | None


class Campaign(Response, frozen=True, kw_only=True):
    campaign_id: str
    name: str
    team_sizes: list[int]
    starts_at: datetime
    ends_at: datetime
    min_team_spend_cents: int
    prizes: list[PrizeOut]
    settle_grace_s: int
    state: str
    settled_at: datetime | None
    tie_rule: str = "earlier_reach_wins"


class CampaignSummary(Campaign, frozen=True, kw_only=True):
    """A campaign as ``GET /campaigns/{id}`` shows it, with its number of teams."""

    teams: int
    created_at: datetime


class CampaignList(Response, frozen=True, kw_only=True):
    items: list[CampaignSummary]
    next_cursor: str | None


class TeamIn(Request, frozen=True, kw_only=True):
    team_id: Id
    captain_member_id: Id
    size: TeamSize
    name: ShortText | None = None


class JoinIn(Request, frozen=True, kw_only=True):
    member_id: Id


class TeamMember(Response, frozen=True, kw_only=True):
    member_id: str
    joined_at: datetime
    spend_cents: int


class Team(Response, frozen=True, kw_only=True):
    campaign_id: str
    team_id: str
    name: str | None
    size: int
    captain_member_id: str
    members: list[TeamMember]
    score: int
    reached_at: datetime
    full: bool


class LeaderboardRow(Response, frozen=True, kw_only=True):
    rank: int
    team_id: str
    name: str | None
    score: int
    members: int


class Leaderboard(Response, frozen=True, kw_only=True):
    items: list[LeaderboardRow]
    next_cursor: str | None
    me: LeaderboardRow | None = None


class MemberRow(Response, frozen=True, kw_only=True):
    rank: int
    member_id: str
    team_id: str
    score: int


class MemberBoard(Response, frozen=True, kw_only=True):
    items: list[MemberRow]


class Result(Response, frozen=True, kw_only=True):
    rank: int
    team_id: str
    score: int
    prize: PrizeOut | None


class Results(Response, frozen=True, kw_only=True):
    state: str
    items: list[Result]
