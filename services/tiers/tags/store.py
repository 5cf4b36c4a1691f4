"""SQL of member tags: tag groups, members' tags, bulk tagging (set-based, over ``unnest``),
its audit, the tag rules and the evaluation of rule tags (``tiers.compute_rule_tags``)."""

from __future__ import annotations

from datetime import date, datetime

import msgspec

from proto.tiers import MemberTag, TagAction, TagRules
from services.runtime.db import Conn, Db, as_struct, as_struct_or_none, as_structs


class GroupRow(msgspec.Struct, frozen=True):
    tag_group: str
    description: str


class TagCountRow(msgspec.Struct, frozen=True):
    tag_group: str
    tag: str
    members: int


class LastEvaluation(msgspec.Struct, frozen=True):
    evaluated_at: datetime
    day: date


class Computed(msgspec.Struct, frozen=True):
    members: int
    rule_tags: int
    added: int
    removed: int


class RulesRow(msgspec.Struct, frozen=True):
    rules: TagRules
    updated_at: datetime


# --- tag groups ----------------------------------------------------------------------------

async def put_group(db: Db, tenant_id: str, group: str, description: str) -> GroupRow:
    row = await db.fetchrow(
        "INSERT INTO tiers.tag_groups (tenant_id, tag_group, description) VALUES ($1, $2, $3)"
        " ON CONFLICT (tenant_id, tag_group) DO UPDATE SET description = EXCLUDED.description"
        " RETURNING tag_group, description", tenant_id, group, description)
    assert row is not None
    return as_struct(GroupRow, row)


async def groups(db: Db, tenant_id: str) -> list[GroupRow]:
    return as_structs(GroupRow, await db.fetch(
        "SELECT tag_group, description FROM tiers.tag_groups WHERE tenant_id = $1"
        " ORDER BY tag_group", tenant_id))


async def group_exists(db: Db, tenant_id: str, group: str) -> bool:
    return bool(await db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM tiers.tag_groups WHERE tenant_id = $1"
        " AND tag_group = $2)", tenant_id, group))


async def grouped_tag_counts(db: Db, tenant_id: str) -> list[TagCountRow]:
    """Members per tag, for tags of the form ``group:value``."""
    return as_structs(TagCountRow, await db.fetch(
        "SELECT split_part(tag, ':', 1) AS tag_group, tag, count(*) AS members"
        " FROM tiers.member_tags WHERE tenant_id = $1 AND strpos(tag, ':') > 0"
        " GROUP BY tag ORDER BY tag", tenant_id))


# --- members' tags -------------------------------------------------------------------------

async def member_tags(db: Db, tenant_id: str, member_id: str) -> list[MemberTag]:
    return as_structs(MemberTag, await db.fetch(
        "SELECT tag, source, since FROM tiers.member_tags WHERE tenant_id = $1"
        " AND member_id = $2 ORDER BY tag", tenant_id, member_id))


async def member_tag(db: Db, tenant_id: str, member_id: str, tag: str) -> MemberTag | None:
    return as_struct_or_none(MemberTag, await db.fetchrow(
        "SELECT tag, source, since FROM tiers.member_tags WHERE tenant_id = $1"
        " AND member_id = $2 AND tag = $3", tenant_id, member_id, tag))


async def add_manual(conn: Conn, tenant_id: str, member_ids: list[str], tag: str,
                     at: datetime) -> int:
    """Tags the members (known to the service from now on); a member who has the tag keeps
    it as it is. How many were tagged now."""
    await conn.execute(
        "INSERT INTO tiers.members (tenant_id, member_id)"
        " SELECT $1, m FROM unnest($2::text[]) AS m ON CONFLICT DO NOTHING",
        tenant_id, member_ids)
    return int(await conn.fetchval(
        "WITH added AS (INSERT INTO tiers.member_tags (tenant_id, member_id, tag, source, since)"
        " SELECT $1, m, $3, 'manual', $4 FROM unnest($2::text[]) AS m"
        " ON CONFLICT (tenant_id, member_id, tag) DO NOTHING RETURNING 1)"
        " SELECT count(*) FROM added", tenant_id, member_ids, tag, at))


