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


async def window_candidates(conn: asyncpg.Connection | asyncpg.Pool, after: tuple[str, str],
                            now: datetime, lookback_days: int,
                            limit: int) -> list[asyncpg.Record]:
    """Members of windowed threshold policies whose tier may have to move without a new
    event: a grace period is running, or some of their days left the window within the last
    ``lookback_days``. Keyset-paged by (tenant, member) after ``after``."""
    return await conn.fetch(
        "SELECT m.tenant_id, m.member_id FROM tiers.members m JOIN tiers.policies p"
        " USING (tenant_id) WHERE p.policy ->> 'mode' = 'threshold' AND p.policy ? 'window_days'"
        " AND (m.tenant_id, m.member_id) > ($1, $2)"
        " AND (m.below_since IS NOT NULL OR EXISTS (SELECT 1 FROM tiers.member_days d"
        "  WHERE d.tenant_id = m.tenant_id AND d.member_id = m.member_id"
        "  AND d.day <= ($3 AT TIME ZONE 'UTC')::date - (p.policy ->> 'window_days')::int"
        "  AND d.day > ($3 AT TIME ZONE 'UTC')::date - (p.policy ->> 'window_days')::int"
        "   - $4::int))"
        " ORDER BY m.tenant_id, m.member_id LIMIT $5",
        after[0], after[1], now, lookback_days, limit)


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


async def tenant_time_zone(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str) -> str:
    return str(await conn.fetchval(
        "SELECT time_zone FROM fuli.tenants WHERE tenant_id = $1", tenant_id) or "UTC")


# --- activity, from the bus -------------------------------------------------------------

async def add_action(conn: asyncpg.Connection, tenant_id: str, member_id: str, action: str,
                     group_id: str, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO tiers.action_days AS d (tenant_id, member_id, day, action, group_id, actions)"
        " VALUES ($1, $2, tiers.local_day($1, $5), $3, $4, 1)"
        " ON CONFLICT (tenant_id, member_id, day, action, group_id)"
        " DO UPDATE SET actions = d.actions + 1", tenant_id, member_id, action, group_id, at)
    await conn.execute(
        "INSERT INTO tiers.members (tenant_id, member_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        tenant_id, member_id)


async def add_purchase(conn: asyncpg.Connection, tenant_id: str, event_id: str, member_id: str,
                       action: str, group_id: str | None, at: datetime,
                       amount_cents: int) -> None:
    await conn.execute(
        "INSERT INTO tiers.purchases AS p (tenant_id, event_id, member_id, action, group_id,"
        " occurred_at, day, amount_cents) VALUES ($1, $2, $3, $4, $5, $6,"
        " tiers.local_day($1, $6), $7) ON CONFLICT (tenant_id, event_id) DO UPDATE"
        " SET action = EXCLUDED.action, group_id = EXCLUDED.group_id,"
        " occurred_at = EXCLUDED.occurred_at, day = EXCLUDED.day,"
        " amount_cents = EXCLUDED.amount_cents",
        tenant_id, event_id, member_id, action, group_id, at, amount_cents)


async def add_refund(conn: asyncpg.Connection, tenant_id: str, event_id: str, member_id: str,
                     occurred_at: datetime, amount_cents: int) -> None:
    await conn.execute(
        "INSERT INTO tiers.purchases AS p (tenant_id, event_id, member_id, occurred_at, day,"
        " refunded_cents) VALUES ($1, $2, $3, $4, tiers.local_day($1, $4), $5)"
        " ON CONFLICT (tenant_id, event_id)"
        " DO UPDATE SET refunded_cents = p.refunded_cents + EXCLUDED.refunded_cents",
        tenant_id, event_id, member_id, occurred_at, amount_cents)


# --- groups ---------------------------------------------------------------------------

GROUP_COLUMNS = (
    "g.group_id, g.name, g.tier, g.kind, g.created_at, g.updated_at,"
    " (SELECT count(*) FROM tiers.group_members gm WHERE gm.tenant_id = g.tenant_id"
    "  AND gm.group_id = g.group_id AND gm.left_at IS NULL) AS members")


async def put_group(conn: asyncpg.Connection, tenant_id: str, group_id: str, name: str,
                    tier: str, kind: str) -> asyncpg.Record:
    await conn.execute(
        "INSERT INTO tiers.groups (tenant_id, group_id, name, tier, kind)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, group_id) DO UPDATE"
        " SET name = EXCLUDED.name, tier = EXCLUDED.tier, kind = EXCLUDED.kind,"
        " updated_at = now()", tenant_id, group_id, name, tier, kind)
    row = await group(conn, tenant_id, group_id)
    assert row is not None
    return row


async def group(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                group_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT " + GROUP_COLUMNS + " FROM tiers.groups g"
        " WHERE g.tenant_id = $1 AND g.group_id = $2", tenant_id, group_id)


async def lock_group(conn: asyncpg.Connection, tenant_id: str, group_id: str) -> bool:
    """Serialises joins and leaves of one group, so stays never overlap."""
    return await conn.fetchval(
        "SELECT true FROM tiers.groups WHERE tenant_id = $1 AND group_id = $2 FOR UPDATE",
        tenant_id, group_id) is not None


async def last_stay(conn: asyncpg.Connection, tenant_id: str, group_id: str,
                    member_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT joined_at, left_at FROM tiers.group_members"
        " WHERE tenant_id = $1 AND group_id = $2 AND member_id = $3"
        " ORDER BY joined_at DESC LIMIT 1", tenant_id, group_id, member_id)


async def join_group(conn: asyncpg.Connection, tenant_id: str, group_id: str, member_id: str,
                     at: datetime) -> None:
    await conn.execute(
        "INSERT INTO tiers.group_members (tenant_id, group_id, member_id, joined_at)"
        " VALUES ($1, $2, $3, $4)", tenant_id, group_id, member_id, at)
    await conn.execute(
        "INSERT INTO tiers.members (tenant_id, member_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        tenant_id, member_id)


async def leave_group(conn: asyncpg.Connection, tenant_id: str, group_id: str, member_id: str,
                      at: datetime) -> None:
    await conn.execute(
        "UPDATE tiers.group_members SET left_at = $4"
        " WHERE tenant_id = $1 AND group_id = $2 AND member_id = $3 AND left_at IS NULL",
        tenant_id, group_id, member_id, at)


async def group_period(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, group_id: str,
                       start: datetime, end: datetime) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM tiers.group_period($1, $2, $3, $4)",
                              tenant_id, group_id, start, end)
    assert row is not None
    return row


async def group_values(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, model: Any,
                       at: datetime) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT group_id, members, value_mean, high_value_members"
        " FROM tiers.group_values($1, $2, $3)", tenant_id, model, at)


