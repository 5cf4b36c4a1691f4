"""The rewards service's SQL, one function per query."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from proto.rewards import PerkIn
from services.rewards.draws import commitment, new_seed


class Refused(Exception):
    """A reservation was refused; the transaction rolls back."""

    def __init__(self, code: str, **details: Any) -> None:
        super().__init__(code)
        self.code = code
        self.details = details


# --- perks and codes -----------------------------------------------------------------------

async def put_perk(conn: asyncpg.Connection, tenant_id: str, sku: str,
                   perk: PerkIn) -> asyncpg.Record:
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
        " RETURNING sku, name, description, cost_points, stock_left, stock_version,"
        " per_member_limit, tiers, starts_at, ends_at, fulfilment, coupon_valid_days, enabled",
        tenant_id, sku, perk.name, perk.description, perk.cost_points, perk.stock,
        perk.per_member_limit, perk.tiers, perk.starts_at, perk.ends_at, perk.fulfilment,
        perk.coupon_valid_days, perk.enabled)
    assert row is not None
    return row


async def perk(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
               sku: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT sku, name, description, cost_points, stock_left, stock_version,"
        " per_member_limit, tiers, starts_at, ends_at, fulfilment, coupon_valid_days, enabled"
        " FROM rewards.perks WHERE tenant_id = $1 AND sku = $2", tenant_id, sku)


async def perks(conn: asyncpg.Connection, tenant_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT sku, name, description, cost_points, stock_left, stock_version,"
        " per_member_limit, tiers, starts_at, ends_at, fulfilment, coupon_valid_days, enabled,"
        " (SELECT count(*) FROM rewards.codes c"
        " WHERE c.tenant_id = p.tenant_id AND c.sku = p.sku AND c.redemption_id IS NULL"
        " AND c.issue_id IS NULL) AS codes_available"
        " FROM rewards.perks p WHERE tenant_id = $1 ORDER BY sku", tenant_id)


async def stock_versions(conn: asyncpg.Connection | asyncpg.Pool,
                         limit: int = 10_000) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT tenant_id, sku, stock_left, stock_version FROM rewards.perks"
        " WHERE stock_left IS NOT NULL ORDER BY tenant_id, sku LIMIT $1", limit)


async def add_codes(conn: asyncpg.Connection, tenant_id: str, sku: str,
                    codes: Sequence[str]) -> int:
    added = await conn.fetchval(
        "WITH added AS (INSERT INTO rewards.codes (tenant_id, sku, code)"
        " SELECT $1, $2, c FROM unnest($3::text[]) AS c ON CONFLICT DO NOTHING RETURNING 1)"
        " SELECT count(*) FROM added", tenant_id, sku, list(codes))
    return int(added)


async def free_codes(conn: asyncpg.Connection, tenant_id: str, sku: str) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM rewards.codes WHERE tenant_id = $1 AND sku = $2"
        " AND redemption_id IS NULL AND issue_id IS NULL", tenant_id, sku))


async def member_tier(conn: asyncpg.Connection, tenant_id: str, member_id: str) -> str | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT tier FROM rewards.member_tiers WHERE tenant_id = $1 AND member_id = $2",
        tenant_id, member_id)


async def allowance_used(conn: asyncpg.Connection, tenant_id: str, member_id: str
                         ) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT sku, redeemed FROM rewards.allowances WHERE tenant_id = $1 AND member_id = $2",
        tenant_id, member_id)
    return {r["sku"]: r["redeemed"] for r in rows}


# --- stock, allowance and codes: reserved together, released together ----------------------

async def take_stock(conn: asyncpg.Connection, tenant_id: str, sku: str, quantity: int,
                     member_id: str | None, redemption_id: str | None = None,
                     issue_id: str | None = None) -> tuple[list[str], asyncpg.Record]:
    """Inside the caller's transaction: stock, the member's allowance and codes, or Refused."""
    row = await conn.fetchrow(
        "UPDATE rewards.perks SET stock_left = CASE WHEN stock_left IS NULL THEN NULL"
        " ELSE stock_left - $3 END, stock_version = stock_version + 1"
        " WHERE tenant_id = $1 AND sku = $2 AND (stock_left IS NULL OR stock_left >= $3)"
        " RETURNING stock_left, stock_version, per_member_limit, fulfilment",
        tenant_id, sku, quantity)
    if row is None:
        left = await conn.fetchval(
            "SELECT stock_left FROM rewards.perks WHERE tenant_id = $1 AND sku = $2",
            tenant_id, sku)
        raise Refused("out_of_stock", stock=left, requested=quantity)
    if member_id is not None and row["per_member_limit"] is not None:
        held = await conn.fetchval(
            "INSERT INTO rewards.allowances AS a (tenant_id, sku, member_id, redeemed)"
            " SELECT $1, $2, $3, $4::int WHERE $4::int <= $5::int"
            " ON CONFLICT (tenant_id, sku, member_id) DO UPDATE"
            " SET redeemed = a.redeemed + EXCLUDED.redeemed"
            " WHERE a.redeemed + EXCLUDED.redeemed <= $5::int RETURNING redeemed",
            tenant_id, sku, member_id, quantity, row["per_member_limit"])
        if held is None:
            raise Refused("limit_reached", per_member_limit=row["per_member_limit"])
    codes: list[str] = []
    if row["fulfilment"] == "code":
        codes = [r["code"] for r in await conn.fetch(
            "UPDATE rewards.codes SET redemption_id = $4, issue_id = $5, assigned_at = now()"
            " WHERE (tenant_id, sku, code) IN (SELECT tenant_id, sku, code FROM rewards.codes"
            "   WHERE tenant_id = $1 AND sku = $2 AND redemption_id IS NULL AND issue_id IS NULL"
            "   ORDER BY code LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING code",
            tenant_id, sku, quantity, redemption_id, issue_id)]
        if len(codes) < quantity:
            raise Refused("out_of_stock", codes_available=len(codes), requested=quantity)
    return codes, row


async def put_back_stock(conn: asyncpg.Connection, tenant_id: str, sku: str, quantity: int,
                         member_id: str, redemption_id: str,
                         free_codes_too: bool) -> asyncpg.Record:
    row = await conn.fetchrow(
        "UPDATE rewards.perks SET stock_left = stock_left + $3,"
        " stock_version = stock_version + 1 WHERE tenant_id = $1 AND sku = $2"
        " RETURNING stock_left, stock_version", tenant_id, sku, quantity)
    await conn.execute(
        "UPDATE rewards.allowances SET redeemed = greatest(redeemed - $4, 0)"
        " WHERE tenant_id = $1 AND sku = $2 AND member_id = $3",
        tenant_id, sku, member_id, quantity)
    if free_codes_too:
        await conn.execute(
            "UPDATE rewards.codes SET redemption_id = NULL, assigned_at = NULL"
            " WHERE tenant_id = $1 AND sku = $2 AND redemption_id = $3",
            tenant_id, sku, redemption_id)
    assert row is not None
    return row


# --- redemptions ---------------------------------------------------------------------------

async def insert_redemption(conn: asyncpg.Connection, tenant_id: str, redemption_id: str,
                            member_id: str, sku: str, quantity: int, points: int,
                            fingerprint: bytes, hold_id: str, status: str,
                            outcome: tuple[int, bytes] | None) -> asyncpg.Record | None:
    """The new row, or None if the id is taken."""
    return await conn.fetchrow(
        "INSERT INTO rewards.redemptions (tenant_id, redemption_id, member_id, sku, quantity,"
        " points, fingerprint, hold_id, status, outcome_status, outcome_body)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING"
        " RETURNING redemption_id, member_id, sku, quantity, points, fingerprint, hold_id,"
        " status, codes, outcome_status, outcome_body, created_at, updated_at",
        tenant_id, redemption_id, member_id, sku, quantity, points, fingerprint, hold_id, status,
        outcome[0] if outcome else None, outcome[1] if outcome else None)


REDEMPTION_BY_ID = (
    "SELECT redemption_id, member_id, sku, quantity, points, fingerprint, hold_id, status,"
    " codes, outcome_status, outcome_body, created_at, updated_at FROM rewards.redemptions"
    " WHERE tenant_id = $1 AND redemption_id = $2"
)


async def redemption(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                     redemption_id: str, *, lock: bool = False) -> asyncpg.Record | None:
    query = REDEMPTION_BY_ID + " FOR UPDATE" if lock else REDEMPTION_BY_ID
    return await conn.fetchrow(query, tenant_id, redemption_id)


async def move_redemption(conn: asyncpg.Connection, tenant_id: str, redemption_id: str,
                          from_status: str, to_status: str, *,
                          outcome: tuple[int, bytes] | None = None,
                          codes: list[str] | None = None) -> bool:
    """Compare-and-set of the status; False if someone else moved it first."""
    moved = await conn.fetchval(
        "UPDATE rewards.redemptions SET status = $4, updated_at = now(),"
        " outcome_status = coalesce($5, outcome_status), outcome_body = coalesce($6, outcome_body),"
        " codes = coalesce($7, codes)"
        " WHERE tenant_id = $1 AND redemption_id = $2 AND status = $3 RETURNING true",
        tenant_id, redemption_id, from_status, to_status, outcome[0] if outcome else None,
        outcome[1] if outcome else None, codes)
    return bool(moved)


async def member_redemptions(conn: asyncpg.Connection, tenant_id: str, member_id: str,
                             before: tuple[datetime, str] | None,
                             limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT redemption_id, member_id, sku, quantity, points, status, codes, created_at"
        " FROM rewards.redemptions WHERE tenant_id = $1 AND member_id = $2"
        " AND status IN ('completed', 'pending_fulfilment', 'cancelled', 'cancelling')"
        " AND ($3::timestamptz IS NULL OR (created_at, redemption_id) < ($3, $4))"
        " ORDER BY created_at DESC, redemption_id DESC LIMIT $5",
        tenant_id, member_id, before[0] if before else None, before[1] if before else None,
        limit)


async def unfinished_redemptions(conn: asyncpg.Connection | asyncpg.Pool, older_than: datetime,
                                 limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT tenant_id, redemption_id FROM rewards.redemptions"
        " WHERE status IN ('pending', 'reserved', 'releasing', 'cancelling')"
        " AND updated_at < $1 ORDER BY updated_at LIMIT $2", older_than, limit)


# --- coupons -------------------------------------------------------------------------------

async def add_coupons(conn: asyncpg.Connection, tenant_id: str, rows: Sequence[tuple[Any, ...]]
                      ) -> None:
    """rows: (coupon_id, member_id, sku, code, expires_at, source, ref)"""
    await conn.executemany(
        "INSERT INTO rewards.coupons (tenant_id, coupon_id, member_id, sku, code, state,"
        " expires_at, source, ref) VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $8)",
        [(tenant_id, *row) for row in rows])


COUPON_BY_ID = (
    "SELECT coupon_id, member_id, sku, code, state, expires_at, source, ref, transferred_to"
    " FROM rewards.coupons WHERE tenant_id = $1 AND coupon_id = $2"
)


async def coupon(conn: asyncpg.Connection, tenant_id: str, coupon_id: str, *,
                 lock: bool = False) -> asyncpg.Record | None:
    query = COUPON_BY_ID + " FOR UPDATE" if lock else COUPON_BY_ID
    return await conn.fetchrow(query, tenant_id, coupon_id)


async def member_coupons(conn: asyncpg.Connection, tenant_id: str, member_id: str,
                         after: str | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT coupon_id, sku, code, state, expires_at, transferred_to FROM rewards.coupons"
        " WHERE tenant_id = $1 AND member_id = $2 AND ($3::text IS NULL OR coupon_id > $3)"
        " ORDER BY coupon_id LIMIT $4", tenant_id, member_id, after, limit)


async def set_coupon_state(conn: asyncpg.Connection, tenant_id: str, coupon_id: str,
                           state: str, *, transferred_to: str | None = None,
                           used_at: datetime | None = None) -> None:
    await conn.execute(
        "UPDATE rewards.coupons SET state = $3, transferred_to = coalesce($4, transferred_to),"
        " used_at = coalesce($5, used_at) WHERE tenant_id = $1 AND coupon_id = $2",
        tenant_id, coupon_id, state, transferred_to, used_at)


async def revoke_coupons(conn: asyncpg.Connection, tenant_id: str, ref: str) -> list[str]:
    """Expire the unused coupons a redemption handed out; returns the states found."""
    rows = await conn.fetch(
        "SELECT state FROM rewards.coupons WHERE tenant_id = $1 AND ref = $2 FOR UPDATE",
        tenant_id, ref)
    await conn.execute(
        "UPDATE rewards.coupons SET state = 'expired' WHERE tenant_id = $1 AND ref = $2"
        " AND state = 'active'", tenant_id, ref)
    return [r["state"] for r in rows]


async def coupons_used_by(conn: asyncpg.Connection, tenant_id: str, member_id: str) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM rewards.coupons WHERE tenant_id = $1 AND member_id = $2"
        " AND state = 'used'", tenant_id, member_id))


# --- issues and tickets --------------------------------------------------------------------

async def add_tickets(conn: asyncpg.Connection, tenant_id: str, box_id: str,
                      member_ids: Sequence[str], count: int) -> None:
    await conn.execute(
        "INSERT INTO rewards.tickets AS t (tenant_id, member_id, box_id, count)"
        " SELECT $1, m, $2, $4 FROM unnest($3::text[]) AS m"
        " ON CONFLICT (tenant_id, member_id, box_id) DO UPDATE SET count = t.count + $4",
        tenant_id, box_id, list(member_ids), count)


async def audit_issue(conn: asyncpg.Connection, tenant_id: str, issue_id: str,
                      key_id: str | None, reason: str, kind: str, sku: str | None,
                      box_id: str | None, count: int, member_count: int) -> None:
    await conn.execute(
        "INSERT INTO rewards.issue_audit (tenant_id, issue_id, key_id, reason, kind, sku,"
        " box_id, count, member_count) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        tenant_id, issue_id, key_id, reason, kind, sku, box_id, count, member_count)


async def set_member_tier(conn: asyncpg.Connection, tenant_id: str, member_id: str,
                          tier: str, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO rewards.member_tiers (tenant_id, member_id, tier, updated_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, member_id) DO UPDATE"
        " SET tier = EXCLUDED.tier, updated_at = EXCLUDED.updated_at"
        " WHERE rewards.member_tiers.updated_at <= EXCLUDED.updated_at",
        tenant_id, member_id, tier, at)


# --- blind boxes ---------------------------------------------------------------------------

async def put_box(conn: asyncpg.Connection, tenant_id: str, box_id: str, box: Any,
                  key_id: str | None, definition: Any) -> None:
    await conn.execute(
        "INSERT INTO rewards.boxes (tenant_id, box_id, name, cost_points, daily_limit_per_member,"
        " pity_after, pity_prize_ids, starts_at, ends_at, min_age, enabled)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        " ON CONFLICT (tenant_id, box_id) DO UPDATE SET name = EXCLUDED.name,"
        " cost_points = EXCLUDED.cost_points,"
        " daily_limit_per_member = EXCLUDED.daily_limit_per_member,"
        " pity_after = EXCLUDED.pity_after, pity_prize_ids = EXCLUDED.pity_prize_ids,"
        " starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at,"
        " min_age = EXCLUDED.min_age, enabled = EXCLUDED.enabled, updated_at = now()",
        tenant_id, box_id, box.name, box.cost_points, box.daily_limit_per_member,
        box.pity.after_draws if box.pity else None, box.pity.prize_ids if box.pity else None,
        box.starts_at, box.ends_at, box.min_age, box.enabled)
    await conn.execute("DELETE FROM rewards.box_prizes WHERE tenant_id = $1 AND box_id = $2",
                       tenant_id, box_id)
    await conn.executemany(
        "INSERT INTO rewards.box_prizes (tenant_id, box_id, prize_id, position, name, weight,"
        " stock_left, kind, points, sku) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        [(tenant_id, box_id, p.prize_id, i, p.name, p.weight, p.stock, p.kind, p.points, p.sku)
         for i, p in enumerate(box.prizes)])
    await conn.execute(
        "INSERT INTO rewards.box_audit (tenant_id, box_id, key_id, definition)"
        " VALUES ($1, $2, $3, $4)", tenant_id, box_id, key_id, definition)


async def box(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
              box_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT box_id, name, cost_points, daily_limit_per_member, pity_after, pity_prize_ids,"
        " starts_at, ends_at, min_age, enabled FROM rewards.boxes"
        " WHERE tenant_id = $1 AND box_id = $2", tenant_id, box_id)


async def box_prizes(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, box_id: str, *,
                     lock: bool = False) -> list[asyncpg.Record]:
    query = ("SELECT prize_id, name, weight, stock_left, kind, points, sku"
             " FROM rewards.box_prizes WHERE tenant_id = $1 AND box_id = $2 ORDER BY position")
    return await conn.fetch(query + " FOR UPDATE" if lock else query, tenant_id, box_id)


async def live_seed(conn: asyncpg.Connection, tenant_id: str, box_id: str) -> asyncpg.Record:
    """The box's live seed, made (and its commitment published) on first need."""
    row = await conn.fetchrow(
        "SELECT seed_no, seed, commitment FROM rewards.box_seeds"
        " WHERE tenant_id = $1 AND box_id = $2 AND revealed_at IS NULL", tenant_id, box_id)
    if row is not None:
        return row
    seed = new_seed()
    await conn.execute(
        "INSERT INTO rewards.box_seeds (tenant_id, box_id, seed_no, seed, commitment)"
        " SELECT $1, $2, coalesce(max(seed_no), 0) + 1, $3, $4 FROM rewards.box_seeds"
        " WHERE tenant_id = $1 AND box_id = $2 ON CONFLICT DO NOTHING",
        tenant_id, box_id, seed, commitment(seed))
    row = await conn.fetchrow(
        "SELECT seed_no, seed, commitment FROM rewards.box_seeds"
        " WHERE tenant_id = $1 AND box_id = $2 AND revealed_at IS NULL", tenant_id, box_id)
    assert row is not None
    return row