async def remove_manual(conn: Conn, tenant_id: str, member_ids: list[str], tag: str) -> int:
    return int(await conn.fetchval(
        "WITH gone AS (DELETE FROM tiers.member_tags WHERE tenant_id = $1"
        " AND member_id = any($2::text[]) AND tag = $3 AND source = 'manual' RETURNING 1)"
        " SELECT count(*) FROM gone", tenant_id, member_ids, tag))


async def audit_bulk(conn: Conn, tenant_id: str, bulk_id: str, tag: str, action: TagAction,
                     member_count: int, changed: int, key_id: str | None, role: str,
                     at: datetime) -> None:
    await conn.execute(
        "INSERT INTO tiers.tag_audit (tenant_id, bulk_id, tag, action, member_count, changed,"
        " key_id, role, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        tenant_id, bulk_id, tag, action, member_count, changed, key_id, role, at)


# --- rule tags -----------------------------------------------------------------------------

async def put_rules(db: Db, tenant_id: str, rules: TagRules) -> None:
    await db.execute(
        "INSERT INTO tiers.tag_rules (tenant_id, rules) VALUES ($1, $2)"
        " ON CONFLICT (tenant_id) DO UPDATE SET rules = EXCLUDED.rules, updated_at = now()",
        tenant_id, rules)


async def rules(db: Db, tenant_id: str) -> RulesRow | None:
    return as_struct_or_none(RulesRow, await db.fetchrow(
        "SELECT rules, updated_at FROM tiers.tag_rules WHERE tenant_id = $1", tenant_id))


async def lock_evaluation(conn: Conn, tenant_id: str) -> LastEvaluation | None:
    """Serialises evaluations of one tenant (until the transaction ends); the last one."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('tiers.tags:' || $1, 0))",
                       tenant_id)
    return as_struct_or_none(LastEvaluation, await conn.fetchrow(
        "SELECT evaluated_at, day FROM tiers.tag_evaluations WHERE tenant_id = $1", tenant_id))


async def compute_rule_tags(conn: Conn, tenant_id: str, at: datetime, rules: TagRules,
                            starts: list[int], labels: list[str]) -> Computed:
    row = await conn.fetchrow("SELECT * FROM tiers.compute_rule_tags($1, $2, $3, $4, $5)",
                              tenant_id, at, rules, starts, labels)
    assert row is not None
    return as_struct(Computed, row)


async def save_evaluation(conn: Conn, tenant_id: str, at: datetime, day: date,
                          computed: Computed) -> None:
    await conn.execute(
        "INSERT INTO tiers.tag_evaluations (tenant_id, evaluated_at, day, members, rule_tags,"
        " added, removed) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id) DO UPDATE"
        " SET evaluated_at = EXCLUDED.evaluated_at, day = EXCLUDED.day,"
        " members = EXCLUDED.members, rule_tags = EXCLUDED.rule_tags, added = EXCLUDED.added,"
        " removed = EXCLUDED.removed", tenant_id, at, day, computed.members,
        computed.rule_tags, computed.added, computed.removed)


async def tenants_due(db: Db, now: datetime) -> list[str]:
    """Tenants with members whose rule tags were last evaluated before their local today (or
    never), or whose rules changed since."""
    return [str(r["tenant_id"]) for r in await db.fetch(
        "SELECT t.tenant_id FROM fuli.tenants t"
        " LEFT JOIN tiers.tag_evaluations e ON e.tenant_id = t.tenant_id"
        " LEFT JOIN tiers.tag_rules r ON r.tenant_id = t.tenant_id"
        " WHERE EXISTS (SELECT 1 FROM tiers.members m WHERE m.tenant_id = t.tenant_id)"
        " AND (e.tenant_id IS NULL OR e.day < (($1::timestamptz) AT TIME ZONE t.time_zone)::date"
        " OR r.updated_at > e.evaluated_at)"
        " ORDER BY t.tenant_id", now)]
