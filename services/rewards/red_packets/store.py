"""The SQL of red packets: pools and their opens, member packets and their grabs."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import asyncpg
import msgspec

from proto.rewards import PacketIn, PoolIn
from services.runtime.db import Db, as_struct, as_struct_or_none, as_structs
from services.runtime.idempotency import Outcome


class PoolRow(msgspec.Struct, frozen=True):
    """A pool without its shares: a pool of 100,000 packets keeps an array of 800 KB, which
    cost every open 13 ms of PostgreSQL and 4 ms of Python to read in full; an open reads only
    its own share (``reserve_pool_open``)."""

    pool_id: str
    name: str
    total_points: int
    packets: int
    split: str
    open_cost_points: int
    per_member_opens: int
    starts_at: datetime | None
    ends_at: datetime
    escrow_member: str
    status: Literal["open", "settled"]
    returned_points: int | None


POOL = ("pool_id, name, total_points, packets, split, open_cost_points,"
        " per_member_opens, starts_at, ends_at, escrow_member, status, returned_points")


class PoolListRow(msgspec.Struct, frozen=True):
    """A pool with the shares it handed out (reserved or paid): how many, how many points."""

    pool_id: str
    name: str
    total_points: int
    packets: int
    split: str
    open_cost_points: int
    per_member_opens: int
    starts_at: datetime | None
    ends_at: datetime
    status: Literal["open", "settled"]
    created_at: datetime
    opened: int
    opened_points: int


class PoolOpenRow(msgspec.Struct, frozen=True):
    """An open: 'reserved' holds a share not paid yet (share_index, member_nth and points set);
    'paid' and 'failed' hold the open's final answer."""

    open_id: str
    pool_id: str
    member_id: str
    fingerprint: bytes
    share_index: int | None
    member_nth: int | None
    points: int | None
    status: Literal["reserved", "paid", "failed"]
    outcome_status: int | None
    outcome_body: bytes | None
    at: datetime


POOL_OPEN = ("open_id, pool_id, member_id, fingerprint, share_index, member_nth, points,"
             " status, outcome_status, outcome_body, at")


class OpenedShare(msgspec.Struct, frozen=True):
    """A share handed out by a pool (reserved or paid)."""

    open_id: str
    member_id: str
    share_index: int
    points: int
    at: datetime


class PacketRow(msgspec.Struct, frozen=True):
    packet_id: str
    maker_member_id: str
    total_points: int
    split: str
    shares: list[int]
    group_id: str | None
    expires_at: datetime
    escrow_member: str
    fingerprint: bytes
    status: Literal["open", "expired"]
    refunded_points: int | None
    created_at: datetime


PACKET = ("packet_id, maker_member_id, total_points, split, shares, group_id, expires_at,"
          " escrow_member, fingerprint, status, refunded_points, created_at")


class GrabRow(msgspec.Struct, frozen=True):
    member_id: str
    share_index: int
    points: int
    paid: bool
    at: datetime
    grab_id: str | None
    fingerprint: bytes | None


class Due(msgspec.Struct, frozen=True):
    """An open, a pool or a packet the worker is to finish, settle or expire."""

    tenant_id: str
    id: str


# --- pools ----------------------------------------------------------------------------------

async def insert_pool(db: Db, tenant_id: str, body: PoolIn, shares: list[int],
                      escrow: str) -> PoolRow | None:
    """The new pool; None if the id is taken."""
    return as_struct_or_none(PoolRow, await db.fetchrow(
        "INSERT INTO rewards.pools (tenant_id, pool_id, name, total_points, packets, split,"
        " shares, open_cost_points, per_member_opens, starts_at, ends_at, escrow_member)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING"
        " RETURNING " + POOL, tenant_id, body.pool_id, body.name, body.total_points, body.packets,
        body.split, shares, body.open_cost_points, body.per_member_opens, body.starts_at,
        body.ends_at, escrow))


async def pool(db: Db, tenant_id: str, pool_id: str) -> PoolRow | None:
    return as_struct_or_none(PoolRow, await db.fetchrow(
        "SELECT " + POOL + " FROM rewards.pools WHERE tenant_id = $1 AND pool_id = $2",
        tenant_id, pool_id))