async def reveal_seed(conn: asyncpg.Connection, tenant_id: str, box_id: str) -> None:
    await conn.execute(
        "UPDATE rewards.box_seeds SET revealed_at = now()"
        " WHERE tenant_id = $1 AND box_id = $2 AND revealed_at IS NULL", tenant_id, box_id)


async def seeds(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                box_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT seed_no, seed, commitment, created_at, revealed_at FROM rewards.box_seeds"
        " WHERE tenant_id = $1 AND box_id = $2 ORDER BY seed_no", tenant_id, box_id)


async def box_member(conn: asyncpg.Connection, tenant_id: str, box_id: str,
                     member_id: str) -> asyncpg.Record:
    """The member's row for this box, created and locked: it serialises the member's draws."""
    await conn.execute(
        "INSERT INTO rewards.box_members (tenant_id, box_id, member_id) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING", tenant_id, box_id, member_id)
    row = await conn.fetchrow(
        "SELECT pity_counter, day, draws_that_day FROM rewards.box_members"
        " WHERE tenant_id = $1 AND box_id = $2 AND member_id = $3 FOR UPDATE",
        tenant_id, box_id, member_id)
    assert row is not None
    return row


async def pity_counter(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, box_id: str,
                       member_id: str) -> int:
    value = await conn.fetchval(
        "SELECT pity_counter FROM rewards.box_members"
        " WHERE tenant_id = $1 AND box_id = $2 AND member_id = $3", tenant_id, box_id, member_id)
    return int(value or 0)


