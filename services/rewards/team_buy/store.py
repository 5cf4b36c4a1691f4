"""The SQL of team-buy campaigns: campaigns, teams and members, scores, board sources and
settlement."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from proto.team_buy import Prize, PrizeOut, Result, TeamMember
from services.runtime.db import Conn, Db, as_struct, as_struct_or_none, as_structs

RANKING = "ORDER BY t.score DESC, t.reached_at, t.team_id COLLATE \"C\""


class CampaignRow(msgspec.Struct, frozen=True):
    tenant_id: str
    campaign_id: str
    name: str
    team_sizes: list[int]
    starts_at: datetime
    ends_at: datetime
    min_team_spend_cents: int
    prizes: list[PrizeOut]
    settle_grace_s: int
    state: Literal["open", "settling", "settled"]
    settled_at: datetime | None


CAMPAIGN = ("tenant_id, campaign_id, name, team_sizes, starts_at, ends_at, min_team_spend_cents,"
            " prizes, settle_grace_s, state, settled_at")


class CampaignListRow(CampaignRow, frozen=True):
    teams: int
    created_at: datetime


class TeamRow(msgspec.Struct, frozen=True):
    team_id: str
    name: str | None
    size: int
    captain_member_id: str
    members: int
    score: int
    reached_at: datetime


TEAM = "team_id, name, size, captain_member_id, members, score, reached_at"


class Membership(msgspec.Struct, frozen=True):
    team_id: str
    joined_at: datetime


class Seat(msgspec.Struct, frozen=True):
    """A team's member count after a join, and its size."""

    members: int
    size: int


class Refund(msgspec.Struct, frozen=True):
    refunded_cents: int
    last_at: datetime


class Counted(msgspec.Struct, frozen=True):
    """A purchase (or a refund, with a negative net) counted for a member's team."""

    campaign_id: str
    team_id: str
    member_id: str
    net: int


class TeamScore(msgspec.Struct, frozen=True):
    team_id: str
    score: int
    reached_at: datetime
    version: int


class MemberScore(msgspec.Struct, frozen=True):
    member_id: str
    team_id: str
    spend_cents: int
    version: int


class RankedTeam(msgspec.Struct, frozen=True):
    team_id: str
    score: int
    reached_at: datetime
    member_ids: list[str]


class CampaignResult(msgspec.Struct, frozen=True):
    rank: int
    team_id: str
    score: int
    prize: PrizeOut | None
    member_ids: list[str]


class CampaignRef(msgspec.Struct, frozen=True):
    tenant_id: str
    campaign_id: str


class Settled(msgspec.Struct, frozen=True):
    ranked: int
    with_prizes: int


# --- campaigns and teams --------------------------------------------------------------------

async def put_campaign(db: Db, tenant_id: str, campaign_id: str, name: str,
                       team_sizes: list[int], starts_at: datetime, ends_at: datetime,
                       min_team_spend_cents: int, prizes: list[Prize],
                       settle_grace_s: int) -> CampaignRow | None:
    """Creates or changes a campaign that has not started settling; None if it has."""
    return as_struct_or_none(CampaignRow, await db.fetchrow(
        "INSERT INTO rewards.campaigns AS c (tenant_id, campaign_id, name, team_sizes,"
        " starts_at, ends_at, min_team_spend_cents, prizes, settle_grace_s)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (tenant_id, campaign_id) DO UPDATE SET name = EXCLUDED.name,"
        " team_sizes = EXCLUDED.team_sizes, starts_at = EXCLUDED.starts_at,"
        " ends_at = EXCLUDED.ends_at, min_team_spend_cents = EXCLUDED.min_team_spend_cents,"
        " prizes = EXCLUDED.prizes, settle_grace_s = EXCLUDED.settle_grace_s,"
        " updated_at = now() WHERE c.state = 'open' RETURNING " + CAMPAIGN,
        tenant_id, campaign_id, name, team_sizes, starts_at, ends_at, min_team_spend_cents,
        prizes, settle_grace_s))


async def campaign(db: Db, tenant_id: str, campaign_id: str) -> CampaignRow | None:
    return as_struct_or_none(CampaignRow, await db.fetchrow(
        "SELECT " + CAMPAIGN + " FROM rewards.campaigns"
        " WHERE tenant_id = $1 AND campaign_id = $2", tenant_id, campaign_id))


