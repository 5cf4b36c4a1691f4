"""SQL of community groups: groups, stays of members in them, period figures, group values and
the members who should move (value scores come from ``tiers.member_values`` under the tenant's
value model, passed in)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import msgspec

from proto.tiers import Group, GroupBody, GroupKind, GroupListItem, GroupStatus, ValueModel
from services.runtime.db import Conn, Db, as_struct, as_struct_or_none, as_structs


class Stay(msgspec.Struct, frozen=True):
    joined_at: datetime
    left_at: datetime | None


class GroupRow(msgspec.Struct, frozen=True):
    group_id: str
    tier: str
    kind: GroupKind
    status: GroupStatus = "active"


class PeriodFigures(msgspec.Struct, frozen=True):
    members: int
    members_in_period: int
    joins: int
    leaves: int
    active_members: int
    purchasers: int
    gmv_cents: int


class GroupValue(msgspec.Struct, frozen=True):
    group_id: str
    members: int
    value_mean: Decimal
    high_value_members: int


class MisplacedRow(msgspec.Struct, frozen=True):
    member_id: str
    group_id: str
    group_tier: str
    member_tier: str | None
    total: Decimal | None


class CurrentStay(msgspec.Struct, frozen=True):
    member_id: str
    group_id: str


class CompositionRow(msgspec.Struct, frozen=True):
    group_id: str
    kind: GroupKind
    members: int
    super_users: int
    potential: int


CURRENT_MEMBERS = (
    "(SELECT count(*) FROM tiers.group_members gm WHERE gm.tenant_id = g.tenant_id"
    " AND gm.group_id = g.group_id AND gm.left_at IS NULL)")
GROUP_COLUMNS = (
    "g.group_id, g.name, g.tier, g.kind, g.created_at, g.updated_at, g.owner, g.tags,"
    " g.parent_id AS parent, g.status, g.dissolved_at, " + CURRENT_MEMBERS + " AS members")


async def put_group(conn: Conn, tenant_id: str, group_id: str, body: GroupBody,
                    tags: list[str], created_at: datetime | None) -> Group:
    """Creates the group (at ``created_at``, default now) or replaces its name, tier, kind,
    owner, labels and parent."""
    await conn.execute(
        "INSERT INTO tiers.groups (tenant_id, group_id, name, tier, kind, owner, tags,"
        " parent_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, now()))"
        " ON CONFLICT (tenant_id, group_id) DO UPDATE"
        " SET name = EXCLUDED.name, tier = EXCLUDED.tier, kind = EXCLUDED.kind,"
        " owner = EXCLUDED.owner, tags = EXCLUDED.tags, parent_id = EXCLUDED.parent_id,"
        " updated_at = now()", tenant_id, group_id, body.name, body.tier, body.kind,
        body.owner, tags, body.parent, created_at)
    group_now = await group(conn, tenant_id, group_id)
    assert group_now is not None
    return group_now


async def lock_tree(conn: Conn, tenant_id: str) -> None:
    """Serialises changes of the tenant's group tree, so two parents set at once cannot close
    a cycle neither saw."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                       "tiers.group_tree:" + tenant_id)


async def created_at(conn: Conn, tenant_id: str, group_id: str) -> datetime | None:
    """When the group was created (locking it), or None for no such group."""
    value = await conn.fetchval(
        "SELECT created_at FROM tiers.groups WHERE tenant_id = $1 AND group_id = $2"
        " FOR UPDATE", tenant_id, group_id)
    return value if isinstance(value, datetime) else None


async def exists(db: Db, tenant_id: str, group_id: str) -> bool:
    return bool(await db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM tiers.groups WHERE tenant_id = $1 AND group_id = $2)",
        tenant_id, group_id))


async def in_subtree(db: Db, tenant_id: str, root: str, group_id: str) -> bool:
    """Whether ``group_id`` is ``root`` or below it."""
    return bool(await db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM tiers.group_subtree($1, $2) WHERE group_id = $3)",
        tenant_id, root, group_id))


async def last_change(conn: Conn, tenant_id: str, group_id: str) -> datetime | None:
    """The latest join or leave recorded in the group."""
    value = await conn.fetchval(
        "SELECT max(coalesce(left_at, joined_at)) FROM tiers.group_members"
        " WHERE tenant_id = $1 AND group_id = $2", tenant_id, group_id)
    return value if isinstance(value, datetime) else None


