"""The points service's SQL, one function per statement, each named for what it runs: ``select_``
and ``upsert_`` for queries, ``call_`` for the ledger functions of services/points/sql (each
ledger operation is one of them: one round trip). Rows come back as the Structs below, or as the
proto Structs where a row is exactly one of those."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import msgspec

from proto.points import (
    DailyFigures,
    EntryKind,
    EventIn,
    Expiring,
    GrantItem,
    HoldIn,
    HoldStatus,
    HourlyFigures,
    ItemGrantIn,
    LedgerProblem,
    Rule,
    RuleIn,
)
from services.runtime.db import Db, S, as_struct, as_structs, refusals
from services.runtime.idempotency import Claim, IdTaken, claiming_call


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


class BatchItemRow(Row, frozen=True, kw_only=True):
    """One item of a batch function: ``done`` (the effect ran), ``taken`` (its id was claimed
    before: nothing ran) or ``refused``, with what points.refuse raised."""

    outcome: Literal["done", "taken", "refused"]
    refusal: str | None
    refusal_hint: str | None
    refusal_details: str | None


class PlacedHoldItem(BatchItemRow, frozen=True, kw_only=True):
    available: int | None
    held: int | None
    expires_at: datetime | None


class SettledHoldItem(BatchItemRow, frozen=True, kw_only=True):
    member_id: str | None
    points: int | None
    status: HoldStatus | None
    available: int | None
    held: int | None


class AppliedGrantItem(Row, frozen=True, kw_only=True):
    """One grant of a batch: ``done`` or ``taken`` (its id was claimed before)."""

    outcome: Literal["done", "taken"]
    item_count: int | None
    total_points: int | None


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


async def _claimed_call(db: Db, kind: type[S], claim: Claim, function: str, *args: Any) -> S:
    """The one row ledger ``function`` answers, called with the tenant and ``args`` by the
    statement that claims the request's id (``claiming_call``: it does not run when the id was
    taken, and ``IdTaken`` is raised); its refusals raised as FuliErrors."""
    with refusals():
        row = await db.fetchrow(claiming_call(function, kind.__struct_fields__, len(args)),
                                *claim.args, *args)
    if row is None:
        raise IdTaken
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


async def upsert_multipliers(db: Db, tenant_id: str, member_ids: Sequence[str],
                             multiplier: float, at: datetime) -> None:
    """Sets the members' multiplier as of ``at``; for a member whose current setting is newer,
    it is ignored. Rows are taken in member order, as every writer of many members takes them,
    so two of these never wait on each other crosswise."""
    await db.execute(
        "INSERT INTO points.members (tenant_id, member_id, earn_multiplier, multiplier_set_at)"
        " SELECT $1, m.member_id, $3, $4 FROM unnest($2::text[]) AS m(member_id)"
        " ORDER BY m.member_id ON CONFLICT (tenant_id, member_id)"
        " DO UPDATE SET earn_multiplier = EXCLUDED.earn_multiplier,"
        " multiplier_set_at = EXCLUDED.multiplier_set_at"
        " WHERE points.members.multiplier_set_at IS NULL"
        " OR points.members.multiplier_set_at <= EXCLUDED.multiplier_set_at",
        tenant_id, list(member_ids), multiplier, at)


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


async def call_reverse_event(db: Db, claim: Claim, reversal_id: str, event_id: str,
                             amount_cents: int | None, now: datetime) -> ReversedEvent:
    return await _claimed_call(db, ReversedEvent, claim, "points.reverse_event",
                               reversal_id, event_id, amount_cents, now)


# --- holds, debits, moves, grants ----------------------------------------------------------

async def call_place_hold(db: Db, claim: Claim, hold_id: str, member_id: str, points: int,
                          reason: str, expires_in_s: int, now: datetime) -> PlacedHold:
    return await _claimed_call(db, PlacedHold, claim, "points.place_hold",
                               hold_id, member_id, points, reason, expires_in_s, now)


async def call_settle_hold(db: Db, claim: Claim, hold_id: str, action: str,
                           now: datetime) -> SettledHold:
    return await _claimed_call(db, SettledHold, claim, "points.settle_hold",
                               hold_id, action, now)


async def call_place_holds(db: Db, tenant_id: str, holds: Sequence[HoldIn],
                           fingerprints: Sequence[bytes], now: datetime) -> list[PlacedHoldItem]:
    """One row per hold, in the order of ``holds``."""
    return as_structs(PlacedHoldItem, await db.fetch(
        "SELECT outcome, available, held, expires_at, refusal, refusal_hint, refusal_details"
        " FROM points.place_holds($1, $2, $3, $4, $5, $6, $7, $8) ORDER BY ord",
        tenant_id, [h.hold_id for h in holds], list(fingerprints), [h.member_id for h in holds],
        [h.points for h in holds], [h.reason for h in holds], [h.expires_in_s for h in holds],
        now))


async def call_settle_holds(db: Db, tenant_id: str, hold_ids: Sequence[str],
                            actions: Sequence[str], fingerprints: Sequence[bytes],
                            now: datetime) -> list[SettledHoldItem]:
    """One row per hold, in the order of ``hold_ids``."""
    return as_structs(SettledHoldItem, await db.fetch(
        "SELECT outcome, member_id, points, status, available, held, refusal, refusal_hint,"
        " refusal_details FROM points.settle_holds($1, $2, $3, $4, $5) ORDER BY ord",
        tenant_id, list(hold_ids), list(actions), list(fingerprints), now))


async def call_refund_hold(db: Db, claim: Claim, hold_id: str,
                           now: datetime) -> RefundedHold:
    return await _claimed_call(db, RefundedHold, claim, "points.refund_hold", hold_id, now)


async def call_debit(db: Db, claim: Claim, debit_id: str, member_id: str, points: int,
                     reason: str, now: datetime) -> int:
    """The member's available points after the debit."""
    after = await _claimed_call(db, AvailableAfter, claim, "points.debit",
                                debit_id, member_id, points, reason, now)
    return after.available


