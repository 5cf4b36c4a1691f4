"""The catalog's SQL: perks, their coupon-code pools and redemptions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import msgspec

from proto.rewards import PerkIn
from services.rewards.wallet.wallet import StockLevel
from services.runtime.db import (
    Conn,
    Db,
    as_struct,
    as_struct_or_none,
    as_structs,
    pop_prefixed,
    prefixed_columns,
)
from services.runtime.idempotency import Outcome


class PerkRow(StockLevel, frozen=True):
    """A perk: its stock level (the fields of ``StockLevel``) and its terms."""

    sku: str
    name: str
    description: str
    cost_points: int
    per_member_limit: int | None
    tiers: list[str] | None
    starts_at: datetime | None
    ends_at: datetime | None
    fulfilment: Literal["code", "manual"]
    coupon_valid_days: int
    enabled: bool
    codes_available: int | None = None  # only in the catalog listing


class PerkStock(StockLevel, frozen=True):
    """A perk's stock level, and whose it is."""

    tenant_id: str
    sku: str


class RedemptionRow(msgspec.Struct, frozen=True):
    redemption_id: str
    member_id: str
    sku: str
    quantity: int
    points: int
    fingerprint: bytes
    hold_id: str
    status: str
    codes: list[str]
    outcome_status: int | None
    outcome_body: bytes | None
    created_at: datetime
    updated_at: datetime


class RedemptionEntry(msgspec.Struct, frozen=True):
    """A line of a member's redemption history."""

    redemption_id: str
    member_id: str
    sku: str
    quantity: int
    points: int
    status: str
    codes: list[str]
    created_at: datetime


class StuckRedemption(msgspec.Struct, frozen=True):
    """An unfinished redemption as the worker finds it."""

    tenant_id: str
    redemption_id: str
    status: str
    created_at: datetime


# --- perks and codes -----------------------------------------------------------------------

PERK_COLUMNS = ("sku, name, description, cost_points, stock_left, stock_version,"
                " per_member_limit, tiers, starts_at, ends_at, fulfilment, coupon_valid_days,"
                " enabled")


async def put_perk(conn: Conn, tenant_id: str, sku: str, perk: PerkIn) -> PerkRow:
    row = await conn.fetchrow(
        "INSERT INTO rewards.perks (tenant_id, sku, name, description, cost_points, stock_left,"
        " per_member_limit, tiers, starts_at, ends_at, fulfilment, coupon_valid_days, enabled)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        " ON CONFLICT (tenant_id, sku) DO UPDATE SET name = EXCLUDED.name,"
        " description = EXCLUDED.description, cost_points = EXCLUDED.cost_points,"
        " stock_left = EXCLUDED.stock_left, stock_version = rewards.perks.stock_version + 1,"
        " per_member_limit = EXCLUDED.per_member_limit, tiers = EXCLUDED.tiers,"
        " starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at,"
        " fulfilment = EXCLUDED.fulfilment, coupon_valid_days = EXCLUDED.coupon_valid_days,"
        " enabled = EXCLUDED.enabled, updated_at = now()"
        " RETURNING " + PERK_COLUMNS,
        tenant_id, sku, perk.name, perk.description, perk.cost_points, perk.stock,
        perk.per_member_limit, perk.tiers, perk.starts_at, perk.ends_at, perk.fulfilment,
        perk.coupon_valid_days, perk.enabled)
    assert row is not None
    return as_struct(PerkRow, row)


async def perk(db: Db, tenant_id: str, sku: str) -> PerkRow | None:
    return as_struct_or_none(PerkRow, await db.fetchrow(
        "SELECT " + PERK_COLUMNS + " FROM rewards.perks WHERE tenant_id = $1 AND sku = $2",
        tenant_id, sku))


async def perks(db: Db, tenant_id: str) -> list[PerkRow]:
    return as_structs(PerkRow, await db.fetch(
        "SELECT " + PERK_COLUMNS + ","
        " (SELECT count(*) FROM rewards.codes c"
        " WHERE c.tenant_id = p.tenant_id AND c.sku = p.sku AND c.redemption_id IS NULL"
        " AND c.issue_id IS NULL) AS codes_available"
        " FROM rewards.perks p WHERE tenant_id = $1 ORDER BY sku", tenant_id))


async def stock_versions(db: Db, limit: int = 10_000) -> list[PerkStock]:
    return as_structs(PerkStock, await db.fetch(
        "SELECT tenant_id, sku, stock_left, stock_version FROM rewards.perks"
        " WHERE stock_left IS NOT NULL ORDER BY tenant_id, sku LIMIT $1", limit))


async def add_codes(conn: Conn, tenant_id: str, sku: str, codes: Sequence[str]) -> int:
    added = await conn.fetchval(
        "WITH added AS (INSERT INTO rewards.codes (tenant_id, sku, code)"
        " SELECT $1, $2, c FROM unnest($3::text[]) AS c ON CONFLICT DO NOTHING RETURNING 1)"
        " SELECT count(*) FROM added", tenant_id, sku, list(codes))
    return int(added)


async def free_codes(conn: Conn, tenant_id: str, sku: str) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM rewards.codes WHERE tenant_id = $1 AND sku = $2"
        " AND redemption_id IS NULL AND issue_id IS NULL", tenant_id, sku))


# --- redemptions ---------------------------------------------------------------------------

REDEMPTION_COLUMNS = (
    "redemption_id, member_id, sku, quantity, points, fingerprint, hold_id, status,"
    " codes, outcome_status, outcome_body, created_at, updated_at")