async def dissolve(conn: Conn, tenant_id: str, group_id: str, at: datetime) -> None:
    """Ends every open stay at ``at`` and marks the group dissolved then."""
    await conn.execute(
        "UPDATE tiers.group_members SET left_at = $3"
        " WHERE tenant_id = $1 AND group_id = $2 AND left_at IS NULL", tenant_id, group_id, at)
    await conn.execute(
        "UPDATE tiers.groups SET status = 'dissolved', dissolved_at = $3, updated_at = now()"
        " WHERE tenant_id = $1 AND group_id = $2", tenant_id, group_id, at)


async def group(db: Db, tenant_id: str, group_id: str) -> Group | None:
    return as_struct_or_none(Group, await db.fetchrow(
        "SELECT " + GROUP_COLUMNS + " FROM tiers.groups g"
        " WHERE g.tenant_id = $1 AND g.group_id = $2", tenant_id, group_id))


class LockedGroup(msgspec.Struct, frozen=True):
    tier: str
    status: GroupStatus
    created_at: datetime


async def lock_group(conn: Conn, tenant_id: str, group_id: str) -> LockedGroup | None:
    """Serialises joins, leaves and the dissolution of one group, so stays never overlap; the
    group's tier, status and creation time, or None for no such group."""
    return as_struct_or_none(LockedGroup, await conn.fetchrow(
        "SELECT tier, status, created_at FROM tiers.groups WHERE tenant_id = $1"
        " AND group_id = $2 FOR UPDATE", tenant_id, group_id))


async def last_stay(conn: Conn, tenant_id: str, group_id: str, member_id: str) -> Stay | None:
    return as_struct_or_none(Stay, await conn.fetchrow(
        "SELECT joined_at, left_at FROM tiers.group_members"
        " WHERE tenant_id = $1 AND group_id = $2 AND member_id = $3"
        " ORDER BY joined_at DESC LIMIT 1", tenant_id, group_id, member_id))


async def join_group(conn: Conn, tenant_id: str, group_id: str, member_id: str,
                     at: datetime) -> None:
    await conn.execute(
        "INSERT INTO tiers.group_members (tenant_id, group_id, member_id, joined_at)"
        " VALUES ($1, $2, $3, $4)", tenant_id, group_id, member_id, at)


async def leave_group(conn: Conn, tenant_id: str, group_id: str, member_id: str,
                      at: datetime) -> None:
    await conn.execute(
        "UPDATE tiers.group_members SET left_at = $4"
        " WHERE tenant_id = $1 AND group_id = $2 AND member_id = $3 AND left_at IS NULL",
        tenant_id, group_id, member_id, at)


async def group_period(db: Db, tenant_id: str, group_id: str, start: datetime,
                       end: datetime) -> PeriodFigures:
    row = await db.fetchrow("SELECT * FROM tiers.group_period($1, $2, $3, $4)",
                            tenant_id, group_id, start, end)
    assert row is not None
    return as_struct(PeriodFigures, row)


async def group_values(db: Db, tenant_id: str, model: ValueModel,
                       at: datetime) -> list[GroupValue]:
    return as_structs(GroupValue, await db.fetch(
        "SELECT group_id, members, value_mean, high_value_members"
        " FROM tiers.group_values($1, $2, $3)", tenant_id, model, at))