async def tier_mismatches(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                          ladder: list[str], model: Any, last_day: date,
                          limit: int) -> list[asyncpg.Record]:
    """Members now in a group that does not fit their tier: in a fan group, any other tier; in
    a member group, a lower tier; in a super-user group, a lower tier unless the member is a
    potential super user (value at or above the high-value line). Flash groups mix anyone."""
    return await conn.fetch(
        "WITH present AS (SELECT gm.member_id, gm.group_id, g.kind, g.tier AS group_tier,"
        "  m.tier AS member_tier, array_position($2::text[], g.tier) AS group_rank,"
        "  array_position($2::text[], m.tier) AS member_rank"
        "  FROM tiers.group_members gm"
        "  JOIN tiers.groups g ON g.tenant_id = gm.tenant_id AND g.group_id = gm.group_id"
        "  JOIN tiers.members m ON m.tenant_id = gm.tenant_id AND m.member_id = gm.member_id"
        "  WHERE gm.tenant_id = $1 AND gm.left_at IS NULL AND g.kind <> 'flash'"
        "  AND m.tier IS NOT NULL AND m.tier <> g.tier),"
        " v AS (SELECT * FROM tiers.member_values($1, $3, $4, (SELECT array_agg(DISTINCT"
        "  member_id) FROM present WHERE kind = 'super')))"
        " SELECT p.member_id, p.group_id, p.group_tier, p.member_tier, v.total FROM present p"
        " LEFT JOIN v ON v.member_id = p.member_id"
        " WHERE p.kind = 'fan' OR p.group_rank IS NULL OR p.member_rank IS NULL"
        " OR (p.member_rank < p.group_rank AND (p.kind = 'member' OR coalesce("
        "  coalesce(v.total, 0) < ($3 ->> 'high_value_line')::numeric, true)))"
        " ORDER BY p.member_id, p.group_id LIMIT $5",
        tenant_id, ladder, model, last_day, limit)


