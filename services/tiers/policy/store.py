"""SQL of tier policies: the policy, member metrics in daily buckets, members' tiers and their
history, and percentile stratification (the policy itself is read through the shared store)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import msgspec

from proto.tiers import CutLine, Evaluation, Policy, Reevaluation, TierChange
from services.runtime.db import Conn, Db, as_struct, as_structs, refusals


class MemberState(msgspec.Struct, frozen=True):
    tier: str | None
    since: datetime | None
    below_since: datetime | None


class MemberKey(msgspec.Struct, frozen=True):
    tenant_id: str
    member_id: str


class TierCount(msgspec.Struct, frozen=True):
    tier: str
    members: int


class LastEvaluation(msgspec.Struct, frozen=True):
    cuts: list[CutLine]
    at: datetime


def _cut_lines(raw: list[dict[str, Any]]) -> list[CutLine]:
    # Built field by field rather than converted: a whole-number cut line stays an integer in
    # the JSON answered, as it always has (conversion would make it a float).
    return [CutLine(tier=c["tier"], members=c["members"], from_value=c["from_value"])
            for c in raw]


async def put_policy(conn: Conn, tenant_id: str, policy: Policy) -> bool:
    """Stores the policy; True if it differs from the one stored (or is the first)."""
    return bool(await conn.fetchval(
        "INSERT INTO tiers.policies AS p (tenant_id, policy) VALUES ($1, $2)"
        " ON CONFLICT (tenant_id) DO UPDATE SET policy = EXCLUDED.policy, updated_at = now()"
        " WHERE p.policy IS DISTINCT FROM EXCLUDED.policy RETURNING true",
        tenant_id, policy))


async def request_reevaluation(conn: Conn, tenant_id: str, now: datetime) -> None:
    """Every member of the tenant is to be evaluated again, from the first: a run under way
    starts over."""
    await conn.execute(
        "INSERT INTO tiers.reevaluations AS r (tenant_id, state, requested_at)"
        " VALUES ($1, 'pending', $2) ON CONFLICT (tenant_id) DO UPDATE SET state = 'pending',"
        " after_member = '', members_done = 0, members_total = NULL, requested_at = $2,"
        " started_at = NULL, finished_at = NULL", tenant_id, now)


async def reevaluation(db: Db, tenant_id: str) -> Reevaluation | None:
    row = await db.fetchrow(
        "SELECT state, members_done, members_total, requested_at, started_at, finished_at"
        " FROM tiers.reevaluations WHERE tenant_id = $1", tenant_id)
    return None if row is None else as_struct(Reevaluation, row)


class ReevaluationJob(msgspec.Struct, frozen=True):
    tenant_id: str
    state: str
    after_member: str


async def take_reevaluation(conn: Conn, tenant_id: str | None) -> ReevaluationJob | None:
    """The oldest unfinished re-evaluation (of ``tenant_id``, or of any tenant) no other worker
    holds, locked until the caller's transaction ends."""
    row = await conn.fetchrow(
        "SELECT tenant_id, state, after_member FROM tiers.reevaluations WHERE state <> 'done'"
        " AND ($1::text IS NULL OR tenant_id = $1)"
        " ORDER BY requested_at LIMIT 1 FOR UPDATE SKIP LOCKED", tenant_id)
    return None if row is None else as_struct(ReevaluationJob, row)


async def start_reevaluation(conn: Conn, tenant_id: str, now: datetime) -> None:
    await conn.execute(
        "UPDATE tiers.reevaluations SET state = 'running', started_at = $2,"
        " members_total = (SELECT count(*) FROM tiers.members WHERE tenant_id = $1)"
        " WHERE tenant_id = $1", tenant_id, now)


async def members_after(conn: Conn, tenant_id: str, after: str, limit: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT member_id FROM tiers.members WHERE tenant_id = $1 AND member_id > $2"
        " ORDER BY member_id LIMIT $3", tenant_id, after, limit)
    return [str(row["member_id"]) for row in rows]


