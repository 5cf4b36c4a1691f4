"""The points service's SQL: one function per query; ledger operations call the functions in
sql/0002_ledger_functions.sql."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from proto.points import EventIn, GrantItem, RuleIn
from services.runtime.db import refusals


async def rules(conn: asyncpg.Connection, tenant_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT action, points, points_per_unit, unit_cents, limits, expires_after_days,"
        " enabled, false AS builtin FROM points.rules WHERE tenant_id = $1"
        " UNION ALL"
        " SELECT action, points, points_per_unit, unit_cents, limits, expires_after_days,"
        " enabled, true FROM points.default_rules d WHERE NOT EXISTS ("
        "   SELECT 1 FROM points.rules r WHERE r.tenant_id = $1 AND r.action = d.action)"
        " ORDER BY action", tenant_id)


async def put_rule(conn: asyncpg.Connection, tenant_id: str, action: str, rule: RuleIn,
                   limits: list[dict[str, Any]]) -> None:
    await conn.execute(
        "INSERT INTO points.rules (tenant_id, action, points, points_per_unit, unit_cents,"
        " limits, expires_after_days, enabled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (tenant_id, action) DO UPDATE SET points = EXCLUDED.points,"
        " points_per_unit = EXCLUDED.points_per_unit, unit_cents = EXCLUDED.unit_cents,"
        " limits = EXCLUDED.limits, expires_after_days = EXCLUDED.expires_after_days,"
        " enabled = EXCLUDED.enabled, updated_at = now()",
        tenant_id, action, rule.points, rule.points_per_unit, rule.unit_cents, limits,
        rule.expires_after_days, rule.enabled)


async def record_event(conn: asyncpg.Connection, tenant_id: str, event: EventIn,
                       fingerprint: bytes, occurred_at: datetime,
                       now: datetime) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT status_code, body, replayed FROM points.record_event("
        "$1, $2, $3, $4, $5, $6, $7, $8, $9)",
        tenant_id, event.event_id, fingerprint, event.member_id, event.action, occurred_at,
        event.amount_cents, event.attributes, now)
    assert row is not None
    return row


async def record_events(conn: asyncpg.Connection, tenant_id: str, events: Sequence[EventIn],
                        fingerprints: Sequence[bytes], occurred_at: Sequence[datetime],
                        now: datetime) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT ord, status_code, body, replayed FROM points.record_events("
        "$1, $2, $3, $4, $5, $6, $7, $8, $9)",
        tenant_id, [e.event_id for e in events], list(fingerprints),
        [e.member_id for e in events], [e.action for e in events], list(occurred_at),
        [e.amount_cents for e in events], [e.attributes for e in events], now)


async def place_hold(conn: asyncpg.Connection, tenant_id: str, hold_id: str, member_id: str,
                     points: int, reason: str, expires_in_s: int,
                     now: datetime) -> asyncpg.Record:
    with refusals():
        row = await conn.fetchrow(
            "SELECT available, held, expires_at FROM points.place_hold($1, $2, $3, $4, $5, $6, $7)",
            tenant_id, hold_id, member_id, points, reason, expires_in_s, now)
    assert row is not None
    return row


async def settle_hold(conn: asyncpg.Connection, tenant_id: str, hold_id: str, action: str,
                      now: datetime) -> asyncpg.Record:
    with refusals():
        row = await conn.fetchrow(
            "SELECT member_id, points, status, available, held"
            " FROM points.settle_hold($1, $2, $3, $4)", tenant_id, hold_id, action, now)
    assert row is not None
    return row


async def refund_hold(conn: asyncpg.Connection, tenant_id: str, hold_id: str,
                      now: datetime) -> asyncpg.Record:
    with refusals():
        row = await conn.fetchrow(
            "SELECT member_id, points, available FROM points.refund_hold($1, $2, $3)",
            tenant_id, hold_id, now)
    assert row is not None
    return row


async def move_points(conn: asyncpg.Connection, tenant_id: str, move_id: str, from_member: str,
                      to_member: str, points: int, reason: str, expires_days: int,
                      now: datetime) -> asyncpg.Record:
    with refusals():
        row = await conn.fetchrow(
            "SELECT from_available, to_available FROM points.move_points("
            "$1, $2, $3, $4, $5, $6, $7, $8)",
            tenant_id, move_id, from_member, to_member, points, reason, expires_days, now)
    assert row is not None
    return row


async def retire_points(conn: asyncpg.Connection, tenant_id: str, retirement_id: str,
                        member_id: str, points: int, now: datetime) -> int:
    with refusals():
        value = await conn.fetchval(
            "SELECT available FROM points.retire_points($1, $2, $3, $4, $5)",
            tenant_id, retirement_id, member_id, points, now)
    return int(value)


async def debit(conn: asyncpg.Connection, tenant_id: str, debit_id: str, member_id: str,
                points: int, reason: str, now: datetime) -> int:
    with refusals():
        available = await conn.fetchval(
            "SELECT available FROM points.debit($1, $2, $3, $4, $5, $6)",
            tenant_id, debit_id, member_id, points, reason, now)
    return int(available)


async def reverse_event(conn: asyncpg.Connection, tenant_id: str, reversal_id: str,
                        event_id: str, amount_cents: int | None,
                        now: datetime) -> asyncpg.Record:
    with refusals():
        row = await conn.fetchrow(
            "SELECT member_id, refunded_cents, points, clawed_back, shortfall, available"
            " FROM points.reverse_event($1, $2, $3, $4, $5)",
            tenant_id, reversal_id, event_id, amount_cents, now)
    assert row is not None
    return row


async def apply_grant(conn: asyncpg.Connection, tenant_id: str, grant_id: str,
                      key_id: str | None, reason: str, items: Sequence[GrantItem],
                      default_days: int, now: datetime) -> asyncpg.Record:
    with refusals():
        row = await conn.fetchrow(
            "SELECT item_count, total_points FROM points.apply_grant("
            "$1, $2, $3, $4, $5, $6, $7, $8, $9)",
            tenant_id, grant_id, key_id, reason, [i.member_id for i in items],
            [i.points for i in items], [i.expires_at for i in items], default_days, now)
    assert row is not None
    return row


async def member(conn: asyncpg.Connection, tenant_id: str, member_id: str,
                 now: datetime) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT member_id, available - points.expired_unswept(tenant_id, member_id, $3)"
        " AS available, held, lifetime_earned, spent, expired, reversed, spend_cents,"
        " earn_multiplier::float8 AS earn_multiplier"
        " FROM points.members WHERE tenant_id = $1 AND member_id = $2",
        tenant_id, member_id, now)


async def expiring(conn: asyncpg.Connection, tenant_id: str, member_id: str, now: datetime,
                   limit: int) -> list[asyncpg.Record]:
    """The next expiry dates of available points, soonest first."""
    return await conn.fetch(
        "SELECT sum(remaining - held)::bigint AS points, expires_at FROM points.lots"
        " WHERE tenant_id = $1 AND member_id = $2 AND remaining > held AND expires_at > $3"
        " GROUP BY expires_at ORDER BY expires_at LIMIT $4",
        tenant_id, member_id, now, limit)


async def entries(conn: asyncpg.Connection, tenant_id: str, member_id: str,
                  before_id: int | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT transfer_id, kind, from_account, to_account, amount, available_after,"
        " held_after, ref, at FROM points.transfers"
        " WHERE tenant_id = $1 AND member_id = $2 AND ($3::bigint IS NULL OR transfer_id < $3)"
        " ORDER BY transfer_id DESC LIMIT $4",
        tenant_id, member_id, before_id, limit)


async def set_multiplier(conn: asyncpg.Connection, tenant_id: str, member_id: str,
                         multiplier: float, at: datetime) -> None:
    """Sets the multiplier as of ``at``; a setting older than the current one is ignored."""
    await conn.execute(
        "INSERT INTO points.members (tenant_id, member_id, earn_multiplier, multiplier_set_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, member_id)"
        " DO UPDATE SET earn_multiplier = EXCLUDED.earn_multiplier,"
        " multiplier_set_at = EXCLUDED.multiplier_set_at"
        " WHERE points.members.multiplier_set_at IS NULL"
        " OR points.members.multiplier_set_at <= EXCLUDED.multiplier_set_at",
        tenant_id, member_id, multiplier, at)


async def ledger_problems(conn: asyncpg.Connection,
                          tenant_id: str | None) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT tenant_id, member_id, problem, detail FROM points.ledger_problems($1)"
        " ORDER BY tenant_id, member_id NULLS FIRST, problem", tenant_id)


async def sweep_expired_lots(conn: asyncpg.Connection, now: datetime, limit: int) -> int:
    return int(await conn.fetchval("SELECT points.sweep_expired_lots($1, $2)", now, limit))


async def expire_holds(conn: asyncpg.Connection, now: datetime, limit: int) -> int:
    return int(await conn.fetchval("SELECT points.expire_holds($1, $2)", now, limit))


async def tenant_time_zone(conn: asyncpg.Connection, tenant_id: str) -> str:
    return str(await conn.fetchval(
        "SELECT time_zone FROM fuli.tenants WHERE tenant_id = $1", tenant_id))