async def campaigns(db: Db, tenant_id: str, state: str | None,
                    before: tuple[datetime, str] | None, limit: int) -> list[CampaignListRow]:
    """The tenant's campaigns (in ``state`` only, if given) newest first, after ``before``
    (created_at, campaign_id), with their numbers of teams."""
    return as_structs(CampaignListRow, await db.fetch(
        "SELECT " + CAMPAIGN + ", created_at,"
        " (SELECT count(*) FROM rewards.teams t"
        "  WHERE t.tenant_id = c.tenant_id AND t.campaign_id = c.campaign_id) AS teams"
        " FROM rewards.campaigns c WHERE tenant_id = $1 AND ($2::text IS NULL OR state = $2)"
        " AND ($3::timestamptz IS NULL OR (created_at, campaign_id) < ($3, $4))"
        " ORDER BY created_at DESC, campaign_id DESC LIMIT $5",
        tenant_id, state, before[0] if before else None, before[1] if before else None,
        limit))


async def insert_team(db: Db, tenant_id: str, campaign_id: str, team_id: str,
                      name: str | None, size: int, captain: str, now: datetime) -> bool:
    inserted = await db.fetchval(
        "INSERT INTO rewards.teams (tenant_id, campaign_id, team_id, name, size,"
        " captain_member_id, reached_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)"
        " ON CONFLICT DO NOTHING RETURNING true",
        tenant_id, campaign_id, team_id, name, size, captain, now)
    return bool(inserted)


async def team(db: Db, tenant_id: str, campaign_id: str, team_id: str) -> TeamRow | None:
    return as_struct_or_none(TeamRow, await db.fetchrow(
        "SELECT " + TEAM + " FROM rewards.teams"
        " WHERE tenant_id = $1 AND campaign_id = $2 AND team_id = $3",
        tenant_id, campaign_id, team_id))


async def teams_by_id(db: Db, tenant_id: str, campaign_id: str,
                      team_ids: list[str]) -> dict[str, TeamRow] | None:
    """The teams of the campaign with these ids; None when there is no such campaign (one
    round trip for both: a leaderboard page reads them on every request)."""
    rows = await db.fetch(
        "SELECT c.found, t.* FROM (SELECT EXISTS (SELECT FROM rewards.campaigns"
        "  WHERE tenant_id = $1 AND campaign_id = $2) AS found) c"
        " LEFT JOIN LATERAL (SELECT " + TEAM + " FROM rewards.teams"
        "  WHERE tenant_id = $1 AND campaign_id = $2 AND team_id = any($3::text[])) t"
        " ON c.found", tenant_id, campaign_id, team_ids)
    if not rows[0]["found"]:
        return None
    teams = as_structs(TeamRow, [row for row in rows if row["team_id"] is not None])
    return {row.team_id: row for row in teams}


async def add_member(db: Db, tenant_id: str, campaign_id: str, team_id: str, member_id: str,
                     now: datetime) -> bool:
    """False if the member is already in a team of this campaign."""
    inserted = await db.fetchval(
        "INSERT INTO rewards.team_members (tenant_id, campaign_id, member_id, team_id,"
        " joined_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
        tenant_id, campaign_id, member_id, team_id, now)
    return bool(inserted)


async def membership(db: Db, tenant_id: str, campaign_id: str,
                     member_id: str) -> Membership | None:
    return as_struct_or_none(Membership, await db.fetchrow(
        "SELECT team_id, joined_at FROM rewards.team_members"
        " WHERE tenant_id = $1 AND campaign_id = $2 AND member_id = $3",
        tenant_id, campaign_id, member_id))


async def take_seat(conn: Conn, tenant_id: str, campaign_id: str, team_id: str) -> Seat | None:
    """One more member, if the team has room (a conditional update: concurrent joins queue on
    the row and the ones past the size get nothing)."""
    return as_struct_or_none(Seat, await conn.fetchrow(
        "UPDATE rewards.teams SET members = members + 1 WHERE tenant_id = $1"
        " AND campaign_id = $2 AND team_id = $3 AND members < size RETURNING members, size",
        tenant_id, campaign_id, team_id))


async def team_members(db: Db, tenant_id: str, campaign_id: str,
                       team_id: str) -> list[TeamMember]:
    return as_structs(TeamMember, await db.fetch(
        "SELECT member_id, joined_at, spend_cents FROM rewards.team_members"
        " WHERE tenant_id = $1 AND campaign_id = $2 AND team_id = $3 ORDER BY joined_at,"
        " member_id", tenant_id, campaign_id, team_id))


# --- scores ---------------------------------------------------------------------------------

async def refund_of(conn: Conn, tenant_id: str, event_id: str) -> Refund | None:
    return as_struct_or_none(Refund, await conn.fetchrow(
        "SELECT refunded_cents, last_at FROM rewards.purchase_refunds"
        " WHERE tenant_id = $1 AND event_id = $2", tenant_id, event_id))