async def call_move_points(db: Db, claim: Claim, move_id: str, from_member: str,
                           to_member: str, points: int, reason: str, expires_days: int,
                           now: datetime) -> MovedPoints:
    return await _claimed_call(db, MovedPoints, claim, "points.move_points",
                               move_id, from_member, to_member, points, reason, expires_days,
                               now)


async def call_retire_points(db: Db, claim: Claim, retirement_id: str, member_id: str,
                             points: int, now: datetime) -> int:
    """The member's available points after the retirement."""
    after = await _claimed_call(db, AvailableAfter, claim, "points.retire_points",
                                retirement_id, member_id, points, now)
    return after.available


async def call_apply_grant(db: Db, claim: Claim, grant_id: str, key_id: str | None,
                           reason: str, items: Sequence[GrantItem], default_days: int,
                           now: datetime) -> AppliedGrant:
    return await _claimed_call(db, AppliedGrant, claim, "points.apply_grant",
                               grant_id, key_id, reason, [i.member_id for i in items],
                               [i.points for i in items], [i.expires_at for i in items],
                               default_days, now)


async def call_apply_grants(db: Db, tenant_id: str, grants: Sequence[ItemGrantIn],
                            fingerprints: Sequence[bytes], key_id: str | None,
                            default_days: int, now: datetime) -> list[AppliedGrantItem]:
    """One row per grant, in the order of ``grants``."""
    items = [item for grant in grants for item in grant.items]
    return as_structs(AppliedGrantItem, await db.fetch(
        "SELECT outcome, item_count, total_points FROM points.apply_grants("
        "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ORDER BY ord",
        tenant_id, [g.grant_id for g in grants], list(fingerprints), key_id,
        [g.reason for g in grants], [len(g.items) for g in grants],
        [i.member_id for i in items], [i.points for i in items], [i.expires_at for i in items],
        default_days, now))


async def audit_grant_segment(db: Db, tenant_id: str, grant_id: str, segment_id: str,
                              count: int, computed_at: datetime) -> None:
    """The segment a grant went to, as read at grant time, on the grant's audit row."""
    await db.execute(
        "UPDATE points.grant_audit SET segment_id = $3, segment_count = $4,"
        " segment_computed_at = $5 WHERE tenant_id = $1 AND grant_id = $2",
        tenant_id, grant_id, segment_id, count, computed_at)


# --- reads ---------------------------------------------------------------------------------

MemberKey = tuple[str, str]  # (tenant id, member id)


