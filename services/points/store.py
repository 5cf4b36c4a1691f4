"""The points service's SQL, one function per statement, each named for what it runs: ``select_``
and ``upsert_`` for queries, ``call_`` for the ledger functions of services/points/sql (each
ledger operation is one of them: one round trip). Rows come back as the Structs below, or as the
proto Structs where a row is exactly one of those."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from proto.points import (
    EntryKind,
    EventIn,
    Expiring,
    GrantItem,
    HoldStatus,
    LedgerProblem,
    Rule,
    RuleIn,
)
from services.runtime.db import Db, S, as_struct, as_structs, refusals


class Row(msgspec.Struct, frozen=True, kw_only=True):
    """Base of the rows below: field names are column names."""


class RecordedEvent(Row, frozen=True, kw_only=True):
    """What points.record_event(s) answered for one event: its stored body (``replayed`` if it
    was recorded before), or the code it was refused with and no body."""

    refused: str | None
    body: bytes | None
    replayed: bool


class PlacedHold(Row, frozen=True, kw_only=True):
    available: int
    held: int
    expires_at: datetime


class SettledHold(Row, frozen=True, kw_only=True):
    member_id: str
    points: int
    status: HoldStatus
    available: int
    held: int


class RefundedHold(Row, frozen=True, kw_only=True):
    member_id: str
    points: int
    available: int


class MovedPoints(Row, frozen=True, kw_only=True):
    from_available: int
    to_available: int


class ReversedEvent(Row, frozen=True, kw_only=True):
    member_id: str
    refunded_cents: int
    points: int
    clawed_back: int
    shortfall: int
    available: int


class AvailableAfter(Row, frozen=True, kw_only=True):
    """A member's available points after a debit or a retirement."""

    available: int


class AppliedGrant(Row, frozen=True, kw_only=True):
    item_count: int
    total_points: int


class MemberRow(Row, frozen=True, kw_only=True):
    member_id: str
    available: int
    held: int
    lifetime_earned: int
    spent: int
    expired: int
    reversed: int
    spend_cents: int
    earn_multiplier: float


class TransferRow(Row, frozen=True, kw_only=True):
    transfer_id: int
    kind: EntryKind
    from_account: str
    to_account: str
    amount: int
    available_after: int
    held_after: int
    ref: str
    at: datetime


async def _call(db: Db, kind: type[S], query: str, *args: Any) -> S:
    """The one row a ledger function answers, its refusals raised as FuliErrors."""
    with refusals():
        row = await db.fetchrow(query, *args)
    assert row is not None
    return as_struct(kind, row)


# --- rules ---------------------------------------------------------------------------------

async def select_rules(db: Db, tenant_id: str) -> list[Rule]:
    """The tenant's rules and the built-in defaults it has not replaced."""
    return as_structs(Rule, await db.fetch(
        "SELECT action, points, points_per_unit, unit_cents, limits, expires_after_days,"
        " enabled, false AS builtin FROM points.rules WHERE tenant_id = $1"
        " UNION ALL"
        " SELECT action, points, points_per_unit, unit_cents, limits, expires_after_days,"
        " enabled, true FROM points.default_rules d WHERE NOT EXISTS ("
        "   SELECT 1 FROM points.rules r WHERE r.tenant_id = $1 AND r.action = d.action)"
        " ORDER BY action", tenant_id))


async def upsert_rule(db: Db, tenant_id: str, action: str, rule: RuleIn,
                      limits: list[dict[str, Any]]) -> None:
    await db.execute(
        "INSERT INTO points.rules (tenant_id, action, points, points_per_unit, unit_cents,"
        " limits, expires_after_days, enabled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (tenant_id, action) DO UPDATE SET points = EXCLUDED.points,"
        " points_per_unit = EXCLUDED.points_per_unit, unit_cents = EXCLUDED.unit_cents,"
        " limits = EXCLUDED.limits, expires_after_days = EXCLUDED.expires_after_days,"
        " enabled = EXCLUDED.enabled, updated_at = now()",
        tenant_id, action, rule.points, rule.points_per_unit, rule.unit_cents, limits,
        rule.expires_after_days, rule.enabled)


