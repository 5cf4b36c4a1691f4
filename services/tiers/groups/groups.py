"""Community groups: the groups, joins and leaves, period reports (with stage and activation
watch when the tenant has a value model) and suggested moves of members."""

from __future__ import annotations

import itertools
from datetime import date, datetime

import msgspec

from proto import tiers as t
from proto.events import GroupJoined
from services.runtime.db import Conn, Db, Pool
from services.runtime.errors import Conflict, NotFound, ValidationFailed
from services.runtime.outbox import emit
from services.runtime.pagination import decode_cursor, encode_cursor
from services.runtime.tenants import tenant_time_zone
from services.tiers import shared_store
from services.tiers.groups import rules, store
from services.tiers.groups.rules import GroupValues, Misplaced
from services.tiers.ladder import ladder
from services.tiers.times import as_of, local_day, tenant_day


class Groups:
    """The tenant's community groups and their health."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def put(self, tenant_id: str, group_id: str, body: t.GroupBody,
                  now: datetime) -> t.Group:
        """Creates or changes a group; its tier must be one of the policy's, its parent an
        existing group not at or below it; ``created_at`` counts only when it creates it."""
        rules.check_group_id(group_id)
        rules.check_parent(group_id, body.parent)
        async with self.pool.acquire() as conn, conn.transaction():
            policy = await shared_store.policy(conn, tenant_id)
            if policy is None:
                raise Conflict("set a tier policy before creating groups", code="no_policy")
            rules.check_tier(body.tier, ladder(policy))
            if body.parent is not None:
                await store.lock_tree(conn, tenant_id)
            stored = await store.created_at(conn, tenant_id, group_id)
            created_at = rules.check_created_at(body.created_at, stored, now)
            if body.parent is not None:
                if not await store.exists(conn, tenant_id, body.parent):
                    raise ValidationFailed(f"no group {body.parent!r} to be the parent",
                                           code="unknown_parent", field="parent")
                if stored is not None and await store.in_subtree(conn, tenant_id, group_id,
                                                                 body.parent):
                    raise rules.parent_cycle(group_id, body.parent)
            return await store.put_group(conn, tenant_id, group_id, body,
                                         rules.group_tags(body.tags), created_at)

    async def dissolve(self, tenant_id: str, group_id: str, at: datetime | None,
                       now: datetime) -> t.Group:
        """Dissolves the group at ``at`` (default now), ending every open stay then. A group
        already dissolved is answered as it is."""
        moment = rules.check_moment(at, now)
        async with self.pool.acquire() as conn, conn.transaction():
            locked = await store.lock_group(conn, tenant_id, group_id)
            if locked is None:
                raise _unknown_group(group_id)
            if locked.status == "active":
                rules.check_dissolution(moment, locked.created_at,
                                        await store.last_change(conn, tenant_id, group_id))
                await store.dissolve(conn, tenant_id, group_id, moment)
            return await _require_group(conn, tenant_id, group_id)

    async def get(self, tenant_id: str, group_id: str) -> t.Group:
        return await _require_group(self.pool, tenant_id, group_id)

    async def join(self, tenant_id: str, group_id: str, member_id: str, at: datetime | None,
                   now: datetime) -> t.Membership:
        """Joins at ``at`` (default now); a member already in the group stays as they are."""
        rules.check_member(member_id)
        moment = rules.check_moment(at, now)
        async with self.pool.acquire() as conn, conn.transaction():
            group, last = await _last_stay_locked(conn, tenant_id, group_id, member_id)
            if group.status == "dissolved":
                raise Conflict(f"group {group_id!r} is dissolved: it takes no joins",
                               code="group_dissolved")
            if last is not None and last.left_at is None:
                return t.Membership(group_id=group_id, member_id=member_id,
                                    joined_at=last.joined_at, left_at=None)
            if last is not None and last.left_at is not None:
                rules.check_rejoin(moment, last.joined_at, last.left_at)
            await store.join_group(conn, tenant_id, group_id, member_id, moment)
            await shared_store.ensure_member(conn, tenant_id, member_id)
            await emit(conn, service="tiers", tenant_id=tenant_id, events=[GroupJoined(
                member_id=member_id, group_id=group_id, group_tier=group.tier,
                joined_at=moment)])
        return t.Membership(group_id=group_id, member_id=member_id, joined_at=moment,
                            left_at=None)

    async def leave(self, tenant_id: str, group_id: str, member_id: str, at: datetime | None,
                    now: datetime) -> t.Membership:
        """Leaves at ``at`` (default now)."""
        moment = rules.check_moment(at, now)
        async with self.pool.acquire() as conn, conn.transaction():
            _, last = await _last_stay_locked(conn, tenant_id, group_id, member_id)
            if last is None or last.left_at is not None:
                raise NotFound(f"{member_id!r} is not in group {group_id!r}",
                               code="not_a_member")
            rules.check_leave(moment, last.joined_at)
            await store.leave_group(conn, tenant_id, group_id, member_id, moment)
        return t.Membership(group_id=group_id, member_id=member_id, joined_at=last.joined_at,
                            left_at=moment)

    async def report(self, tenant_id: str, group_id: str, period: t.Period,
                     at: datetime | None, now: datetime) -> t.GroupReport:
        """The group's figures for the local week (Monday first) or month holding ``at``."""
        moment = as_of(at, now)
        await _require_group(self.pool, tenant_id, group_id)
        zone = await tenant_time_zone(self.pool, tenant_id)
        start, end = rules.period_bounds(period, moment, zone)
        figures = await store.group_period(self.pool, tenant_id, group_id, start, end)
        model = await shared_store.value_model(self.pool, tenant_id)
        value_mean: float | None = None
        high_value: int | None = None
        stage: rules.Stage | None = None
        watch: bool | None = None
        if model is not None:
            flash = rules.flash_groups(await store.groups(self.pool, tenant_id))
            last = end - rules.JUST_BEFORE
            rows = await store.group_values(self.pool, tenant_id, model, last)
            values = _values(rows, flash)
            mine = next((r for r in rows if r.group_id == group_id), None)
            value_mean = round(float(mine.value_mean), 4) if mine else 0.0
            high_value = mine.high_value_members if mine else 0
            stage = values.stage(group_id)
            watch = True
            for moment_of_week in rules.watch_weeks(end, zone):
                weekly = values if moment_of_week == last else _values(
                    await store.group_values(self.pool, tenant_id, model, moment_of_week),
                    flash)
                if not weekly.in_bottom(group_id, rules.WATCH_SHARE):
                    watch = False
                    break
        population = figures.members_in_period
        return t.GroupReport(
            group_id=group_id, period=period, start=start, end=end, members=figures.members,
            members_in_period=population, joins=figures.joins, leaves=figures.leaves,
            net_growth=figures.joins - figures.leaves, active_members=figures.active_members,
            active_rate=rules.ratio(figures.active_members, population),
            purchasers=figures.purchasers,
            conversion_rate=rules.ratio(figures.purchasers, population),
            gmv_cents=figures.gmv_cents, value_mean=value_mean, high_value_members=high_value,
            stage=stage, activation_watch=watch)

    async def migrations(self, tenant_id: str, now: datetime, limit: int,
                         tolerance: float) -> t.Migrations:
        """Members whose tier differs from their group's, high-value members stuck in silver
        groups, each with livelier groups of their tier to invite them to; and how super-user
        and member groups compare with their target composition. A member who joined a group
        but has no tier yet (never reached the metrics) is at the lowest tier."""
        db = self.pool
        policy = await shared_store.policy(db, tenant_id)
        model = await shared_store.value_model(db, tenant_id)
        last_day = await tenant_day(db, tenant_id, now)
        all_groups = await store.groups(db, tenant_id)
        flash = rules.flash_groups(all_groups)
        values = (_values(await store.group_values(db, tenant_id, model, now), flash)
                  if model is not None else None)
        by_tier = rules.invitation_lists(all_groups, values.mean if values else {})

        names = ladder(policy) if policy else []
        lowest_tier = names[0] if names else None
        found = [_misplaced(r, "tier_mismatch") for r in await store.tier_mismatches(
            db, tenant_id, names, model, last_day, limit + 1)]
        if model is not None:
            silver = [g.group_id for g in all_groups
                      if g.kind != "flash" and values and values.stage(g.group_id) == "silver"]
            found += [_misplaced(r, "high_value_in_silver_group")
                      for r in await store.high_value_members_of(db, tenant_id, model,
                                                                 last_day, silver,
                                                                 lowest_tier, limit + 1)]
        moves, truncated = rules.first_moves(found, limit)
        current: dict[str, set[str]] = {}
        for stay in await store.current_stays(db, tenant_id, sorted({m.member_id
                                                                     for m in moves})):
            current.setdefault(stay.member_id, set()).add(stay.group_id)
        suggestions = [rules.suggestion(move, by_tier, current.get(move.member_id, set()),
                                        values) for move in moves]

        top_tier = names[-1] if names else None
        compositions = []
        for r in await store.compositions(db, tenant_id, model, last_day, top_tier,
                                          lowest_tier):
            shares, balanced = rules.composition(r.kind, r.members, r.super_users, r.potential,
                                                 tolerance)
            compositions.append(t.Composition(group_id=r.group_id, kind=r.kind,
                                              members=r.members, shares=shares,
                                              target=rules.TARGETS[r.kind], balanced=balanced))
        return t.Migrations(moves=suggestions, truncated=truncated, compositions=compositions)

    # --- lists and trends ----------------------------------------------------------------

    async def listing(self, tenant_id: str, where: store.ListFilter, cursor: str | None,
                      limit: int, now: datetime) -> t.GroupList:
        """Groups by id matching ``where``, each with its current members, 7-day active rate
        and stage (when the tenant has a value model)."""
        after = decode_cursor(cursor, 1)[0] if cursor else None
        if where.parent is not None:
            await _require_group(self.pool, tenant_id, where.parent)
        zone = await tenant_time_zone(self.pool, tenant_id)
        first_day, last_day = rules.active_days(local_day(now, zone))
        rows = await store.list_groups(self.pool, tenant_id, where, after, first_day,
                                       last_day, limit + 1)
        page = rows[:limit]
        stages = await self._stages(tenant_id, now)
        items = [msgspec.structs.replace(
            row, active_rate_7d=rules.ratio(row.active_members_7d, row.members),
            stage=None if stages is None or row.status == "dissolved"
            else stages.stage(row.group_id)) for row in page]
        return t.GroupList(items=items, next_cursor=encode_cursor(page[-1].group_id)
                           if len(rows) > limit else None)

    async def _stages(self, tenant_id: str, now: datetime) -> GroupValues | None:
        model = await shared_store.value_model(self.pool, tenant_id)
        if model is None:
            return None
        flash = rules.flash_groups(await store.groups(self.pool, tenant_id))
        return _values(await store.group_values(self.pool, tenant_id, model, now), flash)

    async def trends(self, tenant_id: str, group_id: str | None, owner: str | None,
                     tag: str | None, first: date, last: date,
                     by: t.TrendStep) -> t.GroupTrends:
        """Figures per local day or ISO week of ``group_id``'s subtree (or of the groups run
        by ``owner``, labelled ``tag``), each period against the one before."""
        periods = rules.trend_range(first, last, by)
        if group_id is not None:
            await _require_group(self.pool, tenant_id, group_id)
        group_ids = await store.scope(self.pool, tenant_id, owner, tag, group_id)
        wider = periods.with_previous()
        rows = await store.trends(self.pool, tenant_id, group_ids, wider.first_day,
                                  wider.count, by == "week")
        shown = []
        for previous, row in itertools.pairwise(rows):
            figures = rules.with_net_adds(_figures(row))
            shown.append(t.TrendPeriod(
                first_day=row.first_day, starts_at=row.starts_at, ends_at=row.ends_at,
                **figures, growth=t.TrendGrowth(**rules.growth_rates(
                    rules.with_net_adds(_figures(previous)), figures))))
        return t.GroupTrends(by=by, first_day=periods.first_day, last_day=periods.last_day,
                             group_count=len(group_ids), periods=shown)