async def set_box_member(conn: asyncpg.Connection, tenant_id: str, box_id: str, member_id: str,
                         pity: int, day: Any, draws_that_day: int) -> None:
    await conn.execute(
        "UPDATE rewards.box_members SET pity_counter = $4, day = $5, draws_that_day = $6"
        " WHERE tenant_id = $1 AND box_id = $2 AND member_id = $3",
        tenant_id, box_id, member_id, pity, day, draws_that_day)


async def use_ticket(conn: asyncpg.Connection, tenant_id: str, member_id: str,
                     box_id: str) -> bool:
    used = await conn.fetchval(
        "UPDATE rewards.tickets SET count = count - 1 WHERE tenant_id = $1 AND member_id = $2"
        " AND box_id = $3 AND count > 0 RETURNING true", tenant_id, member_id, box_id)
    return bool(used)


async def change_prize_stock(conn: asyncpg.Connection, tenant_id: str, box_id: str,
                             prize_id: str, delta: int) -> None:
    await conn.execute(
        "UPDATE rewards.box_prizes SET stock_left = stock_left + $4"
        " WHERE tenant_id = $1 AND box_id = $2 AND prize_id = $3 AND stock_left IS NOT NULL",
        tenant_id, box_id, prize_id, delta)


DRAW_BY_ID = (
    "SELECT draw_id, box_id, member_id, fingerprint, paid_with, cost_points, hold_id, status,"
    " seed_no, candidates, pity_applied, prize_id, pity_before, pity_after, outcome_status,"
    " outcome_body, created_at FROM rewards.draws WHERE tenant_id = $1 AND draw_id = $2"
)


