"""The SQL of tasks: definitions and their audit, members' progress per period, streak days,
completions, claims and payments, and operators' figures."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import msgspec

from proto.tasks import ClaimMode, Reward, TaskIn, TaskKind
from services.runtime.db import Conn, Db, as_struct, as_struct_or_none, as_structs


class TaskRow(msgspec.Struct, frozen=True):
    task_id: str
    name: str
    description: str
    kind: TaskKind
    action: str
    target: int
    min_amount_cents: int | None
    attributes: dict[str, Any] | None
    streak_days: int | None
    starts_at: datetime | None
    ends_at: datetime | None
    tiers: list[str] | None
    after_task: str | None
    reward: Reward
    claim: ClaimMode
    enabled: bool
    updated_at: datetime


class ProgressRow(msgspec.Struct, frozen=True):
    task_id: str
    member_id: str
    period: str
    progress: int
    last_day: date | None
    completed_at: datetime | None
    reward: Reward | None
    manual: bool | None
    claim_id: str | None
    claimed_at: datetime | None
    rewarded_at: datetime | None


class ProgressKey(msgspec.Struct, frozen=True):
    tenant_id: str
    task_id: str
    member_id: str
    period: str


class Figures(msgspec.Struct, frozen=True):
    started: int
    completed: int
    claimed: int
    rewarded: int
    points: int
    tickets: int
    perks: int


TASK_COLUMNS = ("task_id, name, description, kind, action, target, min_amount_cents, attributes,"
                " streak_days, starts_at, ends_at, tiers, after_task, reward, claim, enabled,"
                " updated_at")
PROGRESS_COLUMNS = ("task_id, member_id, period, progress, last_day, completed_at, reward,"
                    " manual, claim_id, claimed_at, rewarded_at")


# --- definitions ---------------------------------------------------------------------------

async def lock_definitions(conn: Conn, tenant_id: str) -> None:
    """Serialises changes of the tenant's tasks, so two changes cannot make a chain loop."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('rewards.tasks'), hashtext($1))",
                       tenant_id)


async def put_task(conn: Conn, tenant_id: str, task_id: str, body: TaskIn,
                   key_id: str | None) -> TaskRow:
    condition = body.condition
    # Stored as the Reward it is shown as: every field present, null when not given.
    reward = {"points": body.reward.points, "perk": body.reward.perk,
              "tickets": msgspec.to_builtins(body.reward.tickets)}
    row = await conn.fetchrow(
        "INSERT INTO rewards.tasks (tenant_id, task_id, name, description, kind, action, target,"
        " min_amount_cents, attributes, streak_days, starts_at, ends_at, tiers, after_task,"
        " reward, claim, enabled)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
        " ON CONFLICT (tenant_id, task_id) DO UPDATE SET name = EXCLUDED.name,"
        " description = EXCLUDED.description, kind = EXCLUDED.kind, action = EXCLUDED.action,"
        " target = EXCLUDED.target, min_amount_cents = EXCLUDED.min_amount_cents,"
        " attributes = EXCLUDED.attributes, streak_days = EXCLUDED.streak_days,"
        " starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at, tiers = EXCLUDED.tiers,"
        " after_task = EXCLUDED.after_task, reward = EXCLUDED.reward, claim = EXCLUDED.claim,"
        " enabled = EXCLUDED.enabled, updated_at = now()"
        " RETURNING " + TASK_COLUMNS,
        tenant_id, task_id, body.name, body.description, body.kind, condition.action,
        body.streak_days if body.kind == "streak" else condition.count,
        condition.min_amount_cents, condition.attributes, body.streak_days, body.starts_at,
        body.ends_at,
        body.tiers, body.after, reward, body.claim, body.enabled)
    assert row is not None
    await conn.execute(
        "INSERT INTO rewards.task_audit (tenant_id, task_id, key_id, definition)"
        " VALUES ($1, $2, $3, $4)", tenant_id, task_id, key_id, msgspec.to_builtins(body))
    return as_struct(TaskRow, row)


async def task(db: Db, tenant_id: str, task_id: str) -> TaskRow | None:
    return as_struct_or_none(TaskRow, await db.fetchrow(
        "SELECT " + TASK_COLUMNS + " FROM rewards.tasks WHERE tenant_id = $1 AND task_id = $2",
        tenant_id, task_id))


