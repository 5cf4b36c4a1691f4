"""Community groups: membership changes, period reports and suggested moves."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from proto import tiers as t
from services.runtime.errors import Conflict, NotFound, ValidationFailed
from services.tiers import group_health, store
from services.tiers.evaluation import decode_policy

SUGGESTED_GROUPS = 3


async def require_group(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                        group_id: str) -> asyncpg.Record:
    row = await store.group(conn, tenant_id, group_id)
    if row is None:
        raise NotFound(f"no group {group_id!r}", code="unknown_group")
    return row


async def put_group(conn: asyncpg.Connection, tenant_id: str, group_id: str,
                    body: t.GroupBody) -> asyncpg.Record:
    policy = decode_policy(await store.policy(conn, tenant_id))
    if policy is None:
        raise Conflict("set a tier policy before creating groups", code="no_policy")
    names = [tier.name for tier in policy.tiers]
    if body.tier not in names:
        raise ValidationFailed(f"unknown tier {body.tier!r}; the policy has {names}",
                               field="tier")
    return await store.put_group(conn, tenant_id, group_id, body.name, body.tier, body.kind)


def membership(group_id: str, member_id: str, stay: asyncpg.Record) -> t.Membership:
    return t.Membership(group_id=group_id, member_id=member_id, joined_at=stay["joined_at"],
                        left_at=stay["left_at"])


async def join(conn: asyncpg.Connection, tenant_id: str, group_id: str, member_id: str,
               at: datetime) -> t.Membership:
    """Joins at ``at``; a member already in the group stays as they are."""
    if not await store.lock_group(conn, tenant_id, group_id):
        raise NotFound(f"no group {group_id!r}", code="unknown_group")
    last = await store.last_stay(conn, tenant_id, group_id, member_id)
    if last is not None and last["left_at"] is None:
        return membership(group_id, member_id, last)
    if last is not None and at < last["left_at"]:
        raise Conflict("the member left this group after that time; a join must come after "
                       "the last leave", code="overlapping_stay",
                       details={"left_at": last["left_at"].isoformat()})
    await store.join_group(conn, tenant_id, group_id, member_id, at)
    return t.Membership(group_id=group_id, member_id=member_id, joined_at=at, left_at=None)


async def leave(conn: asyncpg.Connection, tenant_id: str, group_id: str, member_id: str,
                at: datetime) -> t.Membership:
    if not await store.lock_group(conn, tenant_id, group_id):
        raise NotFound(f"no group {group_id!r}", code="unknown_group")
    last = await store.last_stay(conn, tenant_id, group_id, member_id)
    if last is None or last["left_at"] is not None:
        raise NotFound(f"{member_id!r} is not in group {group_id!r}", code="not_a_member")
    if at < last["joined_at"]:
        raise ValidationFailed("a leave cannot come before the join", field="at",
                               details={"joined_at": last["joined_at"].isoformat()})
    await store.leave_group(conn, tenant_id, group_id, member_id, at)
    return t.Membership(group_id=group_id, member_id=member_id, joined_at=last["joined_at"],
                        left_at=at)


class GroupValues:
    """Value mean per group with members at one time, and the tenant's community-group values
    the bottom lines are drawn from."""

    def __init__(self, rows: list[asyncpg.Record], flash: set[str]) -> None:
        self.rows = {r["group_id"]: r for r in rows}
        self.mean = {group: float(r["value_mean"]) for group, r in self.rows.items()}
        self.community = [v for group, v in self.mean.items() if group not in flash]

    def stage(self, group_id: str) -> str:
        return group_health.stage(self.mean.get(group_id), self.community)

    def in_bottom(self, group_id: str, share: float) -> bool:
        value = self.mean.get(group_id)
        return value is not None and group_health.in_bottom(value, self.community, share)


async def values_at(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, model: Any,
                    at: datetime, flash: set[str]) -> GroupValues:
    return GroupValues(await store.group_values(conn, tenant_id, model, at), flash)


async def flash_groups(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str) -> set[str]:
    return {g["group_id"] for g in await store.groups(conn, tenant_id) if g["kind"] == "flash"}


async def report(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, group_id: str,
                 period: str, at: datetime) -> t.GroupReport:
    await require_group(conn, tenant_id, group_id)
    zone = await store.tenant_time_zone(conn, tenant_id)
    start, end = group_health.period_bounds(period, at, zone)
    row = await store.group_period(conn, tenant_id, group_id, start, end)
    model = await store.value_model(conn, tenant_id)
    value_mean = high_value = stage = watch = None
    if model is not None:
        flash = await flash_groups(conn, tenant_id)
        last = end - group_health.JUST_BEFORE
        values = await values_at(conn, tenant_id, model, last, flash)
        mine = values.rows.get(group_id)
        value_mean = round(float(mine["value_mean"]), 4) if mine else 0.0
        high_value = int(mine["high_value_members"]) if mine else 0
        stage = values.stage(group_id)
        watch = True
        for moment in group_health.watch_weeks(end, zone):
            weekly = values if moment == last else await values_at(conn, tenant_id, model,
                                                                   moment, flash)
            if not weekly.in_bottom(group_id, group_health.WATCH_SHARE):
                watch = False
                break
    population = int(row["members_in_period"])
    return t.GroupReport(
        group_id=group_id, period=period, start=start, end=end,  # type: ignore[arg-type]
        members=row["members"], members_in_period=population, joins=row["joins"],
        leaves=row["leaves"], net_growth=row["joins"] - row["leaves"],
        active_members=row["active_members"],
        active_rate=group_health.ratio(row["active_members"], population),
        purchasers=row["purchasers"],
        conversion_rate=group_health.ratio(row["purchasers"], population),
        gmv_cents=row["gmv_cents"], value_mean=value_mean, high_value_members=high_value,
        stage=stage, activation_watch=watch)  # type: ignore[arg-type]


async def migrations(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, now: datetime,
                     limit: int, tolerance: float) -> t.Migrations:
    """Members whose tier differs from their group's, high-value members stuck in silver
    groups, each with livelier groups of their tier to invite them to; and how super-user and
    member groups compare with their target composition."""
    policy = decode_policy(await store.policy(conn, tenant_id))
    model = await store.value_model(conn, tenant_id)
    last_day = await store.local_day(conn, tenant_id, now)
    all_groups = await store.groups(conn, tenant_id)
    flash = {g["group_id"] for g in all_groups if g["kind"] == "flash"}
    values = await values_at(conn, tenant_id, model, now, flash) if model is not None else None
    liveliness = values.mean if values else {}
    # Invitations go to the liveliest non-flash groups of the member's tier.
    by_tier: dict[str, list[str]] = {}
    for group in sorted(all_groups, key=lambda g: (-liveliness.get(g["group_id"], 0.0),
                                                   g["group_id"])):
        if group["kind"] != "flash":
            by_tier.setdefault(group["tier"], []).append(group["group_id"])

    ladder = [tier.name for tier in policy.tiers] if policy else []
    moves: list[tuple[str, str, str, str | None, float | None, str]] = [
        (r["member_id"], r["group_id"], r["group_tier"], r["member_tier"],
         None if r["total"] is None else float(r["total"]), "tier_mismatch")
        for r in await store.tier_mismatches(conn, tenant_id, ladder, model, last_day,
                                             limit + 1)]
    if model is not None:
        silver = [g["group_id"] for g in all_groups
                  if g["kind"] != "flash" and values and values.stage(g["group_id"]) == "silver"]
        for r in await store.high_value_members_of(conn, tenant_id, model, last_day, silver,
                                                   limit + 1):
            moves.append((r["member_id"], r["group_id"], r["group_tier"], r["member_tier"],
                          float(r["total"]), "high_value_in_silver_group"))
    moves.sort(key=lambda m: (m[0], m[1], m[5]))
    truncated = len(moves) > limit
    moves = moves[:limit]
    current: dict[str, set[str]] = {}
    for r in await store.memberships_of(conn, tenant_id, sorted({m[0] for m in moves})):
        current.setdefault(r["member_id"], set()).add(r["group_id"])

    suggestions = []
    for member_id, group_id, group_tier, member_tier, value, reason in moves:
        tier = member_tier if reason == "tier_mismatch" else (member_tier or group_tier)
        candidates = [g for g in by_tier.get(tier or "", [])
                      if g not in current.get(member_id, set())
                      and (reason == "tier_mismatch"
                           or (values is not None and values.stage(g) == "golden"))]
        suggestions.append(t.MigrationSuggestion(
            member_id=member_id, group_id=group_id, group_tier=group_tier,
            member_tier=member_tier, value=value, reason=reason,  # type: ignore[arg-type]
            suggested_groups=candidates[:SUGGESTED_GROUPS]))

    top_tier = policy.tiers[-1].name if policy else None
    compositions = []
    for r in await store.compositions(conn, tenant_id, model, last_day, top_tier):
        shares, balanced = group_health.composition(r["kind"], r["members"], r["super"],
                                                    r["potential"], tolerance)
        compositions.append(t.Composition(group_id=r["group_id"], kind=r["kind"],
                                          members=r["members"], shares=shares,
                                          target=group_health.TARGETS[r["kind"]],
                                          balanced=balanced))
    return t.Migrations(moves=suggestions, truncated=truncated, compositions=compositions)
