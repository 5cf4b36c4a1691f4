"""The wallet's SQL: perks' stock, members' allowances and coupon codes as they are reserved and
put back, coupons, draw tickets and the audit of bulk issues."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from proto.rewards import CouponState
from services.runtime.db import Conn, Db, as_struct_or_none, as_structs
from services.runtime.tiers_client import SegmentTarget


class PerkTerms(msgspec.Struct, frozen=True):
    """What the wallet reads of a catalog perk: how its coupons are made."""

    sku: str
    fulfilment: str
    coupon_valid_days: int


class StockLevel(msgspec.Struct, frozen=True):
    """A perk's stock as of a version (``stock_left`` None: unlimited)."""

    stock_left: int | None
    stock_version: int


class StockTaken(StockLevel, frozen=True):
    """The stock after a reservation, and what the rest of the reservation depends on."""

    per_member_limit: int | None
    fulfilment: str


class CouponRow(msgspec.Struct, frozen=True):
    coupon_id: str
    member_id: str
    sku: str
    code: str | None
    state: CouponState
    expires_at: datetime
    source: str
    ref: str
    transferred_to: str | None


class NewCoupon(msgspec.Struct, frozen=True):
    coupon_id: str
    member_id: str
    sku: str
    code: str | None
    expires_at: datetime
    source: str
    ref: str


async def perk_terms(db: Db, tenant_id: str, sku: str) -> PerkTerms | None:
    return as_struct_or_none(PerkTerms, await db.fetchrow(
        "SELECT sku, fulfilment, coupon_valid_days FROM rewards.perks"
        " WHERE tenant_id = $1 AND sku = $2", tenant_id, sku))


async def known_skus(db: Db, tenant_id: str, skus: Sequence[str]) -> set[str]:
    rows = await db.fetch(
        "SELECT sku FROM rewards.perks WHERE tenant_id = $1 AND sku = any($2::text[])",
        tenant_id, list(skus))
    return {str(row["sku"]) for row in rows}


async def known_boxes(db: Db, tenant_id: str, box_ids: Sequence[str]) -> set[str]:
    rows = await db.fetch(
        "SELECT box_id FROM rewards.boxes WHERE tenant_id = $1 AND box_id = any($2::text[])",
        tenant_id, list(box_ids))
    return {str(row["box_id"]) for row in rows}


# --- stock, allowance and codes: reserved together, released together ----------------------

async def take_stock(conn: Conn, tenant_id: str, sku: str, quantity: int) -> StockTaken | None:
    """``quantity`` off the perk's stock (unlimited stock stays unlimited); None if short."""
    return as_struct_or_none(StockTaken, await conn.fetchrow(
        "UPDATE rewards.perks SET stock_left = CASE WHEN stock_left IS NULL THEN NULL"
        " ELSE stock_left - $3 END, stock_version = stock_version + 1"
        " WHERE tenant_id = $1 AND sku = $2 AND (stock_left IS NULL OR stock_left >= $3)"
        " RETURNING stock_left, stock_version, per_member_limit, fulfilment",
        tenant_id, sku, quantity))


async def stock_left(db: Db, tenant_id: str, sku: str) -> int | None:
    left = await db.fetchval(
        "SELECT stock_left FROM rewards.perks WHERE tenant_id = $1 AND sku = $2", tenant_id, sku)
    return None if left is None else int(left)


async def hold_allowance(conn: Conn, tenant_id: str, sku: str, member_id: str, quantity: int,
                         limit: int) -> bool:
    """Count ``quantity`` against the member's limit; False if it would go over."""
    held = await conn.fetchval(
        "INSERT INTO rewards.allowances AS a (tenant_id, sku, member_id, redeemed)"
        " SELECT $1, $2, $3, $4::int WHERE $4::int <= $5::int"
        " ON CONFLICT (tenant_id, sku, member_id) DO UPDATE"
        " SET redeemed = a.redeemed + EXCLUDED.redeemed"
        " WHERE a.redeemed + EXCLUDED.redeemed <= $5::int RETURNING redeemed",
        tenant_id, sku, member_id, quantity, limit)
    return held is not None


async def assign_codes(conn: Conn, tenant_id: str, sku: str, quantity: int,
                       redemption_id: str | None, issue_id: str | None) -> list[str]:
    """Up to ``quantity`` free codes, first in code order, now belonging to the redemption or
    issue; concurrent takers skip each other's rows."""
    rows = await conn.fetch(
        "UPDATE rewards.codes SET redemption_id = $4, issue_id = $5, assigned_at = now()"
        " WHERE (tenant_id, sku, code) IN (SELECT tenant_id, sku, code FROM rewards.codes"
        "   WHERE tenant_id = $1 AND sku = $2 AND redemption_id IS NULL AND issue_id IS NULL"
        "   ORDER BY code LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING code",
        tenant_id, sku, quantity, redemption_id, issue_id)
    return [str(row["code"]) for row in rows]


async def put_back_stock(conn: Conn, tenant_id: str, sku: str, quantity: int) -> StockLevel:
    row = await conn.fetchrow(
        "UPDATE rewards.perks SET stock_left = stock_left + $3,"
        " stock_version = stock_version + 1 WHERE tenant_id = $1 AND sku = $2"
        " RETURNING stock_left, stock_version", tenant_id, sku, quantity)
    level = as_struct_or_none(StockLevel, row)
    assert level is not None
    return level