async def select_members(db: Db, keys: Sequence[MemberKey], now: datetime,
                         expiring: int) -> dict[MemberKey, tuple[MemberRow, list[Expiring]]]:
    """Each member's balances (``available`` leaves out expired lots not swept yet) and the next
    ``expiring`` expiry dates of available points, soonest first, in one statement for all of
    ``keys``: the balance is the most read thing there is. Members never seen are left out."""
    rows = await db.fetch(
        "SELECT k.tenant_id, m.member_id,"
        " m.available - points.expired_unswept(m.tenant_id, m.member_id, $3) AS available,"
        " m.held, m.lifetime_earned, m.spent, m.expired, m.reversed, m.spend_cents,"
        " m.earn_multiplier::float8 AS earn_multiplier, e.points AS expiring_points,"
        " e.expires_at AS expiring_at"
        " FROM unnest($1::text[], $2::text[]) AS k(tenant_id, member_id)"
        " JOIN points.members m ON m.tenant_id = k.tenant_id AND m.member_id = k.member_id"
        " CROSS JOIN LATERAL ("
        "  SELECT array_agg(x.points ORDER BY x.expires_at) AS points,"
        "   array_agg(x.expires_at ORDER BY x.expires_at) AS expires_at"
        "  FROM (SELECT sum(l.remaining - l.held)::bigint AS points, l.expires_at"
        "   FROM points.lots l WHERE l.tenant_id = m.tenant_id AND l.member_id = m.member_id"
        # remaining > 0 follows from remaining > held (held >= 0); said, it lets the open lots'
        # index give them in expiry order, so a member's first few expiry dates are read
        # without reading every lot the member has
        "    AND l.remaining > l.held AND l.remaining > 0 AND l.expires_at > $3"
        "   GROUP BY l.expires_at ORDER BY l.expires_at LIMIT $4) x) e",
        [tenant for tenant, _ in keys], [member for _, member in keys], now, expiring)
    return {(row["tenant_id"], row["member_id"]): (
                as_struct(MemberRow, row),
                [Expiring(points=points, expires_at=at)
                 for points, at in zip(row["expiring_points"] or [], row["expiring_at"] or [],
                                       strict=True)])
            for row in rows}


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


# --- stats ---------------------------------------------------------------------------------
#
# Read-only figures for the operators' console, each one statement (one snapshot). Members
# matching ``escrow`` (proto.common.ESCROW_MEMBER_PATTERN) are left out where members count.


class MemberActivity(Row, frozen=True, kw_only=True):
    members: int
    active_members_7d: int
    active_members_30d: int


async def select_daily_figures(db: Db, tenant_id: str, time_zone: str, now: datetime,
                               days: int, escrow: str) -> list[DailyFigures]:
    """The last ``days`` local days of ``time_zone`` up to the one of ``now``, oldest first.

    Flows are the sums of the day's transfers by kind. ``balance`` is what members hold
    (available and on hold) at the end of the day: their sum now, less the net change by the
    transfers after that day (transfers are the only way balances change), so that each day's
    balance is the day before's plus its issued, less its spent, expired and reversed. Only
    transfers since the first day are read."""
    return as_structs(DailyFigures, await db.fetch(
        "WITH bounds AS ("
        "  SELECT ($3::timestamptz AT TIME ZONE $2)::date AS today),"
        " moves AS ("
        "  SELECT (t.at AT TIME ZONE $2)::date AS day,"
        "   sum(t.amount) FILTER (WHERE t.kind IN ('earn', 'grant', 'refund')) AS issued,"
        "   sum(t.amount) FILTER (WHERE t.kind IN ('debit', 'capture')) AS spent,"
        "   sum(t.amount) FILTER (WHERE t.kind = 'expiry') AS expired,"
        "   sum(t.amount) FILTER (WHERE t.kind = 'reversal') AS reversed,"
        "   sum(CASE WHEN t.from_account IN ('available', 'held')"
        "             AND t.to_account IN ('available', 'held') THEN 0"
        "            WHEN t.to_account IN ('available', 'held') THEN t.amount"
        "            WHEN t.from_account IN ('available', 'held') THEN -t.amount"
        "            ELSE 0 END) AS net"
        "  FROM points.transfers t"
        "  WHERE t.tenant_id = $1 AND t.member_id !~ $5"
        "   AND t.at >= ((($3::timestamptz AT TIME ZONE $2)::date - ($4::int - 1))::timestamp"
        "                AT TIME ZONE $2)"
        "  GROUP BY 1),"
        " totals AS ("
        "  SELECT b.today,"
        "   (SELECT coalesce(sum(m.available + m.held), 0) FROM points.members m"
        "    WHERE m.tenant_id = $1 AND m.member_id !~ $5) AS balance,"
        "   (SELECT coalesce(sum(x.net), 0) FROM moves x WHERE x.day > b.today) AS later"
        "  FROM bounds b),"
        " days AS ("
        "  SELECT b.today - ($4::int - 1) + i AS day FROM bounds b,"
        "   generate_series(0, $4::int - 1) AS i)"
        " SELECT d.day, coalesce(m.issued, 0)::bigint AS issued,"
        "  coalesce(m.spent, 0)::bigint AS spent, coalesce(m.expired, 0)::bigint AS expired,"
        "  coalesce(m.reversed, 0)::bigint AS reversed,"
        "  (t.balance - t.later"
        "   - coalesce(sum(m.net) OVER (ORDER BY d.day ROWS BETWEEN 1 FOLLOWING"
        "                               AND UNBOUNDED FOLLOWING), 0))::bigint AS balance"
        " FROM days d CROSS JOIN totals t LEFT JOIN moves m ON m.day = d.day"
        " ORDER BY d.day",
        tenant_id, time_zone, now, days, escrow))