async def tasks(db: Db, tenant_id: str) -> list[TaskRow]:
    return as_structs(TaskRow, await db.fetch(
        "SELECT " + TASK_COLUMNS + " FROM rewards.tasks WHERE tenant_id = $1 ORDER BY task_id",
        tenant_id))


async def counting_tasks(db: Db, tenant_id: str) -> list[TaskRow]:
    """The tasks events may count for: the enabled ones."""
    return as_structs(TaskRow, await db.fetch(
        "SELECT " + TASK_COLUMNS + " FROM rewards.tasks WHERE tenant_id = $1 AND enabled"
        " ORDER BY task_id", tenant_id))


async def followers(conn: Conn, tenant_id: str, task_id: str) -> list[TaskRow]:
    """The enabled tasks that come after ``task_id``."""
    return as_structs(TaskRow, await conn.fetch(
        "SELECT " + TASK_COLUMNS + " FROM rewards.tasks WHERE tenant_id = $1"
        " AND after_task = $2 AND enabled ORDER BY task_id", tenant_id, task_id))


async def afters(db: Db, tenant_id: str) -> dict[str, str | None]:
    """Each task of the tenant and the task it comes after."""
    rows = await db.fetch("SELECT task_id, after_task FROM rewards.tasks WHERE tenant_id = $1",
                          tenant_id)
    return {str(row["task_id"]): row["after_task"] for row in rows}


# --- progress and completion ---------------------------------------------------------------

async def count_event(conn: Conn, tenant_id: str, task_id: str, member_id: str, period: str,
                      target: int) -> int | None:
    """One more event in the period, never past ``target``: the progress after it, or None if
    the period was completed already."""
    value = await conn.fetchval(
        "INSERT INTO rewards.task_progress AS p (tenant_id, task_id, member_id, period,"
        " progress) VALUES ($1, $2, $3, $4, 1)"
        " ON CONFLICT (tenant_id, task_id, member_id, period) DO UPDATE"
        " SET progress = least(p.progress + 1, $5), updated_at = now()"
        " WHERE p.completed_at IS NULL RETURNING progress",
        tenant_id, task_id, member_id, period, target)
    return None if value is None else int(value)


async def complete_reached(conn: Conn, tenant_id: str, task_id: str, member_id: str,
                           target: int, reward: Reward, manual: bool, now: datetime,
                           period: str | None = None) -> list[str]:
    """Completes the member's periods of the task (or just ``period``) whose progress reached
    ``target``; returns them."""
    rows = await conn.fetch(
        "UPDATE rewards.task_progress SET completed_at = $5, reward = $6, manual = $7,"
        " updated_at = now() WHERE tenant_id = $1 AND task_id = $2 AND member_id = $3"
        " AND ($8::text IS NULL OR period = $8) AND completed_at IS NULL AND progress >= $4"
        " RETURNING period", tenant_id, task_id, member_id, target, now,
        msgspec.to_builtins(reward), manual, period)
    return sorted(str(row["period"]) for row in rows)


async def ever_completed(conn: Conn, tenant_id: str, task_id: str, member_id: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM rewards.task_progress WHERE tenant_id = $1"
        " AND task_id = $2 AND member_id = $3 AND completed_at IS NOT NULL)",
        tenant_id, task_id, member_id))


async def add_streak_day(conn: Conn, tenant_id: str, task_id: str, member_id: str,
                         day: date) -> bool:
    """False if the day was there already."""
    return bool(await conn.fetchval(
        "INSERT INTO rewards.task_streak_days (tenant_id, task_id, member_id, day)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true",
        tenant_id, task_id, member_id, day))


async def last_run_end(conn: Conn, tenant_id: str, task_id: str, member_id: str) -> date | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT max(last_day) FROM rewards.task_progress WHERE tenant_id = $1 AND task_id = $2"
        " AND member_id = $3 AND completed_at IS NOT NULL", tenant_id, task_id, member_id)


async def streak_days(conn: Conn, tenant_id: str, task_id: str, member_id: str,
                      after: date | None) -> list[date]:
    rows = await conn.fetch(
        "SELECT day FROM rewards.task_streak_days WHERE tenant_id = $1 AND task_id = $2"
        " AND member_id = $3 AND ($4::date IS NULL OR day > $4) ORDER BY day",
        tenant_id, task_id, member_id, after)
    return [row["day"] for row in rows]


