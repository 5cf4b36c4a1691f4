"""The SQL of team-buy campaigns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool

RANKING = "ORDER BY t.score DESC, t.reached_at, t.team_id COLLATE \"C\""


async def put_campaign(conn: asyncpg.Connection, tenant_id: str, campaign_id: str, name: str,
                       team_sizes: list[int], starts_at: datetime, ends_at: datetime,
                       min_team_spend_cents: int, prizes: Any,
                       settle_grace_s: int) -> asyncpg.Record | None:
    """Creates or changes a campaign that has not started settling; None if it has."""
    return await conn.fetchrow(
        "INSERT INTO rewards.campaigns AS c (tenant_id, campaign_id, name, team_sizes,"
        " starts_at, ends_at, min_team_spend_cents, prizes, settle_grace_s)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (tenant_id, campaign_id) DO UPDATE SET name = EXCLUDED.name,"
        " team_sizes = EXCLUDED.team_sizes, starts_at = EXCLUDED.starts_at,"
        " ends_at = EXCLUDED.ends_at, min_team_spend_cents = EXCLUDED.min_team_spend_cents,"
        " prizes = EXCLUDED.prizes, settle_grace_s = EXCLUDED.settle_grace_s,"
        " updated_at = now() WHERE c.state = 'open' RETURNING *",
        tenant_id, campaign_id, name, team_sizes, starts_at, ends_at, min_team_spend_cents,
        prizes, settle_grace_s)


async def campaign(conn: Conn, tenant_id: str, campaign_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM rewards.campaigns WHERE tenant_id = $1 AND campaign_id = $2",
        tenant_id, campaign_id)


async def insert_team(conn: asyncpg.Connection, tenant_id: str, campaign_id: str,
                      team_id: str, name: str | None, size: int, captain: str,
                      now: datetime) -> bool:
    inserted = await conn.fetchval(
        "INSERT INTO rewards.teams (tenant_id, campaign_id, team_id, name, size,"
        " captain_member_id, reached_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)"
        " ON CONFLICT DO NOTHING RETURNING true",
        tenant_id, campaign_id, team_id, name, size, captain, now)
    return bool(inserted)


async def team(conn: Conn, tenant_id: str, campaign_id: str,
               team_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM rewards.teams WHERE tenant_id = $1 AND campaign_id = $2 AND team_id = $3",
        tenant_id, campaign_id, team_id)


async def add_member(conn: asyncpg.Connection, tenant_id: str, campaign_id: str,
                     team_id: str, member_id: str, now: datetime) -> bool:
    """False if the member is already in a team of this campaign."""
    inserted = await conn.fetchval(
        "INSERT INTO rewards.team_members (tenant_id, campaign_id, member_id, team_id,"
        " joined_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
        tenant_id, campaign_id, member_id, team_id, now)
    return bool(inserted)


async def membership(conn: Conn, tenant_id: str, campaign_id: str,
                     member_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT team_id, joined_at FROM rewards.team_members"
        " WHERE tenant_id = $1 AND campaign_id = $2 AND member_id = $3",
        tenant_id, campaign_id, member_id)


async def take_seat(conn: asyncpg.Connection, tenant_id: str, campaign_id: str,
                    team_id: str) -> asyncpg.Record | None:
    """One more member, if the team has room (a conditional update: concurrent joins queue on
    the row and the ones past the size get nothing)."""
    return await conn.fetchrow(
        "UPDATE rewards.teams SET members = members + 1 WHERE tenant_id = $1"
        " AND campaign_id = $2 AND team_id = $3 AND members < size RETURNING members, size",
        tenant_id, campaign_id, team_id)


async def team_members(conn: Conn, tenant_id: str, campaign_id: str,
                       team_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT member_id, joined_at, spend_cents FROM rewards.team_members"
        " WHERE tenant_id = $1 AND campaign_id = $2 AND team_id = $3 ORDER BY joined_at,"
        " member_id", tenant_id, campaign_id, team_id)


# --- scores -------------------------------------------------------------------------------

async def refund_of(conn: asyncpg.Connection, tenant_id: str,
                    event_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT refunded_cents, last_at FROM rewards.purchase_refunds"
        " WHERE tenant_id = $1 AND event_id = $2", tenant_id, event_id)


async def count_purchase(conn: asyncpg.Connection, tenant_id: str, event_id: str,
                         member_id: str, amount_cents: int, refunded_cents: int,
                         occurred_at: datetime) -> list[asyncpg.Record]:
    """Counts a purchase for every open campaign where the member was in a team when it was
    made, inside the campaign's window, net of refunds already known; returns the campaigns
    and teams it counted for."""
    return await conn.fetch(
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
        " RETURNING p.campaign_id, p.team_id, p.amount_cents - p.refunded_cents AS net",
        tenant_id, event_id, member_id, amount_cents, refunded_cents, occurred_at)


async def record_refund(conn: asyncpg.Connection, tenant_id: str, event_id: str,
                        amount_cents: int, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO rewards.purchase_refunds AS r (tenant_id, event_id, refunded_cents, last_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, event_id) DO UPDATE"
        " SET refunded_cents = r.refunded_cents + EXCLUDED.refunded_cents,"
        " last_at = greatest(r.last_at, EXCLUDED.last_at)",
        tenant_id, event_id, amount_cents, at)


async def uncount_refund(conn: asyncpg.Connection, tenant_id: str, event_id: str,
                         amount_cents: int) -> list[asyncpg.Record]:
    """Takes a refund off the purchases it counted for, in campaigns not yet settling."""
    return await conn.fetch(
        "WITH refunded AS ("
        "  SELECT p.campaign_id, p.team_id, p.member_id,"
        "   least($3, p.amount_cents - p.refunded_cents) AS cut"
        "  FROM rewards.team_purchases p JOIN rewards.campaigns c"
        "   ON c.tenant_id = p.tenant_id AND c.campaign_id = p.campaign_id"
        "  WHERE p.tenant_id = $1 AND p.event_id = $2 AND c.state = 'open' FOR UPDATE OF p)"
        " UPDATE rewards.team_purchases p SET refunded_cents = p.refunded_cents + r.cut"
        " FROM refunded r WHERE p.tenant_id = $1 AND p.campaign_id = r.campaign_id"
        " AND p.event_id = $2 RETURNING p.campaign_id, p.team_id, p.member_id, -r.cut AS net",
        tenant_id, event_id, amount_cents)


async def add_score(conn: asyncpg.Connection, tenant_id: str, campaign_id: str, team_id: str,
                    member_id: str, net: int,
                    at: datetime) -> tuple[asyncpg.Record, asyncpg.Record]:
    """Adds ``net`` to the team's and the member's score; the team's reach time becomes the
    latest event time that set its score. Returns both rows with their new versions."""
    team = await conn.fetchrow(
        "UPDATE rewards.teams SET score = score + $4, reached_at = greatest(reached_at, $5),"
        " version = version + 1 WHERE tenant_id = $1 AND campaign_id = $2 AND team_id = $3"
        " RETURNING campaign_id, team_id, score, reached_at, version",
        tenant_id, campaign_id, team_id, net, at)
    member = await conn.fetchrow(
        "UPDATE rewards.team_members SET spend_cents = spend_cents + $4, version = version + 1"
        " WHERE tenant_id = $1 AND campaign_id = $2 AND member_id = $3"
        " RETURNING campaign_id, member_id, team_id, spend_cents, version",
        tenant_id, campaign_id, member_id, net)
    assert team is not None and member is not None
    return team, member


# --- leaderboard sources and settlement --------------------------------------------------

async def board_teams(conn: Conn, tenant_id: str, campaign_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT team_id, score, reached_at, version FROM rewards.teams"
        " WHERE tenant_id = $1 AND campaign_id = $2", tenant_id, campaign_id)


async def board_members(conn: Conn, tenant_id: str, campaign_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT member_id, team_id, spend_cents, version FROM rewards.team_members"
        " WHERE tenant_id = $1 AND campaign_id = $2", tenant_id, campaign_id)


async def teams_by_id(conn: Conn, tenant_id: str, campaign_id: str,
                      team_ids: list[str]) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch(
        "SELECT team_id, name, score, members FROM rewards.teams"
        " WHERE tenant_id = $1 AND campaign_id = $2 AND team_id = ANY ($3)",
        tenant_id, campaign_id, team_ids)
    return {r["team_id"]: r for r in rows}


async def ranking(conn: Conn, tenant_id: str, campaign_id: str) -> list[asyncpg.Record]:
    """The ranking by the rule, from PostgreSQL."""
    return await conn.fetch(
        "SELECT t.team_id, t.score, t.reached_at, array_agg(tm.member_id ORDER BY"
        " tm.member_id) AS member_ids FROM rewards.teams t"
        " JOIN rewards.team_members tm ON tm.tenant_id = t.tenant_id"
        " AND tm.campaign_id = t.campaign_id AND tm.team_id = t.team_id"
        " WHERE t.tenant_id = $1 AND t.campaign_id = $2"
        " GROUP BY t.team_id, t.score, t.reached_at " + RANKING, tenant_id, campaign_id)


async def due_campaigns(conn: Conn, now: datetime) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT tenant_id, campaign_id FROM rewards.campaigns WHERE state <> 'settled'"
        " AND ends_at + make_interval(secs => settle_grace_s) <= $1"
        " ORDER BY ends_at", now)


async def start_settling(conn: asyncpg.Connection, tenant_id: str,
                         campaign_id: str) -> asyncpg.Record | None:
    """Freezes the campaign (scores stop moving); None if another run already did."""
    return await conn.fetchrow(
        "UPDATE rewards.campaigns SET state = 'settling', updated_at = now()"
        " WHERE tenant_id = $1 AND campaign_id = $2 AND state = 'open' RETURNING *",
        tenant_id, campaign_id)


async def store_results(conn: asyncpg.Connection, tenant_id: str, campaign_id: str,
                        rows: list[tuple[int, str, int, Any, list[str]]]) -> None:
    await conn.executemany(
        "INSERT INTO rewards.campaign_results (tenant_id, campaign_id, rank, team_id, score,"
        " prize, member_ids, issued)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $6::jsonb IS NULL)",
        [(tenant_id, campaign_id, *row) for row in rows])


async def claim_unissued(conn: asyncpg.Connection, tenant_id: str,
                         campaign_id: str) -> asyncpg.Record | None:
    """One team whose prize is not issued yet, locked; concurrent runs take other teams."""
    return await conn.fetchrow(
        "SELECT rank, team_id, prize, member_ids FROM rewards.campaign_results"
        " WHERE tenant_id = $1 AND campaign_id = $2 AND NOT issued"
        " ORDER BY rank LIMIT 1 FOR UPDATE SKIP LOCKED", tenant_id, campaign_id)


async def mark_issued(conn: asyncpg.Connection, tenant_id: str, campaign_id: str,
                      rank: int) -> None:
    await conn.execute(
        "UPDATE rewards.campaign_results SET issued = true"
        " WHERE tenant_id = $1 AND campaign_id = $2 AND rank = $3", tenant_id, campaign_id, rank)


async def finish_settling(conn: asyncpg.Connection, tenant_id: str, campaign_id: str,
                          now: datetime) -> asyncpg.Record | None:
    """Settled once every prize is issued; None while some are not, or if already settled."""
    return await conn.fetchrow(
        "UPDATE rewards.campaigns c SET state = 'settled', settled_at = $3, updated_at = now()"
        " WHERE tenant_id = $1 AND campaign_id = $2 AND state = 'settling'"
        " AND NOT EXISTS (SELECT 1 FROM rewards.campaign_results r WHERE r.tenant_id = $1"
        "  AND r.campaign_id = $2 AND NOT r.issued)"
        " RETURNING (SELECT count(*) FROM rewards.campaign_results r WHERE r.tenant_id = $1"
        "  AND r.campaign_id = $2) AS ranked,"
        " (SELECT count(*) FROM rewards.campaign_results r WHERE r.tenant_id = $1"
        "  AND r.campaign_id = $2 AND r.prize IS NOT NULL) AS with_prizes",
        tenant_id, campaign_id, now)


async def results(conn: Conn, tenant_id: str, campaign_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT rank, team_id, score, prize FROM rewards.campaign_results"
        " WHERE tenant_id = $1 AND campaign_id = $2 ORDER BY rank", tenant_id, campaign_id)


async def open_campaigns(conn: Conn) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT tenant_id, campaign_id FROM rewards.campaigns WHERE state = 'open'")