async def select_hourly_figures(db: Db, tenant_id: str, time_zone: str, now: datetime,
                                hours: int) -> list[HourlyFigures]:
    """Events recorded in each of the last ``hours`` hours of ``time_zone``'s clock up to the
    one of ``now``, oldest first, with the points they awarded (an hour of a zone half an hour
    off UTC starts at half past on a UTC clock)."""
    return as_structs(HourlyFigures, await db.fetch(
        "WITH recorded AS ("
        "  SELECT date_trunc('hour', e.recorded_at, $4) AS hour, count(*) AS events,"
        "   sum(e.points) AS points"
        "  FROM points.events e"
        "  WHERE e.tenant_id = $1 AND e.recorded_at"
        "   >= date_trunc('hour', $2::timestamptz, $4) - make_interval(hours => $3::int - 1)"
        "  GROUP BY 1)"
        " SELECT h.hour, coalesce(r.events, 0)::bigint AS events,"
        "  coalesce(r.points, 0)::bigint AS points"
        " FROM generate_series(date_trunc('hour', $2::timestamptz, $4)"
        "                      - make_interval(hours => $3::int - 1),"
        "                      date_trunc('hour', $2::timestamptz, $4),"
        "                      interval '1 hour') AS h(hour)"
        " LEFT JOIN recorded r ON r.hour = h.hour"
        " ORDER BY h.hour",
        tenant_id, now, hours, time_zone))


async def select_member_activity(db: Db, tenant_id: str, now: datetime, escrow: str,
                                 skew: timedelta) -> MemberActivity:
    """Members with a ledger account, and members with an event that occurred in the last 7 and
    30 days. An event is recorded at most ``skew`` before it occurred (a client's clock may run
    ahead that much), so only events recorded since then are read."""
    row = await db.fetchrow(
        "SELECT (SELECT count(*) FROM points.members m"
        "        WHERE m.tenant_id = $1 AND m.member_id !~ $3) AS members,"
        " count(DISTINCT e.member_id)"
        "  FILTER (WHERE e.occurred_at > $2::timestamptz - interval '7 days') AS active_members_7d,"
        " count(DISTINCT e.member_id) AS active_members_30d"
        " FROM points.events e"
        " WHERE e.tenant_id = $1 AND e.occurred_at > $2::timestamptz - interval '30 days'"
        "  AND e.recorded_at > $2::timestamptz - interval '30 days' - $4::interval",
        tenant_id, now, escrow, skew)
    assert row is not None
    return as_struct(MemberActivity, row)


# --- background work -----------------------------------------------------------------------

async def call_sweep_expired_lots(db: Db, now: datetime, limit: int) -> int:
    """How many members were swept (at most ``limit``)."""
    return int(await db.fetchval("SELECT points.sweep_expired_lots($1, $2)", now, limit))


async def call_expire_holds(db: Db, now: datetime, limit: int) -> int:
    """How many pending holds were voided (at most ``limit``)."""
    return int(await db.fetchval("SELECT points.expire_holds($1, $2)", now, limit))