async def upsert_multiplier(db: Db, tenant_id: str, member_id: str, multiplier: float,
                            at: datetime) -> None:
    """Sets the multiplier as of ``at``; a setting older than the current one is ignored."""
    await db.execute(
        "INSERT INTO points.members (tenant_id, member_id, earn_multiplier, multiplier_set_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, member_id)"
        " DO UPDATE SET earn_multiplier = EXCLUDED.earn_multiplier,"
        " multiplier_set_at = EXCLUDED.multiplier_set_at"
        " WHERE points.members.multiplier_set_at IS NULL"
        " OR points.members.multiplier_set_at <= EXCLUDED.multiplier_set_at",
        tenant_id, member_id, multiplier, at)


# --- events --------------------------------------------------------------------------------

async def call_record_event(db: Db, tenant_id: str, event: EventIn, fingerprint: bytes,
                            occurred_at: datetime, now: datetime) -> RecordedEvent:
    row = await db.fetchrow(
        "SELECT refused, body, replayed FROM points.record_event("
        "$1, $2, $3, $4, $5, $6, $7, $8, $9)",
        tenant_id, event.event_id, fingerprint, event.member_id, event.action, occurred_at,
        event.amount_cents, event.attributes, now)
    assert row is not None
    # The hot path: built by hand, which is cheaper than converting a dict.
    return RecordedEvent(refused=row["refused"], body=row["body"], replayed=row["replayed"])


async def call_record_events(db: Db, tenant_id: str, events: Sequence[EventIn],
                             fingerprints: Sequence[bytes], occurred_at: Sequence[datetime],
                             now: datetime) -> list[RecordedEvent]:
    """One result per event, in the order of ``events``."""
    rows = await db.fetch(
        "SELECT refused, body, replayed FROM points.record_events("
        "$1, $2, $3, $4, $5, $6, $7, $8, $9) ORDER BY ord",
        tenant_id, [e.event_id for e in events], list(fingerprints),
        [e.member_id for e in events], [e.action for e in events], list(occurred_at),
        [e.amount_cents for e in events], [e.attributes for e in events], now)
    return [RecordedEvent(refused=row["refused"], body=row["body"], replayed=row["replayed"])
            for row in rows]


async def call_reverse_event(db: Db, tenant_id: str, reversal_id: str, event_id: str,
                             amount_cents: int | None, now: datetime) -> ReversedEvent:
    return await _call(
        db, ReversedEvent,
        "SELECT member_id, refunded_cents, points, clawed_back, shortfall, available"
        " FROM points.reverse_event($1, $2, $3, $4, $5)",
        tenant_id, reversal_id, event_id, amount_cents, now)


# --- holds, debits, moves, grants ----------------------------------------------------------

async def call_place_hold(db: Db, tenant_id: str, hold_id: str, member_id: str, points: int,
                          reason: str, expires_in_s: int, now: datetime) -> PlacedHold:
    return await _call(
        db, PlacedHold,
        "SELECT available, held, expires_at FROM points.place_hold($1, $2, $3, $4, $5, $6, $7)",
        tenant_id, hold_id, member_id, points, reason, expires_in_s, now)


async def call_settle_hold(db: Db, tenant_id: str, hold_id: str, action: str,
                           now: datetime) -> SettledHold:
    return await _call(
        db, SettledHold,
        "SELECT member_id, points, status, available, held"
        " FROM points.settle_hold($1, $2, $3, $4)", tenant_id, hold_id, action, now)


async def call_refund_hold(db: Db, tenant_id: str, hold_id: str,
                           now: datetime) -> RefundedHold:
    return await _call(
        db, RefundedHold,
        "SELECT member_id, points, available FROM points.refund_hold($1, $2, $3)",
        tenant_id, hold_id, now)


async def call_debit(db: Db, tenant_id: str, debit_id: str, member_id: str, points: int,
                     reason: str, now: datetime) -> int:
    """The member's available points after the debit."""
    after = await _call(
        db, AvailableAfter, "SELECT available FROM points.debit($1, $2, $3, $4, $5, $6)",
        tenant_id, debit_id, member_id, points, reason, now)
    return after.available


async def call_move_points(db: Db, tenant_id: str, move_id: str, from_member: str,
                           to_member: str, points: int, reason: str, expires_days: int,
                           now: datetime) -> MovedPoints:
    return await _call(
        db, MovedPoints,
        "SELECT from_available, to_available FROM points.move_points("
        "$1, $2, $3, $4, $5, $6, $7, $8)",
        tenant_id, move_id, from_member, to_member, points, reason, expires_days, now)


