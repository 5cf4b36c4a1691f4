"""Pure rules of team-buy campaigns: what a valid campaign is, campaign times, which teams are
ranked and their prizes, where a page of the board starts, and how the leaderboard's order is
written into a Redis sorted set."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from proto.team_buy import CampaignIn, Prize, PrizeOut
from services.rewards.windows import check_window
from services.runtime.errors import ValidationFailed

# Sorted-set members are "<reached_at in µs, zero-padded>:<team id>" with score = -cents: Redis
# orders equal scores by member bytes, so ZRANGE gives score high first, then earlier reach,
# then team id -- the ranking PostgreSQL computes.
REACH_DIGITS = 17
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# A prize as asked for, or as stored and shown.
P = TypeVar("P", Prize, PrizeOut)


def localise(at: datetime, time_zone: str) -> datetime:
    """Campaign times without an offset are the tenant's local times."""
    return at.replace(tzinfo=ZoneInfo(time_zone)) if at.tzinfo is None else at


def validate_campaign(body: CampaignIn, starts_at: datetime, ends_at: datetime) -> None:
    check_window(starts_at, ends_at)
    if len(set(body.team_sizes)) != len(body.team_sizes):
        raise ValidationFailed("team sizes must be distinct", field="team_sizes")
    ordered = sorted(body.prizes, key=lambda p: p.rank_from)
    for index, prize in enumerate(ordered):
        if prize.rank_to < prize.rank_from:
            raise ValidationFailed("rank_to must not be below rank_from", field="prizes")
        if prize.points is None and prize.sku is None:
            raise ValidationFailed("a prize needs points, a sku or both", field="prizes")
        if index and prize.rank_from <= ordered[index - 1].rank_to:
            raise ValidationFailed("prize rank ranges overlap", field="prizes",
                                   details={"ranks": [ordered[index - 1].rank_from,
                                                      ordered[index - 1].rank_to,
                                                      prize.rank_from, prize.rank_to]})


def prize_for(rank: int, prizes: Sequence[P]) -> P | None:
    return next((p for p in prizes if p.rank_from <= rank <= p.rank_to), None)


def qualifies(score: int, min_team_spend_cents: int) -> bool:
    """Whether a team is ranked at settlement: it spent something, and at least the minimum."""
    return score > 0 and score >= min_team_spend_cents


def page_around(position: int, limit: int) -> int:
    """The offset of the page of ``limit`` rows with 0-based ``position`` in its middle."""
    return max(position - limit // 2, 0)


def board_member(team_id: str, reached_at: datetime) -> str:
    micros = (reached_at - EPOCH) // timedelta(microseconds=1)
    return f"{micros:0{REACH_DIGITS}d}:{team_id}"


def team_of(board_member_: str) -> str:
    return board_member_.split(":", 1)[1]