async def count_purchase(conn: Conn, tenant_id: str, event_id: str, member_id: str,
                         amount_cents: int, refunded_cents: int,
                         occurred_at: datetime) -> list[Counted]:
    """Counts a purchase for every open campaign where the member was in a team when it was
    made, inside the campaign's window, net of refunds already known; returns the campaigns
    and teams it counted for."""
    return as_structs(Counted, await conn.fetch(
        "INSERT INTO rewards.team_purchases AS p (tenant_id, campaign_id, event_id, member_id,"
        " team_id, amount_cents, refunded_cents, occurred_at)"
        " SELECT $1::text, tm.campaign_id, $2::text, $3::text, tm.team_id, $4::bigint,"
        "  least($5::bigint, $4::bigint), $6::timestamptz"
        " FROM rewards.team_members tm"
        " JOIN rewards.campaigns c ON c.tenant_id = tm.tenant_id"
        "  AND c.campaign_id = tm.campaign_id"
        " WHERE tm.tenant_id = $1 AND tm.member_id = $3 AND c.state = 'open'"
        "  AND $6 >= c.starts_at AND $6 < c.ends_at AND $6 >= tm.joined_at"
        " ON CONFLICT DO NOTHING"
        " RETURNING p.campaign_id, p.team_id, p.member_id,"
        " p.amount_cents - p.refunded_cents AS net",
        tenant_id, event_id, member_id, amount_cents, refunded_cents, occurred_at))


async def record_refund(conn: Conn, tenant_id: str, event_id: str, amount_cents: int,
                        at: datetime) -> None:
    await conn.execute(
        "INSERT INTO rewards.purchase_refunds AS r (tenant_id, event_id, refunded_cents, last_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, event_id) DO UPDATE"
        " SET refunded_cents = r.refunded_cents + EXCLUDED.refunded_cents,"
        " last_at = greatest(r.last_at, EXCLUDED.last_at)",
        tenant_id, event_id, amount_cents, at)


async def uncount_refund(conn: Conn, tenant_id: str, event_id: str,
                         amount_cents: int) -> list[Counted]:
    """Takes a refund off the purchases it counted for, in campaigns not yet settling."""
    return as_structs(Counted, await conn.fetch(
        "WITH refunded AS ("
        "  SELECT p.campaign_id, p.team_id, p.member_id,"
        "   least($3, p.amount_cents - p.refunded_cents) AS cut"
        "  FROM rewards.team_purchases p JOIN rewards.campaigns c"
        "   ON c.tenant_id = p.tenant_id AND c.campaign_id = p.campaign_id"
        "  WHERE p.tenant_id = $1 AND p.event_id = $2 AND c.state = 'open' FOR UPDATE OF p)"
        " UPDATE rewards.team_purchases p SET refunded_cents = p.refunded_cents + r.cut"
        " FROM refunded r WHERE p.tenant_id = $1 AND p.campaign_id = r.campaign_id"
        " AND p.event_id = $2 RETURNING p.campaign_id, p.team_id, p.member_id, -r.cut AS net",
        tenant_id, event_id, amount_cents))


async def add_score(conn: Conn, tenant_id: str, campaign_id: str, team_id: str,
                    member_id: str, net: int, at: datetime) -> tuple[TeamScore, MemberScore]:
    """Adds ``net`` to the team's and the member's score; the team's reach time becomes the
    latest event time that set its score. Returns both rows with their new versions."""
    team_row = await conn.fetchrow(
        "UPDATE rewards.teams SET score = score + $4, reached_at = greatest(reached_at, $5),"
        " version = version + 1 WHERE tenant_id = $1 AND campaign_id = $2 AND team_id = $3"
        " RETURNING team_id, score, reached_at, version",
        tenant_id, campaign_id, team_id, net, at)
    member_row = await conn.fetchrow(
        "UPDATE rewards.team_members SET spend_cents = spend_cents + $4, version = version + 1"
        " WHERE tenant_id = $1 AND campaign_id = $2 AND member_id = $3"
        " RETURNING member_id, team_id, spend_cents, version",
        tenant_id, campaign_id, member_id, net)
    assert team_row is not None and member_row is not None
    return as_struct(TeamScore, team_row), as_struct(MemberScore, member_row)


# --- leaderboard sources --------------------------------------------------------------------

async def board_teams(db: Db, tenant_id: str, campaign_id: str) -> list[TeamScore]:
    return as_structs(TeamScore, await db.fetch(
        "SELECT team_id, score, reached_at, version FROM rewards.teams"
        " WHERE tenant_id = $1 AND campaign_id = $2", tenant_id, campaign_id))


async def board_members(db: Db, tenant_id: str, campaign_id: str) -> list[MemberScore]:
    return as_structs(MemberScore, await db.fetch(
        "SELECT member_id, team_id, spend_cents, version FROM rewards.team_members"
        " WHERE tenant_id = $1 AND campaign_id = $2", tenant_id, campaign_id))


async def teams_of_members(db: Db, tenant_id: str, campaign_id: str,
                           member_ids: list[str]) -> dict[str, str]:
    rows = await db.fetch(
        "SELECT member_id, team_id FROM rewards.team_members"
        " WHERE tenant_id = $1 AND campaign_id = $2 AND member_id = any($3::text[])",
        tenant_id, campaign_id, member_ids)
    return {row["member_id"]: row["team_id"] for row in rows}