async def tier_mismatches(db: Db, tenant_id: str, ladder: list[str], model: ValueModel | None,
                          last_day: date, limit: int) -> list[MisplacedRow]:
    """Members now in a group that does not fit their tier: in a fan group, any other tier; in
    a member group, a lower tier; in a super-user group, a lower tier unless the member is a
    potential super user (value at or above the high-value line). Flash groups mix anyone. A
    member without a tier yet (who never reached the metrics) is at the lowest tier."""
    return as_structs(MisplacedRow, await db.fetch(
        "WITH placed AS (SELECT gm.member_id, gm.group_id, g.kind, g.tier AS group_tier,"
        "  coalesce(m.tier, ($2::text[])[1]) AS member_tier"
        "  FROM tiers.group_members gm"
        "  JOIN tiers.groups g ON g.tenant_id = gm.tenant_id AND g.group_id = gm.group_id"
        "  LEFT JOIN tiers.members m ON m.tenant_id = gm.tenant_id"
        "   AND m.member_id = gm.member_id"
        "  WHERE gm.tenant_id = $1 AND gm.left_at IS NULL AND g.kind <> 'flash'),"
        " present AS (SELECT p.*, array_position($2::text[], p.group_tier) AS group_rank,"
        "  array_position($2::text[], p.member_tier) AS member_rank FROM placed p"
        "  WHERE p.member_tier IS NOT NULL AND p.member_tier <> p.group_tier),"
        " v AS (SELECT * FROM tiers.member_values($1, $3, $4, (SELECT array_agg(DISTINCT"
        "  member_id) FROM present WHERE kind = 'super')))"
        " SELECT p.member_id, p.group_id, p.group_tier, p.member_tier, v.total FROM present p"
        " LEFT JOIN v ON v.member_id = p.member_id"
        " WHERE p.kind = 'fan' OR p.group_rank IS NULL OR p.member_rank IS NULL"
        " OR (p.member_rank < p.group_rank AND (p.kind = 'member' OR coalesce("
        "  coalesce(v.total, 0) < ($3 ->> 'high_value_line')::numeric, true)))"
        " ORDER BY p.member_id, p.group_id LIMIT $5",
        tenant_id, ladder, model, last_day, limit))


async def high_value_members_of(db: Db, tenant_id: str, model: ValueModel, last_day: date,
                                group_ids: list[str], lowest_tier: str | None,
                                limit: int) -> list[MisplacedRow]:
    """Current members of the given groups whose value reaches the model's high-value line,
    at ``lowest_tier`` if they have no tier yet."""
    return as_structs(MisplacedRow, await db.fetch(
        "WITH present AS (SELECT gm.member_id, gm.group_id FROM tiers.group_members gm"
        "  WHERE gm.tenant_id = $1 AND gm.left_at IS NULL AND gm.group_id = any($4::text[]))"
        " SELECT p.member_id, p.group_id, g.tier AS group_tier,"
        "  coalesce(m.tier, $6) AS member_tier,"
        "  v.total FROM present p"
        " JOIN tiers.groups g ON g.tenant_id = $1 AND g.group_id = p.group_id"
        " LEFT JOIN tiers.members m ON m.tenant_id = $1 AND m.member_id = p.member_id"
        " JOIN tiers.member_values($1, $2, $3,"
        "  (SELECT array_agg(DISTINCT member_id) FROM present)) v ON v.member_id = p.member_id"
        " WHERE v.total >= ($2 ->> 'high_value_line')::numeric"
        " ORDER BY p.member_id, p.group_id LIMIT $5", tenant_id, model, last_day,
        group_ids, limit, lowest_tier))


async def current_stays(db: Db, tenant_id: str, member_ids: list[str]) -> list[CurrentStay]:
    return as_structs(CurrentStay, await db.fetch(
        "SELECT member_id, group_id FROM tiers.group_members"
        " WHERE tenant_id = $1 AND left_at IS NULL AND member_id = any($2::text[])",
        tenant_id, member_ids))


async def groups(db: Db, tenant_id: str) -> list[GroupRow]:
    return as_structs(GroupRow, await db.fetch(
        "SELECT group_id, tier, kind, status FROM tiers.groups WHERE tenant_id = $1"
        " ORDER BY group_id",
        tenant_id))


async def compositions(db: Db, tenant_id: str, model: ValueModel | None, last_day: date,
                       top_tier: str | None, lowest_tier: str | None) -> list[CompositionRow]:
    """Per super-user and member group now: members, super users (top tier) and potential
    super users (below the top tier, value at or above the high-value line); a member without
    a tier yet is at ``lowest_tier``."""
    return as_structs(CompositionRow, await db.fetch(
        "WITH present AS (SELECT gm.member_id, gm.group_id, g.kind FROM tiers.group_members gm"
        "  JOIN tiers.groups g ON g.tenant_id = gm.tenant_id AND g.group_id = gm.group_id"
        "  WHERE gm.tenant_id = $1 AND gm.left_at IS NULL AND g.kind IN ('super', 'member')),"
        " v AS (SELECT * FROM tiers.member_values($1, $2, $3,"
        "  (SELECT array_agg(DISTINCT member_id) FROM present)))"
        " SELECT p.group_id, p.kind, count(*) AS members,"
        "  count(*) FILTER (WHERE coalesce(m.tier, $5) = $4) AS super_users,"
        "  count(*) FILTER (WHERE coalesce(m.tier, $5) IS DISTINCT FROM $4"
        "   AND v.total >= ($2 ->> 'high_value_line')::numeric) AS potential"
        " FROM present p"
        " LEFT JOIN tiers.members m ON m.tenant_id = $1 AND m.member_id = p.member_id"
        " LEFT JOIN v ON v.member_id = p.member_id"
        " GROUP BY p.group_id, p.kind ORDER BY p.group_id", tenant_id, model, last_day,
        top_tier, lowest_tier))