async def complete_run(conn: Conn, tenant_id: str, task_id: str, member_id: str, period: str,
                       length: int, last_day: date, reward: Reward, manual: bool,
                       now: datetime) -> bool:
    """A completed streak run; False if it was stored already."""
    return bool(await conn.fetchval(
        "INSERT INTO rewards.task_progress (tenant_id, task_id, member_id, period, progress,"
        " last_day, completed_at, reward, manual) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT DO NOTHING RETURNING true", tenant_id, task_id, member_id, period,
        length, last_day, now, msgspec.to_builtins(reward), manual))


# --- claims and payments -------------------------------------------------------------------

async def unpaid(db: Db, now: datetime, limit: int) -> list[ProgressKey]:
    """Completions due for payment (automatic, or claimed) not paid yet and not waiting after
    a failed attempt, in the order they fell due."""
    return as_structs(ProgressKey, await db.fetch(
        "SELECT tenant_id, task_id, member_id, period FROM rewards.task_progress"
        " WHERE completed_at IS NOT NULL AND rewarded_at IS NULL"
        " AND (NOT manual OR claimed_at IS NOT NULL)"
        " AND coalesce(pay_after, completed_at) <= $1"
        " ORDER BY coalesce(pay_after, completed_at) LIMIT $2", now, limit))


async def payment_failed(db: Db, key: ProgressKey, now: datetime, first_wait_s: float,
                         max_wait_s: float) -> int:
    """Counts a failed payment attempt and puts the next one off: ``first_wait_s`` after the
    first failure, doubling with each, at most ``max_wait_s``. Returns the attempts so far."""
    return int(await db.fetchval(
        "UPDATE rewards.task_progress SET pay_attempts = pay_attempts + 1,"
        " pay_after = $5::timestamptz"
        "  + least(make_interval(secs => $6 * power(2, least(pay_attempts, 30))),"
        "          make_interval(secs => $7))"
        " WHERE tenant_id = $1 AND task_id = $2 AND member_id = $3 AND period = $4"
        " AND rewarded_at IS NULL RETURNING pay_attempts",
        key.tenant_id, key.task_id, key.member_id, key.period, now, first_wait_s,
        max_wait_s) or 0)


async def pay_unclaimed_automatically(conn: Conn, tenant_id: str, task_id: str) -> None:
    """A task turned automatic: its completions still waiting for a claim are paid as
    automatic ones."""
    await conn.execute(
        "UPDATE rewards.task_progress SET manual = false, updated_at = now()"
        " WHERE tenant_id = $1 AND task_id = $2 AND completed_at IS NOT NULL AND manual"
        " AND claimed_at IS NULL", tenant_id, task_id)


async def has_progress(conn: Conn, tenant_id: str, task_id: str) -> bool:
    """Whether any member has progress (or a streak day) in the task."""
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM rewards.task_progress WHERE tenant_id = $1"
        " AND task_id = $2) OR EXISTS (SELECT 1 FROM rewards.task_streak_days"
        " WHERE tenant_id = $1 AND task_id = $2)", tenant_id, task_id))


UNPAID = ("SELECT " + PROGRESS_COLUMNS + " FROM rewards.task_progress WHERE tenant_id = $1"
          " AND task_id = $2 AND member_id = $3 AND period = $4 AND completed_at IS NOT NULL"
          " AND rewarded_at IS NULL AND (NOT manual OR claimed_at IS NOT NULL)")


async def lock_unpaid(conn: Conn, key: ProgressKey, *, wait: bool) -> ProgressRow | None:
    """The completion, locked, if it is due for payment. Without ``wait`` a row locked by
    anyone else is passed over (None); with it, the lock is waited for and the row read as its
    holder left it."""
    return as_struct_or_none(ProgressRow, await conn.fetchrow(
        UNPAID + (" FOR UPDATE" if wait else " FOR UPDATE SKIP LOCKED"),
        key.tenant_id, key.task_id, key.member_id, key.period))