async def call_retire_points(db: Db, tenant_id: str, retirement_id: str, member_id: str,
                             points: int, now: datetime) -> int:
    """The member's available points after the retirement."""
    after = await _call(
        db, AvailableAfter, "SELECT available FROM points.retire_points($1, $2, $3, $4, $5)",
        tenant_id, retirement_id, member_id, points, now)
    return after.available


async def call_apply_grant(db: Db, tenant_id: str, grant_id: str, key_id: str | None,
                           reason: str, items: Sequence[GrantItem], default_days: int,
                           now: datetime) -> AppliedGrant:
    return await _call(
        db, AppliedGrant,
        "SELECT item_count, total_points FROM points.apply_grant("
        "$1, $2, $3, $4, $5, $6, $7, $8, $9)",
        tenant_id, grant_id, key_id, reason, [i.member_id for i in items],
        [i.points for i in items], [i.expires_at for i in items], default_days, now)


async def audit_grant_segment(db: Db, tenant_id: str, grant_id: str, segment_id: str,
                              count: int, computed_at: datetime) -> None:
    """The segment a grant went to, as read at grant time, on the grant's audit row."""
    await db.execute(
        "UPDATE points.grant_audit SET segment_id = $3, segment_count = $4,"
        " segment_computed_at = $5 WHERE tenant_id = $1 AND grant_id = $2",
        tenant_id, grant_id, segment_id, count, computed_at)


# --- reads ---------------------------------------------------------------------------------

async def select_member(db: Db, tenant_id: str, member_id: str,
                        now: datetime) -> MemberRow | None:
    """The member's balances; ``available`` leaves out expired lots not swept yet."""
    row = await db.fetchrow(
        "SELECT member_id, available - points.expired_unswept(tenant_id, member_id, $3)"
        " AS available, held, lifetime_earned, spent, expired, reversed, spend_cents,"
        " earn_multiplier::float8 AS earn_multiplier"
        " FROM points.members WHERE tenant_id = $1 AND member_id = $2",
        tenant_id, member_id, now)
    return None if row is None else as_struct(MemberRow, row)


async def select_expiring(db: Db, tenant_id: str, member_id: str, now: datetime,
                          limit: int) -> list[Expiring]:
    """The next expiry dates of available points, soonest first."""
    return as_structs(Expiring, await db.fetch(
        "SELECT sum(remaining - held)::bigint AS points, expires_at FROM points.lots"
        " WHERE tenant_id = $1 AND member_id = $2 AND remaining > held AND expires_at > $3"
        " GROUP BY expires_at ORDER BY expires_at LIMIT $4",
        tenant_id, member_id, now, limit))


async def select_transfers(db: Db, tenant_id: str, member_id: str, before_id: int | None,
                           limit: int) -> list[TransferRow]:
    """The member's transfers, newest first, older than ``before_id`` if given."""
    return as_structs(TransferRow, await db.fetch(
        "SELECT transfer_id, kind, from_account, to_account, amount, available_after,"
        " held_after, ref, at FROM points.transfers"
        " WHERE tenant_id = $1 AND member_id = $2 AND ($3::bigint IS NULL OR transfer_id < $3)"
        " ORDER BY transfer_id DESC LIMIT $4",
        tenant_id, member_id, before_id, limit))


async def call_ledger_problems(db: Db, tenant_id: str | None) -> list[LedgerProblem]:
    return as_structs(LedgerProblem, await db.fetch(
        "SELECT tenant_id, member_id, problem, detail FROM points.ledger_problems($1)"
        " ORDER BY tenant_id, member_id NULLS FIRST, problem", tenant_id))


# --- background work -----------------------------------------------------------------------

async def call_sweep_expired_lots(db: Db, now: datetime, limit: int) -> int:
    """How many members were swept (at most ``limit``)."""
    return int(await db.fetchval("SELECT points.sweep_expired_lots($1, $2)", now, limit))


async def call_expire_holds(db: Db, now: datetime, limit: int) -> int:
    """How many pending holds were voided (at most ``limit``)."""
    return int(await db.fetchval("SELECT points.expire_holds($1, $2)", now, limit))