async def advance_reevaluation(conn: Conn, tenant_id: str, last_member: str, evaluated: int,
                               finished_at: datetime | None) -> None:
    """Moves the cursor past ``last_member`` and counts ``evaluated`` members; done when
    ``finished_at`` is given. Members who arrived since the start count too."""
    await conn.execute(
        "UPDATE tiers.reevaluations SET after_member = $2, members_done = members_done + $3,"
        " members_total = greatest(members_total, members_done + $3),"
        " state = CASE WHEN $4::timestamptz IS NULL THEN state ELSE 'done' END,"
        " finished_at = $4 WHERE tenant_id = $1", tenant_id, last_member, evaluated,
        finished_at)


class DayChange(NamedTuple):
    tenant_id: str
    member_id: str
    at: datetime
    spend_cents: int
    points_earned: int


async def add_days(conn: Conn, changes: list[DayChange]) -> None:
    """Adds each change to the bucket of its tenant's local day holding ``at``, the changes of
    one bucket summed first (a statement may change a row once)."""
    if not changes:
        return
    await conn.execute(
        "INSERT INTO tiers.member_days AS d (tenant_id, member_id, day, spend_cents,"
        " points_earned) SELECT t.tenant_id, t.member_id, tiers.local_day(t.tenant_id, t.at),"
        " sum(t.spend_cents), sum(t.points_earned)"
        " FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[])"
        " AS t(tenant_id, member_id, at, spend_cents, points_earned) GROUP BY 1, 2, 3"
        " ORDER BY 1, 2, 3 ON CONFLICT (tenant_id, member_id, day)"
        " DO UPDATE SET spend_cents = d.spend_cents + EXCLUDED.spend_cents,"
        " points_earned = d.points_earned + EXCLUDED.points_earned",
        *map(list, zip(*changes, strict=True)))


async def add_available(conn: Conn, tenant_ids: list[str], member_ids: list[str],
                        deltas: list[int]) -> None:
    """Adds each delta to its member's available points, a member's deltas summed first."""
    if not deltas:
        return
    await conn.execute(
        "INSERT INTO tiers.members AS m (tenant_id, member_id, points_available)"
        " SELECT t.tenant_id, t.member_id, sum(t.delta)"
        " FROM unnest($1::text[], $2::text[], $3::bigint[]) AS t(tenant_id, member_id, delta)"
        " GROUP BY 1, 2 ORDER BY 1, 2 ON CONFLICT (tenant_id, member_id)"
        " DO UPDATE SET points_available = m.points_available + EXCLUDED.points_available",
        tenant_ids, member_ids, deltas)


async def locked_member(conn: Conn, tenant_id: str, member_id: str) -> MemberState:
    """The member's tier state, locked for the evaluation: one statement makes the row if
    missing, or locks it by a no-op update, and reads it."""
    row = await conn.fetchrow(
        "INSERT INTO tiers.members AS m (tenant_id, member_id) VALUES ($1, $2)"
        " ON CONFLICT (tenant_id, member_id) DO UPDATE SET tier = m.tier"
        " RETURNING tier, since, below_since", tenant_id, member_id)
    assert row is not None
    return as_struct(MemberState, row)


async def member(db: Db, tenant_id: str, member_id: str) -> MemberState | None:
    row = await db.fetchrow(
        "SELECT tier, since, below_since FROM tiers.members"
        " WHERE tenant_id = $1 AND member_id = $2", tenant_id, member_id)
    return None if row is None else as_struct(MemberState, row)


async def metrics(db: Db, tenant_id: str, member_id: str, window_days: int | None,
                  now: datetime) -> dict[str, int]:
    value = await db.fetchval("SELECT tiers.metrics($1, $2, $3, $4)",
                              tenant_id, member_id, window_days, now)
    return {k: int(v) for k, v in value.items()}


