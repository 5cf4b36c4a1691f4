"""The rewards service's SQL, one function per query."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

# Transitional: team-buy still reads the tenant's time zone here; the one lookup is
# services.runtime.tenants.tenant_time_zone. Drop this once team-buy uses it.
from services.runtime.tenants import tenant_time_zone as tenant_time_zone

# --- red packets ---------------------------------------------------------------------------

async def insert_pool(conn: asyncpg.Connection, tenant_id: str, body: Any, shares: list[int],
                      escrow: str) -> bool:
    return bool(await conn.fetchval(
        "INSERT INTO rewards.pools (tenant_id, pool_id, name, total_points, packets, split,"
        " shares, open_cost_points, per_member_opens, starts_at, ends_at, escrow_member)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING"
        " RETURNING true", tenant_id, body.pool_id, body.name, body.total_points, body.packets,
        body.split, shares, body.open_cost_points, body.per_member_opens, body.starts_at,
        body.ends_at, escrow))


async def pool(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
               pool_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT pool_id, name, total_points, packets, split, shares, open_cost_points,"
        " per_member_opens, starts_at, ends_at, escrow_member, status, returned_points"
        " FROM rewards.pools WHERE tenant_id = $1 AND pool_id = $2", tenant_id, pool_id)


async def pool_open(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                    open_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT open_id, pool_id, member_id, fingerprint, share_index, member_nth, points,"
        " status, outcome_status, outcome_body, at FROM rewards.pool_opens"
        " WHERE tenant_id = $1 AND open_id = $2", tenant_id, open_id)


async def reserve_pool_open(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                            pool_id: str, open_id: str, member_id: str, fingerprint: bytes,
                            index: int, nth: int, points: int) -> str:
    """'ok', 'taken' (index or member's n-th share already recorded) or 'exists' (open id)."""
    try:
        inserted = await conn.fetchval(
            "INSERT INTO rewards.pool_opens (tenant_id, pool_id, open_id, member_id, fingerprint,"
            " share_index, member_nth, points, status)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'reserved')"
            " ON CONFLICT (tenant_id, open_id) DO NOTHING RETURNING true",
            tenant_id, pool_id, open_id, member_id, fingerprint, index, nth, points)
    except asyncpg.UniqueViolationError:
        return "taken"
    return "ok" if inserted else "exists"


async def record_refused_open(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                              pool_id: str, open_id: str, member_id: str, fingerprint: bytes,
                              outcome: tuple[int, bytes]) -> None:
    await conn.execute(
        "INSERT INTO rewards.pool_opens (tenant_id, pool_id, open_id, member_id, fingerprint,"
        " status, outcome_status, outcome_body) VALUES ($1, $2, $3, $4, $5, 'failed', $6, $7)"
        " ON CONFLICT (tenant_id, open_id) DO NOTHING",
        tenant_id, pool_id, open_id, member_id, fingerprint, outcome[0], outcome[1])


async def finish_pool_open(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                           open_id: str, status: str, outcome: tuple[int, bytes]) -> bool:
    return bool(await conn.fetchval(
        "UPDATE rewards.pool_opens SET status = $3, outcome_status = $4, outcome_body = $5"
        " WHERE tenant_id = $1 AND open_id = $2 AND status = 'reserved' RETURNING true",
        tenant_id, open_id, status, outcome[0], outcome[1]))


async def pool_share_state(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                           pool_id: str) -> tuple[list[int], dict[str, int]]:
    """Share indexes taken and each member's count, from the record."""
    rows = await conn.fetch(
        "SELECT share_index, member_id FROM rewards.pool_opens"
        " WHERE tenant_id = $1 AND pool_id = $2 AND status <> 'failed'", tenant_id, pool_id)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["member_id"]] = counts.get(row["member_id"], 0) + 1
    return [r["share_index"] for r in rows], counts