async def pools(db: Db, tenant_id: str, status: str | None,
                before: tuple[datetime, str] | None, limit: int) -> list[PoolListRow]:
    """The tenant's pools (with ``status`` only, if given) newest first, after ``before``
    (created_at, pool_id)."""
    return as_structs(PoolListRow, await db.fetch(
        "SELECT p.pool_id, p.name, p.total_points, p.packets, p.split, p.open_cost_points,"
        " p.per_member_opens, p.starts_at, p.ends_at, p.status, p.created_at,"
        " o.opened, o.opened_points FROM rewards.pools p"
        " CROSS JOIN LATERAL (SELECT count(*) AS opened, coalesce(sum(points), 0)::bigint"
        "  AS opened_points"
        "  FROM rewards.pool_opens WHERE tenant_id = p.tenant_id AND pool_id = p.pool_id"
        "  AND status <> 'failed') o"
        " WHERE p.tenant_id = $1 AND ($2::text IS NULL OR p.status = $2)"
        " AND ($3::timestamptz IS NULL OR (p.created_at, p.pool_id) < ($3, $4))"
        " ORDER BY p.created_at DESC, p.pool_id DESC LIMIT $5",
        tenant_id, status, before[0] if before else None, before[1] if before else None,
        limit))


async def pool_open(db: Db, tenant_id: str, open_id: str) -> PoolOpenRow | None:
    return as_struct_or_none(PoolOpenRow, await db.fetchrow(
        "SELECT " + POOL_OPEN + " FROM rewards.pool_opens WHERE tenant_id = $1 AND open_id = $2",
        tenant_id, open_id))


async def reserve_pool_open(db: Db, tenant_id: str, pool_id: str, open_id: str,
                            member_id: str, fingerprint: bytes, index: int, nth: int
                            ) -> PoolOpenRow | Literal["taken", "member", "exists"]:
    """The reserved open of share ``index`` (its points as the pool's shares say); 'taken'
    (the share index is recorded already), 'member' (the member's n-th share is) or 'exists'
    (the open id is)."""
    try:
        row = await db.fetchrow(
            "INSERT INTO rewards.pool_opens (tenant_id, pool_id, open_id, member_id, fingerprint,"
            " share_index, member_nth, points, status)"
            " SELECT $1, $2, $3, $4, $5, $6, $7, p.shares[$6 + 1], 'reserved'"
            " FROM rewards.pools p WHERE p.tenant_id = $1 AND p.pool_id = $2"
            " ON CONFLICT (tenant_id, open_id) DO NOTHING RETURNING " + POOL_OPEN,
            tenant_id, pool_id, open_id, member_id, fingerprint, index, nth)
    except asyncpg.UniqueViolationError as exc:
        return "member" if exc.constraint_name == "pool_opens_member" else "taken"
    return "exists" if row is None else as_struct(PoolOpenRow, row)


async def finish_pool_open(db: Db, tenant_id: str, open_id: str,
                           status: Literal["paid", "failed"], outcome: Outcome) -> bool:
    """Stores a reserved open's final answer; False if it was not reserved any more."""
    return bool(await db.fetchval(
        "UPDATE rewards.pool_opens SET status = $3, outcome_status = $4, outcome_body = $5"
        " WHERE tenant_id = $1 AND open_id = $2 AND status = 'reserved' RETURNING true",
        tenant_id, open_id, status, outcome.status_code, outcome.body))


async def opened_shares(db: Db, tenant_id: str, pool_id: str) -> list[OpenedShare]:
    """Every share the pool handed out, latest first."""
    return as_structs(OpenedShare, await db.fetch(
        "SELECT open_id, member_id, share_index, points, at FROM rewards.pool_opens"
        " WHERE tenant_id = $1 AND pool_id = $2 AND status <> 'failed'"
        " ORDER BY at DESC", tenant_id, pool_id))


async def shares_taken(db: Db, tenant_id: str, pool_id: str, member_id: str) -> tuple[int, int]:
    """Shares the pool handed out (reserved or paid), and how many of them went to the
    member."""
    row = await db.fetchrow(
        "SELECT count(*) AS taken, count(*) FILTER (WHERE member_id = $3) AS mine"
        " FROM rewards.pool_opens WHERE tenant_id = $1 AND pool_id = $2 AND status <> 'failed'",
        tenant_id, pool_id, member_id)
    assert row is not None
    return int(row["taken"]), int(row["mine"])


async def reserved_opens(db: Db, older_than: datetime, limit: int) -> list[Due]:
    return as_structs(Due, await db.fetch(
        "SELECT tenant_id, open_id AS id FROM rewards.pool_opens WHERE status = 'reserved'"
        " AND at < $1 ORDER BY at LIMIT $2", older_than, limit))


async def ended_pools(db: Db, now: datetime, limit: int) -> list[Due]:
    return as_structs(Due, await db.fetch(
        "SELECT tenant_id, pool_id AS id FROM rewards.pools WHERE status = 'open' AND ends_at <= $1"
        " ORDER BY ends_at LIMIT $2", now, limit))