async def high_value_members_of(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                                model: Any, last_day: date, group_ids: list[str],
                                limit: int) -> list[asyncpg.Record]:
    """Current members of the given groups whose value reaches the model's high-value line."""
    return await conn.fetch(
        "WITH present AS (SELECT gm.member_id, gm.group_id FROM tiers.group_members gm"
        "  WHERE gm.tenant_id = $1 AND gm.left_at IS NULL AND gm.group_id = ANY ($4))"
        " SELECT p.member_id, p.group_id, g.tier AS group_tier, m.tier AS member_tier,"
        "  v.total FROM present p"
        " JOIN tiers.groups g ON g.tenant_id = $1 AND g.group_id = p.group_id"
        " LEFT JOIN tiers.members m ON m.tenant_id = $1 AND m.member_id = p.member_id"
        " JOIN tiers.member_values($1, $2, $3,"
        "  (SELECT array_agg(DISTINCT member_id) FROM present)) v ON v.member_id = p.member_id"
        " WHERE v.total >= ($2 ->> 'high_value_line')::numeric"
        " ORDER BY p.member_id, p.group_id LIMIT $5", tenant_id, model, last_day, group_ids,
        limit)


async def memberships_of(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                         member_ids: list[str]) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT member_id, group_id FROM tiers.group_members"
        " WHERE tenant_id = $1 AND left_at IS NULL AND member_id = ANY ($2)",
        tenant_id, member_ids)


async def groups(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT group_id, tier, kind FROM tiers.groups WHERE tenant_id = $1 ORDER BY group_id",
        tenant_id)


async def compositions(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, model: Any,
                       last_day: date, top_tier: str | None) -> list[asyncpg.Record]:
    """Per super-user and member group now: members, super users (top tier) and potential
    super users (below the top tier, value at or above the high-value line)."""
    return await conn.fetch(
        "WITH present AS (SELECT gm.member_id, gm.group_id, g.kind FROM tiers.group_members gm"
        "  JOIN tiers.groups g ON g.tenant_id = gm.tenant_id AND g.group_id = gm.group_id"
        "  WHERE gm.tenant_id = $1 AND gm.left_at IS NULL AND g.kind IN ('super', 'member')),"
        " v AS (SELECT * FROM tiers.member_values($1, $2, $3,"
        "  (SELECT array_agg(DISTINCT member_id) FROM present)))"
        " SELECT p.group_id, p.kind, count(*) AS members,"
        "  count(*) FILTER (WHERE m.tier = $4) AS super,"
        "  count(*) FILTER (WHERE m.tier IS DISTINCT FROM $4"
        "   AND v.total >= ($2 ->> 'high_value_line')::numeric) AS potential"
        " FROM present p"
        " LEFT JOIN tiers.members m ON m.tenant_id = $1 AND m.member_id = p.member_id"
        " LEFT JOIN v ON v.member_id = p.member_id"
        " GROUP BY p.group_id, p.kind ORDER BY p.group_id", tenant_id, model, last_day, top_tier)


# --- value model --------------------------------------------------------------------------

async def put_value_model(conn: asyncpg.Connection, tenant_id: str, model: Any) -> None:
    await conn.execute(
        "INSERT INTO tiers.value_models (tenant_id, model) VALUES ($1, $2)"
        " ON CONFLICT (tenant_id) DO UPDATE SET model = EXCLUDED.model, updated_at = now()",
        tenant_id, model)


async def value_model(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str) -> Any:
    return await conn.fetchval("SELECT model FROM tiers.value_models WHERE tenant_id = $1",
                               tenant_id)


async def local_day(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                    at: datetime) -> date:
    day: date = await conn.fetchval("SELECT tiers.local_day($1, $2)", tenant_id, at)
    return day


async def member_value(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, model: Any,
                       last_day: date, member_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM tiers.member_values($1, $2, $3, ARRAY[$4])",
        tenant_id, model, last_day, member_id)


async def population(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM tiers.members WHERE tenant_id = $1",
                                   tenant_id))


async def top_values(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, model: Any,
                     last_day: date, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM tiers.member_values($1, $2, $3, NULL) WHERE total > 0"
        " ORDER BY total DESC, member_id LIMIT $4", tenant_id, model, last_day, limit)
