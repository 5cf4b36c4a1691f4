"""The tiers service's SQL, one function per query."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import asyncpg

from services.runtime.db import refusals


async def put_policy(conn: asyncpg.Connection, tenant_id: str, policy: Any) -> None:
    await conn.execute(
        "INSERT INTO tiers.policies (tenant_id, policy) VALUES ($1, $2)"
        " ON CONFLICT (tenant_id) DO UPDATE SET policy = EXCLUDED.policy, updated_at = now()",
        tenant_id, policy)


async def policy(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str) -> Any:
    return await conn.fetchval("SELECT policy FROM tiers.policies WHERE tenant_id = $1",
                               tenant_id)


async def add_day(conn: asyncpg.Connection, tenant_id: str, member_id: str, day: date,
                  spend_cents: int, points_earned: int) -> None:
    await conn.execute(
        "INSERT INTO tiers.member_days AS d (tenant_id, member_id, day, spend_cents,"
        " points_earned) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, member_id, day)"
        " DO UPDATE SET spend_cents = d.spend_cents + EXCLUDED.spend_cents,"
        " points_earned = d.points_earned + EXCLUDED.points_earned",
        tenant_id, member_id, day, spend_cents, points_earned)


async def add_available(conn: asyncpg.Connection, tenant_id: str, member_id: str,
                        delta: int) -> None:
    await conn.execute(
        "INSERT INTO tiers.members AS m (tenant_id, member_id, points_available)"
        " VALUES ($1, $2, $3) ON CONFLICT (tenant_id, member_id)"
        " DO UPDATE SET points_available = m.points_available + EXCLUDED.points_available",
        tenant_id, member_id, delta)


async def locked_member(conn: asyncpg.Connection, tenant_id: str,
                        member_id: str) -> asyncpg.Record:
    await conn.execute(
        "INSERT INTO tiers.members (tenant_id, member_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        tenant_id, member_id)
    row = await conn.fetchrow(
        "SELECT tier, since, below_since FROM tiers.members"
        " WHERE tenant_id = $1 AND member_id = $2 FOR UPDATE", tenant_id, member_id)
    assert row is not None
    return row


async def metrics(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, member_id: str,
                  window_days: int | None, now: datetime) -> dict[str, int]:
    value = await conn.fetchval("SELECT tiers.metrics($1, $2, $3, $4)",
                                tenant_id, member_id, window_days, now)
    return {k: int(v) for k, v in value.items()}


async def threshold_tier(conn: asyncpg.Connection, policy: Any, metrics: dict[str, int]) -> int:
    return int(await conn.fetchval("SELECT tiers.threshold_tier($1, $2)", policy, metrics))


async def save_member(conn: asyncpg.Connection, tenant_id: str, member_id: str,
                      tier: str | None, since: datetime | None, below_since: datetime | None,
                      metrics: dict[str, int]) -> None:
    await conn.execute(
        "UPDATE tiers.members SET tier = $3, since = $4, below_since = $5, metrics = $6,"
        " updated_at = now() WHERE tenant_id = $1 AND member_id = $2",
        tenant_id, member_id, tier, since, below_since, metrics)


async def add_history(conn: asyncpg.Connection, tenant_id: str, member_id: str,
                      from_tier: str | None, to_tier: str, metrics: dict[str, int],
                      at: datetime) -> None:
    await conn.execute(
        "INSERT INTO tiers.history (tenant_id, member_id, from_tier, to_tier, metrics, at)"
        " VALUES ($1, $2, $3, $4, $5, $6)", tenant_id, member_id, from_tier, to_tier, metrics,
        at)


async def member(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                 member_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT tier, since, below_since, metrics FROM tiers.members"
        " WHERE tenant_id = $1 AND member_id = $2", tenant_id, member_id)


async def history(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                  member_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT from_tier, to_tier, metrics, at FROM tiers.history"
        " WHERE tenant_id = $1 AND member_id = $2 ORDER BY change_id DESC", tenant_id, member_id)


async def members_with_tiers(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str | None,
                             limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT m.tenant_id, m.member_id FROM tiers.members m JOIN tiers.policies p"
        " USING (tenant_id) WHERE ($1::text IS NULL OR m.tenant_id = $1)"
        " AND p.policy ->> 'mode' = 'threshold' AND p.policy ? 'window_days'"
        " ORDER BY m.tenant_id, m.member_id LIMIT $2", tenant_id, limit)


async def stratify(conn: asyncpg.Connection, tenant_id: str, now: datetime) -> asyncpg.Record:
    with refusals():
        row = await conn.fetchrow("SELECT members, changed, cuts FROM tiers.stratify($1, $2)",
                                  tenant_id, now)
    assert row is not None
    return row


async def tier_counts(conn: asyncpg.Connection | asyncpg.Pool,
                      tenant_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT tier, count(*) AS members FROM tiers.members WHERE tenant_id = $1"
        " AND tier IS NOT NULL GROUP BY tier", tenant_id)


async def last_evaluation(conn: asyncpg.Connection | asyncpg.Pool,
                          tenant_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT cuts, at FROM tiers.evaluations WHERE tenant_id = $1"
        " ORDER BY evaluation_id DESC LIMIT 1", tenant_id)


async def percentile_tenants(conn: asyncpg.Connection | asyncpg.Pool) -> list[str]:
    rows = await conn.fetch(
        "SELECT tenant_id FROM tiers.policies WHERE policy ->> 'mode' = 'percentile'"
        " ORDER BY tenant_id")
    return [r["tenant_id"] for r in rows]