async def save_member(conn: Conn, tenant_id: str, member_id: str, tier: str | None,
                      since: datetime | None, below_since: datetime | None,
                      metrics: dict[str, int]) -> None:
    await conn.execute(
        "UPDATE tiers.members SET tier = $3, since = $4, below_since = $5, metrics = $6,"
        " updated_at = now() WHERE tenant_id = $1 AND member_id = $2",
        tenant_id, member_id, tier, since, below_since, metrics)


async def add_history(conn: Conn, tenant_id: str, member_id: str, from_tier: str | None,
                      to_tier: str, metrics: dict[str, int], at: datetime) -> None:
    await conn.execute(
        "INSERT INTO tiers.history (tenant_id, member_id, from_tier, to_tier, metrics, at)"
        " VALUES ($1, $2, $3, $4, $5, $6)", tenant_id, member_id, from_tier, to_tier, metrics,
        at)


async def history(db: Db, tenant_id: str, member_id: str) -> list[TierChange]:
    return as_structs(TierChange, await db.fetch(
        "SELECT from_tier, to_tier, metrics, at FROM tiers.history"
        " WHERE tenant_id = $1 AND member_id = $2 ORDER BY change_id DESC", tenant_id,
        member_id))


async def window_candidates(db: Db, after: MemberKey | None, now: datetime,
                            lookback_days: int, limit: int) -> list[MemberKey]:
    """Members of windowed threshold policies whose tier may have to move without a new
    event: a grace period is running, or some of their days left the window within the last
    ``lookback_days``. Keyset-paged by (tenant, member) after ``after``."""
    start = after or MemberKey("", "")
    return as_structs(MemberKey, await db.fetch(
        "SELECT m.tenant_id, m.member_id FROM tiers.members m JOIN tiers.policies p"
        " USING (tenant_id) WHERE p.policy ->> 'mode' = 'threshold' AND p.policy ? 'window_days'"
        " AND (m.tenant_id, m.member_id) > ($1, $2)"
        " AND (m.below_since IS NOT NULL OR EXISTS (SELECT 1 FROM tiers.member_days d"
        "  WHERE d.tenant_id = m.tenant_id AND d.member_id = m.member_id"
        "  AND d.day <= tiers.local_day(m.tenant_id, $3) - (p.policy ->> 'window_days')::int"
        "  AND d.day > tiers.local_day(m.tenant_id, $3) - (p.policy ->> 'window_days')::int"
        "   - $4::int))"
        " ORDER BY m.tenant_id, m.member_id LIMIT $5",
        start.tenant_id, start.member_id, now, lookback_days, limit))


async def stratify(conn: Conn, tenant_id: str, now: datetime) -> Evaluation:
    with refusals():
        row = await conn.fetchrow("SELECT members, changed, cuts FROM tiers.stratify($1, $2)",
                                  tenant_id, now)
    assert row is not None
    return Evaluation(members=row["members"], changed=row["changed"],
                      cuts=_cut_lines(row["cuts"]))


async def tier_counts(db: Db, tenant_id: str, lowest: str | None) -> list[TierCount]:
    """Members per tier; members not yet evaluated count at ``lowest`` (left out if None)."""
    return as_structs(TierCount, await db.fetch(
        "SELECT coalesce(tier, $2) AS tier, count(*) AS members FROM tiers.members"
        " WHERE tenant_id = $1 AND coalesce(tier, $2) IS NOT NULL"
        " GROUP BY coalesce(tier, $2)", tenant_id, lowest))


async def last_evaluation(db: Db, tenant_id: str) -> LastEvaluation | None:
    row = await db.fetchrow(
        "SELECT cuts, at FROM tiers.evaluations WHERE tenant_id = $1"
        " ORDER BY evaluation_id DESC LIMIT 1", tenant_id)
    return None if row is None else LastEvaluation(cuts=_cut_lines(row["cuts"]), at=row["at"])


async def percentile_tenants(db: Db) -> list[str]:
    rows = await db.fetch(
        "SELECT tenant_id FROM tiers.policies WHERE policy ->> 'mode' = 'percentile'"
        " ORDER BY tenant_id")
    return [r["tenant_id"] for r in rows]