async def release_allowance(conn: Conn, tenant_id: str, sku: str, member_id: str,
                            quantity: int) -> None:
    await conn.execute(
        "UPDATE rewards.allowances SET redeemed = greatest(redeemed - $4, 0)"
        " WHERE tenant_id = $1 AND sku = $2 AND member_id = $3",
        tenant_id, sku, member_id, quantity)


async def free_codes_of(conn: Conn, tenant_id: str, sku: str, redemption_id: str) -> None:
    await conn.execute(
        "UPDATE rewards.codes SET redemption_id = NULL, assigned_at = NULL"
        " WHERE tenant_id = $1 AND sku = $2 AND redemption_id = $3",
        tenant_id, sku, redemption_id)


async def allowance_used(db: Db, tenant_id: str, member_id: str) -> dict[str, int]:
    rows = await db.fetch(
        "SELECT sku, redeemed FROM rewards.allowances WHERE tenant_id = $1 AND member_id = $2",
        tenant_id, member_id)
    return {str(row["sku"]): int(row["redeemed"]) for row in rows}


# --- coupons -------------------------------------------------------------------------------

COUPON_COLUMNS = ("SELECT coupon_id, member_id, sku, code, state, expires_at, source, ref,"
                  " transferred_to FROM rewards.coupons")


async def add_coupons(conn: Conn, tenant_id: str, coupons: Sequence[NewCoupon]) -> None:
    await conn.executemany(
        "INSERT INTO rewards.coupons (tenant_id, coupon_id, member_id, sku, code, state,"
        " expires_at, source, ref) VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $8)",
        [(tenant_id, c.coupon_id, c.member_id, c.sku, c.code, c.expires_at, c.source, c.ref)
         for c in coupons])


async def coupon(conn: Conn, tenant_id: str, coupon_id: str, *,
                 lock: bool = False) -> CouponRow | None:
    query = COUPON_COLUMNS + " WHERE tenant_id = $1 AND coupon_id = $2"
    return as_struct_or_none(CouponRow, await conn.fetchrow(
        query + " FOR UPDATE" if lock else query, tenant_id, coupon_id))


async def coupon_id_by_ref(conn: Conn, tenant_id: str, ref: str) -> str | None:
    found = await conn.fetchval(
        "SELECT coupon_id FROM rewards.coupons WHERE tenant_id = $1 AND ref = $2",
        tenant_id, ref)
    return None if found is None else str(found)


async def member_coupons(db: Db, tenant_id: str, member_id: str, after: str | None,
                         limit: int) -> list[CouponRow]:
    return as_structs(CouponRow, await db.fetch(
        COUPON_COLUMNS + " WHERE tenant_id = $1 AND member_id = $2"
        " AND ($3::text IS NULL OR coupon_id > $3) ORDER BY coupon_id LIMIT $4",
        tenant_id, member_id, after, limit))


async def set_coupon_state(conn: Conn, tenant_id: str, coupon_id: str, state: str, *,
                           transferred_to: str | None = None,
                           used_at: datetime | None = None) -> None:
    await conn.execute(
        "UPDATE rewards.coupons SET state = $3, transferred_to = coalesce($4, transferred_to),"
        " used_at = coalesce($5, used_at) WHERE tenant_id = $1 AND coupon_id = $2",
        tenant_id, coupon_id, state, transferred_to, used_at)


async def revoke_coupons(conn: Conn, tenant_id: str, ref: str) -> list[str]:
    """Expire the unused coupons handed out under ``ref``; returns the states found."""
    rows = await conn.fetch(
        "SELECT state FROM rewards.coupons WHERE tenant_id = $1 AND ref = $2 FOR UPDATE",
        tenant_id, ref)
    await conn.execute(
        "UPDATE rewards.coupons SET state = 'expired' WHERE tenant_id = $1 AND ref = $2"
        " AND state = 'active'", tenant_id, ref)
    return [str(row["state"]) for row in rows]


async def coupons_used_by(conn: Conn, tenant_id: str, member_id: str) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM rewards.coupons WHERE tenant_id = $1 AND member_id = $2"
        " AND state = 'used'", tenant_id, member_id))


# --- tickets and issues --------------------------------------------------------------------

async def add_tickets(conn: Conn, tenant_id: str, box_id: str, member_ids: Sequence[str],
                      count: int) -> None:
    await conn.execute(
        "INSERT INTO rewards.tickets AS t (tenant_id, member_id, box_id, count)"
        " SELECT $1, m, $2, $4 FROM unnest($3::text[]) AS m"
        " ON CONFLICT (tenant_id, member_id, box_id) DO UPDATE SET count = t.count + $4",
        tenant_id, box_id, list(member_ids), count)


async def use_ticket(conn: Conn, tenant_id: str, member_id: str, box_id: str) -> bool:
    used = await conn.fetchval(
        "UPDATE rewards.tickets SET count = count - 1 WHERE tenant_id = $1 AND member_id = $2"
        " AND box_id = $3 AND count > 0 RETURNING true", tenant_id, member_id, box_id)
    return bool(used)


async def audit_issue(conn: Conn, tenant_id: str, issue_id: str, key_id: str | None,
                      reason: str, kind: str, sku: str | None, box_id: str | None, count: int,
                      member_count: int, segment: SegmentTarget | None = None) -> None:
    await conn.execute(
        "INSERT INTO rewards.issue_audit (tenant_id, issue_id, key_id, reason, kind, sku,"
        " box_id, count, member_count, segment_id, segment_count, segment_computed_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        tenant_id, issue_id, key_id, reason, kind, sku, box_id, count, member_count,
        segment.segment_id if segment else None, segment.count if segment else None,
        segment.computed_at if segment else None)
