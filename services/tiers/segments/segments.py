"""Segments (audiences): saved filters over the known members, each with a frozen member list
computed on PUT, on refresh and daily, read in pages, exported as CSV, and read by the
rewards and points services when they issue to a segment."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import date, datetime

from proto import tiers as t
from services.runtime.db import Conn, Pool
from services.runtime.errors import Conflict, NotFound, ValidationFailed
from services.runtime.pagination import decode_cursor, encode_cursor
from services.tiers import shared_store
from services.tiers.koc import DEFAULT_SHARE, koc_count
from services.tiers.ladder import ladder
from services.tiers.segments import rules, store
from services.tiers.segments.store import SegmentRow
from services.tiers.times import tenant_day

log = logging.getLogger("fuli.tiers.segments")

EXPORT_CHUNK = 5000
REFRESH_BATCH = 100


def _stamp(at: datetime) -> int:
    """A computation's time in microseconds since the epoch (the cursor's version)."""
    return int(at.timestamp()) * 1_000_000 + at.microsecond


class Segments:
    """The tenant's segments and their frozen member lists."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def put(self, tenant_id: str, segment_id: str, body: t.SegmentBody,
                  now: datetime) -> t.Segment:
        """Creates or replaces the segment and computes its list at once."""
        async with self.pool.acquire() as conn, conn.transaction():
            policy_ladder, model = await self._check(conn, tenant_id, body.filter)
            await store.put_segment(conn, tenant_id, segment_id, body.name, body.filter, now)
            row = await store.lock_segment(conn, tenant_id, segment_id)
            assert row is not None
            return await self._compute(conn, tenant_id, row, policy_ladder, model, now)

    async def refresh(self, tenant_id: str, segment_id: str, now: datetime) -> t.Segment:
        """Computes the segment's list again under the same definition."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await store.lock_segment(conn, tenant_id, segment_id)
            if row is None:
                raise rules.unknown_segment(segment_id)
            policy_ladder, model = await self._check(conn, tenant_id, row.filter)
            return await self._compute(conn, tenant_id, row, policy_ladder, model, now)

    async def refresh_due(self, now: datetime) -> int:
        """Every segment not computed yet on its tenant's current local day, each in its own
        transaction; a segment whose definition no longer fits the tenant (a tier gone from
        the policy, a tag group removed) keeps its last list and is logged. Returns how many
        were computed."""
        done = 0
        failed: set[tuple[str, str]] = set()
        while due := [d for d in await store.due_segments(self.pool, now,
                                                          REFRESH_BATCH + len(failed))
                      if (d.tenant_id, d.segment_id) not in failed]:
            for segment in due:
                try:
                    await self.refresh(segment.tenant_id, segment.segment_id, now)
                    done += 1
                except (ValidationFailed, Conflict) as refused:
                    log.warning("segment %s of %s not refreshed: %s", segment.segment_id,
                                segment.tenant_id, refused.message)
                    failed.add((segment.tenant_id, segment.segment_id))
                except NotFound:  # deleted meanwhile
                    continue
        return done

    async def get(self, tenant_id: str, segment_id: str) -> t.Segment:
        return (await self._require(tenant_id, segment_id)).shown()

    async def listed(self, tenant_id: str, limit: int, cursor: str | None) -> t.SegmentList:
        after = decode_cursor(cursor, 1)[0] if cursor else None
        rows = await store.segments(self.pool, tenant_id, after, limit + 1)
        page = rows[:limit]
        return t.SegmentList(items=[row.shown() for row in page],
                             next_cursor=encode_cursor(page[-1].segment_id)
                             if len(rows) > limit else None)

    async def members(self, tenant_id: str, segment_id: str, limit: int,
                      cursor: str | None) -> t.SegmentMembers:
        """A page of the frozen list, in member id order; the segment's row and the page are
        read in one snapshot, and a cursor from before a recomputation is refused."""
        after: str | None = None
        version: int | None = None
        if cursor:
            stamp, after = decode_cursor(cursor, 2)
            if not stamp.isdigit() or len(stamp) > 18:
                raise ValidationFailed("invalid cursor", field="cursor")
            version = int(stamp)
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                                 readonly=True):
            row = await store.segment(conn, tenant_id, segment_id)
            if row is None:
                raise rules.unknown_segment(segment_id)
            if version is not None:
                rules.check_page(_stamp(row.computed_at), version)
            ids = await store.members(conn, tenant_id, segment_id, after, limit + 1)
        page = ids[:limit]
        return t.SegmentMembers(
            segment_id=segment_id, count=row.member_count, computed_at=row.computed_at,
            items=[t.SegmentMember(member_id=member_id) for member_id in page],
            next_cursor=encode_cursor(_stamp(row.computed_at), page[-1])
            if len(ids) > limit else None)

    async def export(self, tenant_id: str, segment_id: str) -> AsyncIterator[bytes]:
        """The frozen list as CSV lines (a header, then one member id per line), read in
        chunks through a cursor in one snapshot. The segment must exist (404 before the
        first byte)."""
        await self._require(tenant_id, segment_id)
        return self._csv(tenant_id, segment_id)

    async def _csv(self, tenant_id: str, segment_id: str) -> AsyncIterator[bytes]:
        yield b"member_id\n"
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                                 readonly=True):
            async for chunk in store.stream_members(conn, tenant_id, segment_id, EXPORT_CHUNK):
                # Member ids are [A-Za-z0-9._:-]: nothing to quote.
                yield ("\n".join(chunk) + "\n").encode()

    async def delete(self, tenant_id: str, segment_id: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if not await store.delete_segment(conn, tenant_id, segment_id):
                raise rules.unknown_segment(segment_id)

    async def _require(self, tenant_id: str, segment_id: str) -> SegmentRow:
        row = await store.segment(self.pool, tenant_id, segment_id)
        if row is None:
            raise rules.unknown_segment(segment_id)
        return row

    async def _check(self, conn: Conn, tenant_id: str, segment_filter: t.SegmentFilter
                     ) -> tuple[list[str] | None, t.ValueModel | None]:
        """Refuses a filter the tenant cannot answer; its ladder and value model."""
        policy = await shared_store.policy(conn, tenant_id)
        model = await shared_store.value_model(conn, tenant_id)
        policy_ladder = ladder(policy) if policy else None
        rules.check_filter(
            segment_filter, ladder=policy_ladder,
            known_tag_groups=await store.known_tag_groups(
                conn, tenant_id, sorted(rules.tag_groups_named(segment_filter))),
            known_groups=await store.known_groups(conn, tenant_id, segment_filter.groups or []),
            has_value_model=model is not None)
        return policy_ladder, model

    async def preview(self, tenant_id: str, segment_filter: t.SegmentFilter,
                      now: datetime) -> t.SegmentPreview:
        """How many members the filter selects now, nothing saved."""
        async with self.pool.acquire() as conn:
            policy_ladder, model = await self._check(conn, tenant_id, segment_filter)
            query = rules.query(segment_filter, policy_ladder)
            last_day, kocs = await self._as_of(conn, tenant_id, query, now)
            count = await store.count(conn, tenant_id, query, model, last_day, kocs)
        return t.SegmentPreview(count=count, computed_at=now)

    async def _as_of(self, conn: Conn, tenant_id: str, query: rules.Query,
                     now: datetime) -> tuple[date, int]:
        """The local day value scores end on, and how many members are KOCs."""
        last_day: date = await tenant_day(conn, tenant_id, now)
        kocs = koc_count(DEFAULT_SHARE, await store.population(conn, tenant_id)) \
            if query.koc is not None else 0
        return last_day, kocs

    async def _compute(self, conn: Conn, tenant_id: str, row: SegmentRow,
                       policy_ladder: list[str] | None, model: t.ValueModel | None,
                       now: datetime) -> t.Segment:
        query = rules.query(row.filter, policy_ladder)
        last_day, kocs = await self._as_of(conn, tenant_id, query, now)
        count = await store.compute(conn, tenant_id, row.segment_id, now, query, model,
                                    last_day, kocs)
        return t.Segment(segment_id=row.segment_id, name=row.name, filter=row.filter,
                         count=count, computed_at=now, created_at=row.created_at,
                         updated_at=row.updated_at)
