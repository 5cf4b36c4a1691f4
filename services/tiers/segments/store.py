"""SQL of segments: the saved filters, their frozen member lists (computed by
``tiers.segment_compute`` over ``tiers.segment_select``, migration 0009) and what filters are
checked against (tag groups, groups)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime

import msgspec

from proto.tiers import Segment, SegmentFilter, ValueModel
from services.runtime.db import Conn, Db, Pool, as_struct_or_none, as_structs
from services.tiers.segments.rules import Query


class SegmentRow(msgspec.Struct, frozen=True):
    segment_id: str
    name: str
    filter: SegmentFilter
    member_count: int
    computed_at: datetime
    created_at: datetime
    updated_at: datetime

    def shown(self) -> Segment:
        return Segment(segment_id=self.segment_id, name=self.name, filter=self.filter,
                       count=self.member_count, computed_at=self.computed_at,
                       created_at=self.created_at, updated_at=self.updated_at)


class DueSegment(msgspec.Struct, frozen=True):
    tenant_id: str
    segment_id: str


COLUMNS = "segment_id, name, filter, member_count, computed_at, created_at, updated_at"


async def known_tag_groups(db: Db, tenant_id: str, groups: Sequence[str]) -> set[str]:
    rows = await db.fetch(
        "SELECT tag_group FROM tiers.tag_groups WHERE tenant_id = $1"
        " AND tag_group = any($2::text[])", tenant_id, list(groups))
    return {row["tag_group"] for row in rows}


async def known_groups(db: Db, tenant_id: str, group_ids: Sequence[str]) -> set[str]:
    rows = await db.fetch(
        "SELECT group_id FROM tiers.groups WHERE tenant_id = $1"
        " AND group_id = any($2::text[])", tenant_id, list(group_ids))
    return {row["group_id"] for row in rows}


async def population(db: Db, tenant_id: str) -> int:
    return int(await db.fetchval("SELECT count(*) FROM tiers.members WHERE tenant_id = $1",
                                 tenant_id))


async def put_segment(conn: Conn, tenant_id: str, segment_id: str, name: str,
                      segment_filter: SegmentFilter, now: datetime) -> None:
    """The definition, created or replaced (its list is computed next, in the same
    transaction)."""
    await conn.execute(
        "INSERT INTO tiers.segments AS s (tenant_id, segment_id, name, filter, member_count,"
        " computed_at, created_at, updated_at) VALUES ($1, $2, $3, $4, 0, $5, $5, $5)"
        " ON CONFLICT (tenant_id, segment_id) DO UPDATE"
        " SET name = EXCLUDED.name, filter = EXCLUDED.filter, updated_at = EXCLUDED.updated_at",
        tenant_id, segment_id, name, segment_filter, now)


async def lock_segment(conn: Conn, tenant_id: str, segment_id: str) -> SegmentRow | None:
    """The segment, locked until the transaction ends: computations of one segment queue."""
    return as_struct_or_none(SegmentRow, await conn.fetchrow(
        "SELECT " + COLUMNS + " FROM tiers.segments WHERE tenant_id = $1 AND segment_id = $2"
        " FOR UPDATE", tenant_id, segment_id))


async def count(db: Db, tenant_id: str, query: Query, model: ValueModel | None,
                last_day: date, koc_count: int) -> int:
    """How many members the filter selects, without freezing them."""
    return int(await db.fetchval(
        "SELECT count(*) FROM tiers.segment_select($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,"
        " $11, $12, $13, $14)",
        tenant_id, query.tiers, query.lowest, query.stages, query.all_tags, query.any_tags,
        query.no_tags, query.groups, model if query.needs_scores else None, last_day,
        query.min_value, query.max_value, query.koc, koc_count))


async def compute(conn: Conn, tenant_id: str, segment_id: str, now: datetime, query: Query,
                  model: ValueModel | None, last_day: date, koc_count: int) -> int:
    """Selects the filter's members and freezes them as the segment's list; the count."""
    return int(await conn.fetchval(
        "SELECT tiers.segment_compute($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,"
        " $13, $14, $15, $16)",
        tenant_id, segment_id, now, query.tiers, query.lowest, query.stages, query.all_tags,
        query.any_tags, query.no_tags, query.groups, model if query.needs_scores else None,
        last_day, query.min_value, query.max_value, query.koc, koc_count))


async def segment(db: Db, tenant_id: str, segment_id: str) -> SegmentRow | None:
    return as_struct_or_none(SegmentRow, await db.fetchrow(
        "SELECT " + COLUMNS + " FROM tiers.segments WHERE tenant_id = $1 AND segment_id = $2",
        tenant_id, segment_id))


async def segments(db: Db, tenant_id: str, after: str | None, limit: int) -> list[SegmentRow]:
    return as_structs(SegmentRow, await db.fetch(
        "SELECT " + COLUMNS + " FROM tiers.segments WHERE tenant_id = $1"
        " AND ($2::text IS NULL OR segment_id > $2) ORDER BY segment_id LIMIT $3",
        tenant_id, after, limit))


async def members(db: Db, tenant_id: str, segment_id: str, after: str | None,
                  limit: int) -> list[str]:
    rows = await db.fetch(
        "SELECT member_id FROM tiers.segment_members WHERE tenant_id = $1 AND segment_id = $2"
        " AND ($3::text IS NULL OR member_id > $3) ORDER BY member_id LIMIT $4",
        tenant_id, segment_id, after, limit)
    return [row["member_id"] for row in rows]


async def stream_members(conn: Conn, tenant_id: str, segment_id: str,
                         chunk: int) -> AsyncIterator[list[str]]:
    """The whole list in member id order, ``chunk`` rows at a time through a server-side
    cursor (inside the caller's transaction)."""
    cursor = await conn.cursor(
        "SELECT member_id FROM tiers.segment_members WHERE tenant_id = $1 AND segment_id = $2"
        " ORDER BY member_id", tenant_id, segment_id)
    while rows := await cursor.fetch(chunk):
        yield [row["member_id"] for row in rows]


async def delete_segment(conn: Conn, tenant_id: str, segment_id: str) -> bool:
    deleted = await conn.fetchval(
        "DELETE FROM tiers.segments WHERE tenant_id = $1 AND segment_id = $2 RETURNING true",
        tenant_id, segment_id)
    await conn.execute(
        "DELETE FROM tiers.segment_members WHERE tenant_id = $1 AND segment_id = $2",
        tenant_id, segment_id)
    return bool(deleted)


async def due_segments(pool: Pool, now: datetime, limit: int) -> list[DueSegment]:
    """Segments last computed before the tenant's current local day, or before the tenant's
    last lifecycle or rule-tag evaluation (whichever of the hourly jobs runs first, the
    segments follow the stages and tags of the day), oldest first."""
    return as_structs(DueSegment, await pool.fetch(
        "SELECT s.tenant_id, s.segment_id FROM tiers.segments s"
        " WHERE tiers.local_day(s.tenant_id, s.computed_at) < tiers.local_day(s.tenant_id, $1)"
        " OR EXISTS (SELECT 1 FROM tiers.lifecycle_evaluations e"
        "  WHERE e.tenant_id = s.tenant_id AND e.created_at > s.computed_at)"
        " OR EXISTS (SELECT 1 FROM tiers.tag_evaluations e"
        "  WHERE e.tenant_id = s.tenant_id AND e.evaluated_at > s.computed_at)"
        " ORDER BY s.computed_at, s.tenant_id, s.segment_id LIMIT $2", now, limit))