REDEMPTION_BY_ID = (f"SELECT {REDEMPTION_COLUMNS} FROM rewards.redemptions"
                    " WHERE tenant_id = $1 AND redemption_id = $2")


async def insert_redemption(db: Db, tenant_id: str, redemption_id: str, member_id: str,
                            sku: str, quantity: int, points: int, fingerprint: bytes,
                            hold_id: str, status: str,
                            outcome: Outcome | None) -> RedemptionRow | None:
    """The new redemption; None if the id is taken."""
    return as_struct_or_none(RedemptionRow, await db.fetchrow(
        "INSERT INTO rewards.redemptions (tenant_id, redemption_id, member_id, sku, quantity,"
        " points, fingerprint, hold_id, status, outcome_status, outcome_body)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING"
        f" RETURNING {REDEMPTION_COLUMNS}",
        tenant_id, redemption_id, member_id, sku, quantity, points, fingerprint, hold_id, status,
        outcome.status_code if outcome else None, outcome.body if outcome else None))


class RedemptionStart(msgspec.Struct, frozen=True):
    """A redemption request's first read: the redemption already made with its id, if any, the
    perk (None if unknown) and the member's tier as mirrored here."""

    existing: RedemptionRow | None
    perk: PerkRow | None
    member_tier: str | None


_EXISTING_REDEMPTION = prefixed_columns(RedemptionRow, "r", "existing_")
_LISTING_ONLY = ("codes_available",)
_PERK = prefixed_columns(PerkRow, "p", "perk_", omit=_LISTING_ONLY)


async def redemption_start(db: Db, tenant_id: str, redemption_id: str, sku: str,
                           member_id: str) -> RedemptionStart:
    row = await db.fetchrow(
        f"SELECT {_EXISTING_REDEMPTION}, {_PERK}, t.tier AS member_tier FROM (SELECT) AS one"
        " LEFT JOIN rewards.redemptions r ON r.tenant_id = $1 AND r.redemption_id = $2"
        " LEFT JOIN rewards.perks p ON p.tenant_id = $1 AND p.sku = $3"
        " LEFT JOIN rewards.member_tiers t ON t.tenant_id = $1 AND t.member_id = $4",
        tenant_id, redemption_id, sku, member_id)
    assert row is not None
    fields = dict(row.items())
    return RedemptionStart(existing=pop_prefixed(RedemptionRow, fields, "existing_"),
                           perk=pop_prefixed(PerkRow, fields, "perk_", omit=_LISTING_ONLY),
                           member_tier=fields["member_tier"])


async def redemption(db: Db, tenant_id: str, redemption_id: str, *,
                     lock: bool = False) -> RedemptionRow | None:
    query = REDEMPTION_BY_ID + " FOR UPDATE" if lock else REDEMPTION_BY_ID
    return as_struct_or_none(RedemptionRow, await db.fetchrow(query, tenant_id, redemption_id))


async def forget_redemption(db: Db, tenant_id: str, redemption_id: str) -> bool:
    """Deletes a pending redemption refused before anything moved, freeing its id; False if
    another driver moved it first."""
    return bool(await db.fetchval(
        "DELETE FROM rewards.redemptions WHERE tenant_id = $1 AND redemption_id = $2"
        " AND status = 'pending' RETURNING true", tenant_id, redemption_id))


async def move_redemption(db: Db, tenant_id: str, redemption_id: str, from_status: str,
                          to_status: str, *, outcome: Outcome | None = None,
                          codes: list[str] | None = None) -> RedemptionRow | None:
    """Compare-and-set of the status: the moved redemption, or None if someone else moved it
    first."""
    return as_struct_or_none(RedemptionRow, await db.fetchrow(
        "UPDATE rewards.redemptions SET status = $4, updated_at = now(),"
        " outcome_status = coalesce($5, outcome_status), outcome_body = coalesce($6, outcome_body),"
        " codes = coalesce($7, codes)"
        " WHERE tenant_id = $1 AND redemption_id = $2 AND status = $3"
        f" RETURNING {REDEMPTION_COLUMNS}",
        tenant_id, redemption_id, from_status, to_status,
        outcome.status_code if outcome else None, outcome.body if outcome else None, codes))


async def member_redemptions(db: Db, tenant_id: str, member_id: str,
                             before: tuple[datetime, str] | None,
                             limit: int) -> list[RedemptionEntry]:
    return as_structs(RedemptionEntry, await db.fetch(
        "SELECT redemption_id, member_id, sku, quantity, points, status, codes, created_at"
        " FROM rewards.redemptions WHERE tenant_id = $1 AND member_id = $2"
        " AND status IN ('completed', 'pending_fulfilment', 'cancelled', 'cancelling')"
        " AND ($3::timestamptz IS NULL OR (created_at, redemption_id) < ($3, $4))"
        " ORDER BY created_at DESC, redemption_id DESC LIMIT $5",
        tenant_id, member_id, before[0] if before else None, before[1] if before else None,
        limit))


async def unfinished_redemptions(db: Db, older_than: datetime,
                                 limit: int) -> list[StuckRedemption]:
    return as_structs(StuckRedemption, await db.fetch(
        "SELECT tenant_id, redemption_id, status, created_at FROM rewards.redemptions"
        " WHERE status IN ('pending', 'reserved', 'releasing', 'cancelling')"
        " AND updated_at < $1 ORDER BY updated_at LIMIT $2", older_than, limit))