async def settle_pool(db: Db, tenant_id: str, pool_id: str, returned: int) -> bool:
    return bool(await db.fetchval(
        "UPDATE rewards.pools SET status = 'settled', returned_points = $3"
        " WHERE tenant_id = $1 AND pool_id = $2 AND status = 'open' RETURNING true",
        tenant_id, pool_id, returned))


# --- member packets -------------------------------------------------------------------------

async def insert_packet(db: Db, tenant_id: str, body: PacketIn, shares: list[int],
                        escrow: str, expires_at: datetime,
                        fingerprint: bytes) -> PacketRow | None:
    """The new packet; None if the id is taken."""
    return as_struct_or_none(PacketRow, await db.fetchrow(
        "INSERT INTO rewards.packets (tenant_id, packet_id, maker_member_id, total_points, split,"
        " shares, group_id, expires_at, escrow_member, fingerprint)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING"
        " RETURNING " + PACKET,
        tenant_id, body.packet_id, body.member_id, body.total_points, body.split, shares,
        body.group_id, expires_at, escrow, fingerprint))


async def delete_packet(db: Db, tenant_id: str, packet_id: str) -> None:
    await db.execute("DELETE FROM rewards.packets WHERE tenant_id = $1 AND packet_id = $2",
                     tenant_id, packet_id)


async def packet(db: Db, tenant_id: str, packet_id: str) -> PacketRow | None:
    return as_struct_or_none(PacketRow, await db.fetchrow(
        "SELECT " + PACKET + " FROM rewards.packets WHERE tenant_id = $1 AND packet_id = $2",
        tenant_id, packet_id))


GRAB = "member_id, share_index, points, paid, at, grab_id, fingerprint"


async def packet_grabs(db: Db, tenant_id: str, packet_id: str) -> list[GrabRow]:
    return as_structs(GrabRow, await db.fetch(
        "SELECT " + GRAB + " FROM rewards.packet_grabs"
        " WHERE tenant_id = $1 AND packet_id = $2 ORDER BY at, share_index",
        tenant_id, packet_id))


async def grab_by_id(db: Db, tenant_id: str, grab_id: str) -> tuple[str, GrabRow] | None:
    """The packet and the grab recorded under ``grab_id``."""
    row = await db.fetchrow(
        "SELECT packet_id, " + GRAB + " FROM rewards.packet_grabs"
        " WHERE tenant_id = $1 AND grab_id = $2", tenant_id, grab_id)
    if row is None:
        return None
    return str(row["packet_id"]), as_struct(GrabRow, row)


async def grab(db: Db, tenant_id: str, packet_id: str, member_id: str) -> GrabRow | None:
    return as_struct_or_none(GrabRow, await db.fetchrow(
        "SELECT " + GRAB + " FROM rewards.packet_grabs"
        " WHERE tenant_id = $1 AND packet_id = $2 AND member_id = $3",
        tenant_id, packet_id, member_id))


async def record_grab(db: Db, tenant_id: str, packet_id: str, member_id: str, index: int,
                      points: int, grab_id: str | None,
                      fingerprint: bytes | None) -> Literal["ok", "member", "taken", "exists"]:
    """'ok', 'member' (this member already grabbed), 'taken' (the share went to another) or
    'exists' (the grab id is recorded already)."""
    try:
        inserted = await db.fetchval(
            "INSERT INTO rewards.packet_grabs (tenant_id, packet_id, member_id, share_index,"
            " points, grab_id, fingerprint) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (tenant_id, packet_id, member_id) DO NOTHING RETURNING true",
            tenant_id, packet_id, member_id, index, points, grab_id, fingerprint)
    except asyncpg.UniqueViolationError as exc:
        return "exists" if exc.constraint_name == "packet_grabs_grab_id" else "taken"
    return "ok" if inserted else "member"


async def mark_grab_paid(db: Db, tenant_id: str, packet_id: str, member_id: str) -> None:
    await db.execute(
        "UPDATE rewards.packet_grabs SET paid = true"
        " WHERE tenant_id = $1 AND packet_id = $2 AND member_id = $3",
        tenant_id, packet_id, member_id)


async def expired_packets(db: Db, now: datetime, limit: int) -> list[Due]:
    return as_structs(Due, await db.fetch(
        "SELECT tenant_id, packet_id AS id FROM rewards.packets WHERE status = 'open'"
        " AND expires_at <= $1 ORDER BY expires_at LIMIT $2", now, limit))


async def close_packet(db: Db, tenant_id: str, packet_id: str, refunded: int) -> bool:
    return bool(await db.fetchval(
        "UPDATE rewards.packets SET status = 'expired', refunded_points = $3"
        " WHERE tenant_id = $1 AND packet_id = $2 AND status = 'open' RETURNING true",
        tenant_id, packet_id, refunded))