def _figures(row: store.TrendRow) -> dict[str, int]:
    return {name: getattr(row, name) for name in rules.TREND_FIGURES if name != "net_adds"}


def _unknown_group(group_id: str) -> NotFound:
    return NotFound(f"no group {group_id!r}", code="unknown_group")


async def _require_group(db: Db, tenant_id: str, group_id: str) -> t.Group:
    group = await store.group(db, tenant_id, group_id)
    if group is None:
        raise _unknown_group(group_id)
    return group


async def _last_stay_locked(conn: Conn, tenant_id: str, group_id: str,
                            member_id: str) -> tuple[store.LockedGroup, store.Stay | None]:
    """The group and the member's last stay in it, with the group locked: joins, leaves and
    the dissolution of one group queue, so stays never overlap."""
    locked = await store.lock_group(conn, tenant_id, group_id)
    if locked is None:
        raise _unknown_group(group_id)
    return locked, await store.last_stay(conn, tenant_id, group_id, member_id)


def _values(rows: list[store.GroupValue], flash: set[str]) -> GroupValues:
    return GroupValues({r.group_id: float(r.value_mean) for r in rows}, flash)


def _misplaced(row: store.MisplacedRow, reason: rules.Reason) -> Misplaced:
    return Misplaced(member_id=row.member_id, group_id=row.group_id, group_tier=row.group_tier,
                     member_tier=row.member_tier,
                     value=None if row.total is None else float(row.total), reason=reason)