async def pool_summary(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                       pool_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT open_id, member_id, points, status, at FROM rewards.pool_opens"
        " WHERE tenant_id = $1 AND pool_id = $2 AND status <> 'failed'"
        " ORDER BY at DESC", tenant_id, pool_id)


async def reserved_opens(conn: asyncpg.Connection | asyncpg.Pool, older_than: Any,
                         limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT tenant_id, open_id FROM rewards.pool_opens WHERE status = 'reserved'"
        " AND at < $1 ORDER BY at LIMIT $2", older_than, limit)


async def ended_pools(conn: asyncpg.Connection | asyncpg.Pool, now: datetime,
                      limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT tenant_id, pool_id FROM rewards.pools WHERE status = 'open' AND ends_at <= $1"
        " ORDER BY ends_at LIMIT $2", now, limit)


async def settle_pool(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, pool_id: str,
                      returned: int) -> bool:
    return bool(await conn.fetchval(
        "UPDATE rewards.pools SET status = 'settled', returned_points = $3"
        " WHERE tenant_id = $1 AND pool_id = $2 AND status = 'open' RETURNING true",
        tenant_id, pool_id, returned))


async def insert_packet(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, body: Any,
                        shares: list[int], escrow: str, expires_at: datetime,
                        fingerprint: bytes) -> bool:
    return bool(await conn.fetchval(
        "INSERT INTO rewards.packets (tenant_id, packet_id, maker_member_id, total_points, split,"
        " shares, group_id, expires_at, escrow_member, fingerprint)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING RETURNING true",
        tenant_id, body.packet_id, body.member_id, body.total_points, body.split, shares,
        body.group_id, expires_at, escrow, fingerprint))


async def packet(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                 packet_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT packet_id, maker_member_id, total_points, split, shares, group_id, expires_at,"
        " escrow_member, fingerprint, status, refunded_points, created_at FROM rewards.packets"
        " WHERE tenant_id = $1 AND packet_id = $2", tenant_id, packet_id)


async def packet_grabs(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                       packet_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT member_id, share_index, points, paid, at FROM rewards.packet_grabs"
        " WHERE tenant_id = $1 AND packet_id = $2 ORDER BY at, share_index",
        tenant_id, packet_id)


async def grab(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, packet_id: str,
               member_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT member_id, share_index, points, paid FROM rewards.packet_grabs"
        " WHERE tenant_id = $1 AND packet_id = $2 AND member_id = $3",
        tenant_id, packet_id, member_id)


async def record_grab(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, packet_id: str,
                      member_id: str, index: int, points: int) -> str:
    """'ok', 'member' (this member already grabbed) or 'taken' (the share went to another)."""
    try:
        inserted = await conn.fetchval(
            "INSERT INTO rewards.packet_grabs (tenant_id, packet_id, member_id, share_index,"
            " points) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (tenant_id, packet_id, member_id) DO NOTHING RETURNING true",
            tenant_id, packet_id, member_id, index, points)
    except asyncpg.UniqueViolationError:
        return "taken"
    return "ok" if inserted else "member"


async def mark_grab_paid(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                         packet_id: str, member_id: str) -> None:
    await conn.execute(
        "UPDATE rewards.packet_grabs SET paid = true"
        " WHERE tenant_id = $1 AND packet_id = $2 AND member_id = $3",
        tenant_id, packet_id, member_id)


async def expired_packets(conn: asyncpg.Connection | asyncpg.Pool, now: datetime,
                          limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT tenant_id, packet_id FROM rewards.packets WHERE status = 'open'"
        " AND expires_at <= $1 ORDER BY expires_at LIMIT $2", now, limit)


async def close_packet(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, packet_id: str,
                       refunded: int) -> bool:
    return bool(await conn.fetchval(
        "UPDATE rewards.packets SET status = 'expired', refunded_points = $3"
        " WHERE tenant_id = $1 AND packet_id = $2 AND status = 'open' RETURNING true",
        tenant_id, packet_id, refunded))