async def open_campaigns(db: Db) -> list[CampaignRef]:
    return as_structs(CampaignRef, await db.fetch(
        "SELECT tenant_id, campaign_id FROM rewards.campaigns WHERE state = 'open'"))


# --- settlement -----------------------------------------------------------------------------

async def ranking(db: Db, tenant_id: str, campaign_id: str) -> list[RankedTeam]:
    """The ranking by the rule, from PostgreSQL."""
    return as_structs(RankedTeam, await db.fetch(
        "SELECT t.team_id, t.score, t.reached_at, array_agg(tm.member_id ORDER BY"
        " tm.member_id) AS member_ids FROM rewards.teams t"
        " JOIN rewards.team_members tm ON tm.tenant_id = t.tenant_id"
        " AND tm.campaign_id = t.campaign_id AND tm.team_id = t.team_id"
        " WHERE t.tenant_id = $1 AND t.campaign_id = $2"
        " GROUP BY t.team_id, t.score, t.reached_at " + RANKING, tenant_id, campaign_id))


async def due_campaigns(db: Db, now: datetime) -> list[CampaignRef]:
    return as_structs(CampaignRef, await db.fetch(
        "SELECT tenant_id, campaign_id FROM rewards.campaigns WHERE state <> 'settled'"
        " AND ends_at + make_interval(secs => settle_grace_s) <= $1"
        " ORDER BY ends_at", now))


async def start_settling(conn: Conn, tenant_id: str, campaign_id: str) -> CampaignRow | None:
    """Freezes the campaign (scores stop moving); None if another run already did."""
    return as_struct_or_none(CampaignRow, await conn.fetchrow(
        "UPDATE rewards.campaigns SET state = 'settling', updated_at = now()"
        " WHERE tenant_id = $1 AND campaign_id = $2 AND state = 'open' RETURNING " + CAMPAIGN,
        tenant_id, campaign_id))


async def store_results(conn: Conn, tenant_id: str, campaign_id: str,
                        results: list[CampaignResult]) -> None:
    await conn.executemany(
        "INSERT INTO rewards.campaign_results (tenant_id, campaign_id, rank, team_id, score,"
        " prize, member_ids, issued)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $6::jsonb IS NULL)",
        [(tenant_id, campaign_id, r.rank, r.team_id, r.score, r.prize, r.member_ids)
         for r in results])


async def claim_unissued(conn: Conn, tenant_id: str, campaign_id: str) -> CampaignResult | None:
    """One team whose prize is not issued yet, locked; concurrent runs take other teams."""
    return as_struct_or_none(CampaignResult, await conn.fetchrow(
        "SELECT rank, team_id, score, prize, member_ids FROM rewards.campaign_results"
        " WHERE tenant_id = $1 AND campaign_id = $2 AND NOT issued"
        " ORDER BY rank LIMIT 1 FOR UPDATE SKIP LOCKED", tenant_id, campaign_id))


async def mark_issued(conn: Conn, tenant_id: str, campaign_id: str, rank: int) -> None:
    await conn.execute(
        "UPDATE rewards.campaign_results SET issued = true"
        " WHERE tenant_id = $1 AND campaign_id = $2 AND rank = $3", tenant_id, campaign_id, rank)


async def finish_settling(conn: Conn, tenant_id: str, campaign_id: str,
                          now: datetime) -> Settled | None:
    """Settled once every prize is issued; None while some are not, or if already settled."""
    return as_struct_or_none(Settled, await conn.fetchrow(
        "UPDATE rewards.campaigns c SET state = 'settled', settled_at = $3, updated_at = now()"
        " WHERE tenant_id = $1 AND campaign_id = $2 AND state = 'settling'"
        " AND NOT EXISTS (SELECT 1 FROM rewards.campaign_results r WHERE r.tenant_id = $1"
        "  AND r.campaign_id = $2 AND NOT r.issued)"
        " RETURNING (SELECT count(*) FROM rewards.campaign_results r WHERE r.tenant_id = $1"
        "  AND r.campaign_id = $2) AS ranked,"
        " (SELECT count(*) FROM rewards.campaign_results r WHERE r.tenant_id = $1"
        "  AND r.campaign_id = $2 AND r.prize IS NOT NULL) AS with_prizes",
        tenant_id, campaign_id, now))


async def results(db: Db, tenant_id: str, campaign_id: str) -> list[Result]:
    return as_structs(Result, await db.fetch(
        "SELECT rank, team_id, score, prize FROM rewards.campaign_results"
        " WHERE tenant_id = $1 AND campaign_id = $2 ORDER BY rank", tenant_id, campaign_id))