async def claimable(conn: Conn, tenant_id: str, task_id: str, member_id: str,
                    period: str | None) -> ProgressRow | None:
    """The member's completed, unclaimed manual completion of the task in ``period`` (default:
    the oldest), locked."""
    return as_struct_or_none(ProgressRow, await conn.fetchrow(
        "SELECT " + PROGRESS_COLUMNS + " FROM rewards.task_progress WHERE tenant_id = $1"
        " AND task_id = $2 AND member_id = $3 AND ($4::text IS NULL OR period = $4)"
        " AND completed_at IS NOT NULL AND manual AND claimed_at IS NULL"
        " ORDER BY completed_at, period LIMIT 1 FOR UPDATE",
        tenant_id, task_id, member_id, period))


async def mark_claimed(conn: Conn, tenant_id: str, row: ProgressRow, claim_id: str,
                       now: datetime) -> None:
    await conn.execute(
        "UPDATE rewards.task_progress SET claim_id = $5, claimed_at = $6, updated_at = now()"
        " WHERE tenant_id = $1 AND task_id = $2 AND member_id = $3 AND period = $4",
        tenant_id, row.task_id, row.member_id, row.period, claim_id, now)


async def mark_rewarded(conn: Conn, tenant_id: str, row: ProgressRow, now: datetime) -> None:
    await conn.execute(
        "UPDATE rewards.task_progress SET rewarded_at = $5, updated_at = now()"
        " WHERE tenant_id = $1 AND task_id = $2 AND member_id = $3 AND period = $4",
        tenant_id, row.task_id, row.member_id, row.period, now)


# --- members' view and figures -------------------------------------------------------------

async def member_progress(db: Db, tenant_id: str, member_id: str) -> list[ProgressRow]:
    return as_structs(ProgressRow, await db.fetch(
        "SELECT " + PROGRESS_COLUMNS + " FROM rewards.task_progress WHERE tenant_id = $1"
        " AND member_id = $2", tenant_id, member_id))


async def member_streak_days(db: Db, tenant_id: str, member_id: str,
                             since: date) -> dict[str, list[date]]:
    rows = await db.fetch(
        "SELECT task_id, day FROM rewards.task_streak_days WHERE tenant_id = $1"
        " AND member_id = $2 AND day >= $3 ORDER BY task_id, day", tenant_id, member_id, since)
    days: dict[str, list[date]] = {}
    for row in rows:
        days.setdefault(str(row["task_id"]), []).append(row["day"])
    return days


async def figures(db: Db, tenant_id: str, task_id: str, period: str | None) -> Figures:
    row = await db.fetchrow(
        "SELECT count(DISTINCT member_id) AS started,"
        " count(*) FILTER (WHERE completed_at IS NOT NULL) AS completed,"
        " count(*) FILTER (WHERE claimed_at IS NOT NULL) AS claimed,"
        " count(*) FILTER (WHERE rewarded_at IS NOT NULL) AS rewarded,"
        " coalesce(sum((reward->>'points')::bigint) FILTER (WHERE rewarded_at IS NOT NULL),"
        "  0)::bigint AS points,"
        " coalesce(sum((reward->'tickets'->>'count')::bigint)"
        "  FILTER (WHERE rewarded_at IS NOT NULL), 0)::bigint AS tickets,"
        " count(*) FILTER (WHERE rewarded_at IS NOT NULL AND reward->>'perk' IS NOT NULL)"
        "  AS perks"
        " FROM rewards.task_progress WHERE tenant_id = $1 AND task_id = $2"
        " AND ($3::text IS NULL OR period = $3)", tenant_id, task_id, period)
    assert row is not None
    return as_struct(Figures, row)


async def streak_started(db: Db, tenant_id: str, task_id: str, first: date | None,
                         days: int) -> int:
    """Members with an action day (from ``first`` for ``days`` days, if given)."""
    return int(await db.fetchval(
        "SELECT count(DISTINCT member_id) FROM rewards.task_streak_days WHERE tenant_id = $1"
        " AND task_id = $2 AND ($3::date IS NULL OR (day >= $3 AND day < $3 + $4::int))",
        tenant_id, task_id, first, days))


async def completed_members(db: Db, tenant_id: str, task_ids: Sequence[str]) -> dict[str, int]:
    """Per task, the members who completed it at least once."""
    rows = await db.fetch(
        "SELECT task_id, count(DISTINCT member_id) AS members FROM rewards.task_progress"
        " WHERE tenant_id = $1 AND task_id = any($2::text[]) AND completed_at IS NOT NULL"
        " GROUP BY task_id", tenant_id, list(task_ids))
    return {str(row["task_id"]): int(row["members"]) for row in rows}