async def draw(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
               draw_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(DRAW_BY_ID, tenant_id, draw_id)


async def insert_draw(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, draw_id: str,
                      box_id: str, member_id: str, fingerprint: bytes, paid_with: str,
                      cost_points: int, hold_id: str, status: str,
                      outcome: tuple[int, bytes] | None) -> bool:
    inserted = await conn.fetchval(
        "INSERT INTO rewards.draws (tenant_id, draw_id, box_id, member_id, fingerprint,"
        " paid_with, cost_points, hold_id, status, outcome_status, outcome_body)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING"
        " RETURNING true", tenant_id, draw_id, box_id, member_id, fingerprint, paid_with,
        cost_points, hold_id, status, outcome[0] if outcome else None,
        outcome[1] if outcome else None)
    return bool(inserted)


async def record_pick(conn: asyncpg.Connection, tenant_id: str, draw_id: str, seed_no: int,
                      candidates: Any, pity_applied: bool, prize_id: str, pity_before: int,
                      pity_after: int) -> bool:
    moved = await conn.fetchval(
        "UPDATE rewards.draws SET status = 'drawn', seed_no = $3, candidates = $4,"
        " pity_applied = $5, prize_id = $6, pity_before = $7, pity_after = $8,"
        " updated_at = now() WHERE tenant_id = $1 AND draw_id = $2 AND status = 'pending'"
        " RETURNING true", tenant_id, draw_id, seed_no, candidates, pity_applied, prize_id,
        pity_before, pity_after)
    return bool(moved)


async def move_draw(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, draw_id: str,
                    from_status: str, to_status: str,
                    outcome: tuple[int, bytes] | None = None) -> bool:
    moved = await conn.fetchval(
        "UPDATE rewards.draws SET status = $4, updated_at = now(),"
        " outcome_status = coalesce($5, outcome_status), outcome_body = coalesce($6, outcome_body)"
        " WHERE tenant_id = $1 AND draw_id = $2 AND status = $3 RETURNING true",
        tenant_id, draw_id, from_status, to_status, outcome[0] if outcome else None,
        outcome[1] if outcome else None)
    return bool(moved)


async def revealed_draws(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                         box_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT d.draw_id, d.candidates, d.prize_id, s.seed, s.commitment FROM rewards.draws d"
        " JOIN rewards.box_seeds s ON s.tenant_id = d.tenant_id AND s.box_id = d.box_id"
        "  AND s.seed_no = d.seed_no"
        " WHERE d.tenant_id = $1 AND d.box_id = $2 AND s.revealed_at IS NOT NULL"
        " AND d.prize_id IS NOT NULL ORDER BY d.draw_id", tenant_id, box_id)


async def member_profile(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                         member_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT age_band, guardian_consent FROM rewards.member_profiles"
        " WHERE tenant_id = $1 AND member_id = $2", tenant_id, member_id)


async def put_member_profile(conn: asyncpg.Connection, tenant_id: str, member_id: str,
                             age_band: str, guardian_consent: bool) -> None:
    await conn.execute(
        "INSERT INTO rewards.member_profiles (tenant_id, member_id, age_band, guardian_consent)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, member_id) DO UPDATE"
        " SET age_band = EXCLUDED.age_band, guardian_consent = EXCLUDED.guardian_consent,"
        " updated_at = now()", tenant_id, member_id, age_band, guardian_consent)


async def tenant_time_zone(conn: asyncpg.Connection, tenant_id: str) -> str:
    return str(await conn.fetchval(
        "SELECT time_zone FROM fuli.tenants WHERE tenant_id = $1", tenant_id))


async def unfinished_draws(conn: asyncpg.Connection | asyncpg.Pool, older_than: datetime,
                           limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT tenant_id, draw_id, created_at FROM rewards.draws"
        " WHERE status IN ('pending', 'drawn', 'releasing') AND updated_at < $1"
        " ORDER BY updated_at LIMIT $2", older_than, limit)