# --- lists and trends -------------------------------------------------------------------------


class ListFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Filters of the group list; None matches any."""

    tag: str | None = None
    owner: str | None = None
    status: GroupStatus | None = None
    tier: str | None = None
    kind: GroupKind | None = None
    parent: str | None = None


async def list_groups(db: Db, tenant_id: str, where: ListFilter, after: str | None,
                      first_day: date, last_day: date, limit: int) -> list[GroupListItem]:
    """Groups by id after ``after``, with their current members and how many of those acted
    in the group on a local day from ``first_day`` to ``last_day``; ``stage`` and the active
    rate are left to the caller (0 and None here)."""
    return as_structs(GroupListItem, await db.fetch(
        "SELECT g.group_id, g.name, g.tier, g.kind, g.owner, g.tags, g.parent_id AS parent,"
        " g.status, g.created_at, g.dissolved_at, " + CURRENT_MEMBERS + " AS members,"
        " (SELECT count(*) FROM tiers.group_members gm WHERE gm.tenant_id = g.tenant_id"
        "   AND gm.group_id = g.group_id AND gm.left_at IS NULL AND EXISTS ("
        "    SELECT 1 FROM tiers.action_days d WHERE d.tenant_id = g.tenant_id"
        "    AND d.group_id = g.group_id AND d.member_id = gm.member_id"
        "    AND d.day BETWEEN $9 AND $10)) AS active_members_7d,"
        " 0.0::float8 AS active_rate_7d, NULL::text AS stage"
        " FROM tiers.groups g WHERE g.tenant_id = $1"
        " AND ($2::text IS NULL OR g.tags @> ARRAY[$2::text])"
        " AND ($3::text IS NULL OR g.owner = $3) AND ($4::text IS NULL OR g.status = $4)"
        " AND ($5::text IS NULL OR g.tier = $5) AND ($6::text IS NULL OR g.kind = $6)"
        " AND ($7::text IS NULL OR g.parent_id = $7) AND ($8::text IS NULL OR g.group_id > $8)"
        " ORDER BY g.group_id LIMIT $11",
        tenant_id, where.tag, where.owner, where.status, where.tier, where.kind, where.parent,
        after, first_day, last_day, limit))


async def scope(db: Db, tenant_id: str, owner: str | None, tag: str | None,
                root: str | None) -> list[str]:
    """The groups a trends request covers: run by ``owner``, labelled ``tag``, and ``root``
    with every group below it (each None for any)."""
    return [str(r["group_id"]) for r in await db.fetch(
        "SELECT g.group_id FROM tiers.groups g WHERE g.tenant_id = $1"
        " AND ($2::text IS NULL OR g.owner = $2)"
        " AND ($3::text IS NULL OR g.tags @> ARRAY[$3::text])"
        " AND ($4::text IS NULL OR g.group_id IN ("
        "  SELECT s.group_id FROM tiers.group_subtree($1, $4) s))"
        " ORDER BY g.group_id", tenant_id, owner, tag, root)]


class TrendRow(msgspec.Struct, frozen=True):
    period_index: int
    first_day: date
    starts_at: datetime
    ends_at: datetime
    groups: int
    new_groups: int
    dissolved: int
    members: int
    joins: int
    leaves: int
    speakers: int
    purchasers: int
    gmv_cents: int


async def trends(db: Db, tenant_id: str, group_ids: list[str], first_day: date, periods: int,
                 week: bool) -> list[TrendRow]:
    return as_structs(TrendRow, await db.fetch(
        "SELECT * FROM tiers.group_trends($1, $2, $3, $4, $5)",
        tenant_id, group_ids, first_day, periods, week))
