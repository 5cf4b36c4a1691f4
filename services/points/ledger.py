"""Ledger operations: validation, idempotency and the shape of answers around store calls."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from proto import points as p
from services.points import domain, store
from services.points.group_commit import EventCommitter
from services.runtime.errors import IdempotencyConflict, ValidationFailed
from services.runtime.idempotency import Outcome, fingerprint, run_once

EVENTS_SCOPE = "points.events"
MAX_FUTURE_SKEW = timedelta(minutes=5)
GRANT_DEFAULT_EXPIRY_DAYS = 365
EXPIRING_SHOWN = 5

_event_result = msgspec.json.Decoder(p.EventResult)


def _occurred_at(value: datetime | None, now: datetime, field: str) -> datetime:
    if value is None:
        return now
    if value.tzinfo is None:
        raise ValidationFailed("times need a time zone offset (RFC 3339)", field=field)
    if value > now + MAX_FUTURE_SKEW:
        raise ValidationFailed("occurred_at is in the future", field=field)
    return value


def _unknown_action(action: str, field: str = "action") -> ValidationFailed:
    return ValidationFailed(f"unknown or disabled action {action!r}", code="unknown_action",
                            field=field)


# --- rules ---------------------------------------------------------------------------------

def rule_out(row: asyncpg.Record) -> p.Rule:
    return p.Rule(action=row["action"], points=row["points"],
                  points_per_unit=row["points_per_unit"], unit_cents=row["unit_cents"],
                  limits=msgspec.convert(row["limits"], list[p.LimitOut]),
                  expires_after_days=row["expires_after_days"], enabled=row["enabled"],
                  builtin=row["builtin"])


async def put_rule(conn: asyncpg.Connection, tenant_id: str, action: str,
                   rule: p.RuleIn) -> p.Rule:
    domain.validate_rule(rule)
    limits = [msgspec.structs.asdict(limit) for limit in rule.limits]
    limits = [{k: v for k, v in limit.items() if v is not None} for limit in limits]
    await store.put_rule(conn, tenant_id, action, rule, limits)
    return next(rule_out(r) for r in await store.rules(conn, tenant_id) if r["action"] == action)


# --- events --------------------------------------------------------------------------------

async def record_event(committer: EventCommitter, tenant_id: str, event: p.EventIn,
                       now: datetime) -> Outcome:
    occurred_at = _occurred_at(event.occurred_at, now, "occurred_at")
    row = await committer.record(tenant_id, event,
                                 fingerprint(EVENTS_SCOPE, event.event_id, event),
                                 occurred_at, now)
    if row["status_code"] == 422:
        raise _unknown_action(event.action)
    if row["status_code"] == 409:
        raise IdempotencyConflict(f"{event.event_id!r} was already used with a different "
                                  "request", id=event.event_id)
    return Outcome(row["status_code"], bytes(row["body"]), row["replayed"])


async def record_batch(conn: asyncpg.Connection, tenant_id: str, batch: p.EventBatchIn,
                       now: datetime) -> p.EventBatchResult:
    items: list[p.BatchItem | None] = [None] * len(batch.events)
    valid: list[int] = []
    occurred: list[datetime] = []
    for index, event in enumerate(batch.events):
        try:
            occurred.append(_occurred_at(event.occurred_at, now, "occurred_at"))
            valid.append(index)
        except ValidationFailed as exc:
            items[index] = _batch_error(event.event_id, exc)
    events = [batch.events[i] for i in valid]
    rows = await store.record_events(
        conn, tenant_id, events, [fingerprint(EVENTS_SCOPE, e.event_id, e) for e in events],
        occurred, now) if events else []
    for row in rows:
        index = valid[row["ord"] - 1]
        event = batch.events[index]
        status = row["status_code"]
        if status == 422:
            items[index] = _batch_error(event.event_id, _unknown_action(event.action))
        elif status == 409:
            items[index] = _batch_error(event.event_id, IdempotencyConflict(
                "this event_id was already used with a different request"))
        else:
            items[index] = p.BatchItem(event_id=event.event_id, status_code=status,
                                       result=_event_result.decode(row["body"]))
    assert all(item is not None for item in items)
    return p.EventBatchResult(items=[item for item in items if item is not None])


def _batch_error(event_id: str, exc: Any) -> p.BatchItem:
    return p.BatchItem(event_id=event_id, status_code=exc.status_code,
                       error=p.BatchItemError(code=exc.code, message=exc.message))


async def reverse_event(conn: asyncpg.Connection, tenant_id: str, event_id: str,
                        body: p.ReversalIn, now: datetime) -> Outcome:
    async def effect(tx: asyncpg.Connection) -> tuple[int, p.Reversal]:
        row = await store.reverse_event(tx, tenant_id, body.reversal_id, event_id,
                                        body.amount_cents, now)
        return 201, p.Reversal(
            reversal_id=body.reversal_id, event_id=event_id, member_id=row["member_id"],
            refunded_cents=row["refunded_cents"], points=row["points"],
            clawed_back=row["clawed_back"], shortfall=row["shortfall"],
            balance=row["available"])

    return await run_once(conn, tenant_id=tenant_id, scope="points.reversals",
                          key=body.reversal_id, request={"event_id": event_id, "body": body},
                          effect=effect)


# --- holds and debits ----------------------------------------------------------------------

async def place_hold(conn: asyncpg.Connection, tenant_id: str, body: p.HoldIn,
                     now: datetime) -> Outcome:
    async def effect(tx: asyncpg.Connection) -> tuple[int, p.Hold]:
        row = await store.place_hold(tx, tenant_id, body.hold_id, body.member_id, body.points,
                                     body.reason, body.expires_in_s, now)
        return 201, p.Hold(hold_id=body.hold_id, member_id=body.member_id, points=body.points,
                           status="pending", expires_at=row["expires_at"],
                           available=row["available"], held=row["held"])

    return await run_once(conn, tenant_id=tenant_id, scope="points.holds", key=body.hold_id,
                          request=body, effect=effect)


async def settle_hold(conn: asyncpg.Connection, tenant_id: str, hold_id: str, action: str,
                      body: p.SettleIn, now: datetime) -> Outcome:
    async def effect(tx: asyncpg.Connection) -> tuple[int, p.Hold]:
        row = await store.settle_hold(tx, tenant_id, hold_id, action, now)
        return 200, p.Hold(hold_id=hold_id, member_id=row["member_id"], points=row["points"],
                           status=row["status"], available=row["available"], held=row["held"])

    return await run_once(conn, tenant_id=tenant_id, scope=f"points.holds.{action}",
                          key=hold_id, request=body, effect=effect)


async def refund_hold(conn: asyncpg.Connection, tenant_id: str, hold_id: str,
                      body: p.RefundIn, now: datetime) -> Outcome:
    async def effect(tx: asyncpg.Connection) -> tuple[int, p.Refund]:
        row = await store.refund_hold(tx, tenant_id, hold_id, now)
        return 201, p.Refund(refund_id=body.refund_id, hold_id=hold_id,
                             member_id=row["member_id"], points=row["points"],
                             available=row["available"])

    return await run_once(conn, tenant_id=tenant_id, scope="points.refunds", key=body.refund_id,
                          request={"hold_id": hold_id, "body": body}, effect=effect)


async def move_points(conn: asyncpg.Connection, tenant_id: str, body: p.MoveIn,
                      now: datetime) -> Outcome:
    async def effect(tx: asyncpg.Connection) -> tuple[int, p.Move]:
        row = await store.move_points(tx, tenant_id, body.move_id, body.from_member_id,
                                      body.to_member_id, body.points, body.reason,
                                      body.expires_after_days, now)
        return 201, p.Move(move_id=body.move_id, from_member_id=body.from_member_id,
                           to_member_id=body.to_member_id, points=body.points,
                           from_available=row["from_available"],
                           to_available=row["to_available"])

    return await run_once(conn, tenant_id=tenant_id, scope="points.moves", key=body.move_id,
                          request=body, effect=effect)


async def retire_points(conn: asyncpg.Connection, tenant_id: str, body: p.RetirementIn,
                        now: datetime) -> Outcome:
    async def effect(tx: asyncpg.Connection) -> tuple[int, p.Retirement]:
        available = await store.retire_points(tx, tenant_id, body.retirement_id,
                                              body.member_id, body.points, now)
        return 201, p.Retirement(retirement_id=body.retirement_id, member_id=body.member_id,
                                 points=body.points, available=available)

    return await run_once(conn, tenant_id=tenant_id, scope="points.retirements",
                          key=body.retirement_id, request=body, effect=effect)


async def debit(conn: asyncpg.Connection, tenant_id: str, body: p.DebitIn,
                now: datetime) -> Outcome:
    async def effect(tx: asyncpg.Connection) -> tuple[int, p.Debit]:
        available = await store.debit(tx, tenant_id, body.debit_id, body.member_id,
                                      body.points, body.reason, now)
        return 201, p.Debit(debit_id=body.debit_id, member_id=body.member_id,
                            points=body.points, available=available)

    return await run_once(conn, tenant_id=tenant_id, scope="points.debits", key=body.debit_id,
                          request=body, effect=effect)


# --- grants --------------------------------------------------------------------------------

async def grant(conn: asyncpg.Connection, tenant_id: str, key_id: str | None, body: p.GrantIn,
                now: datetime) -> Outcome:
    for index, item in enumerate(body.items):
        if item.expires_at is not None:
            field = f"items[{index}].expires_at"
            if item.expires_at.tzinfo is None:
                raise ValidationFailed("times need a time zone offset (RFC 3339)", field=field)
            if item.expires_at <= now:
                raise ValidationFailed("expires_at must be in the future", field=field)

    async def effect(tx: asyncpg.Connection) -> tuple[int, p.Grant]:
        row = await store.apply_grant(tx, tenant_id, body.grant_id, key_id, body.reason,
                                      body.items, GRANT_DEFAULT_EXPIRY_DAYS, now)
        return 201, p.Grant(grant_id=body.grant_id, item_count=row["item_count"],
                            total_points=row["total_points"])

    return await run_once(conn, tenant_id=tenant_id, scope="points.grants", key=body.grant_id,
                          request=body, effect=effect)


# --- reads ---------------------------------------------------------------------------------

async def member(conn: asyncpg.Connection, tenant_id: str, member_id: str,
                 now: datetime) -> p.Member:
    row = await store.member(conn, tenant_id, member_id, now)
    if row is None:  # never seen: nothing earned yet
        return p.Member(member_id=member_id, available=0, held=0, lifetime_earned=0, spent=0,
                        expired=0, reversed=0, spend_cents=0, earn_multiplier=1.0, expiring=[])
    soon = await store.expiring(conn, tenant_id, member_id, now, EXPIRING_SHOWN)
    return p.Member(**dict(row), expiring=[p.Expiring(points=r["points"],
                                                      expires_at=r["expires_at"]) for r in soon])


def encode_cursor(transfer_id: int) -> str:
    return base64.urlsafe_b64encode(str(transfer_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed("invalid cursor", field="cursor") from None
    if value <= 0:
        raise ValidationFailed("invalid cursor", field="cursor")
    return value


def _change(row: asyncpg.Record, account: str) -> int:
    if row["to_account"] == account:
        return int(row["amount"])
    if row["from_account"] == account:
        return -int(row["amount"])
    return 0


async def entries(conn: asyncpg.Connection, tenant_id: str, member_id: str,
                  cursor: str | None, limit: int) -> p.EntryPage:
    before = decode_cursor(cursor) if cursor else None
    rows = await store.entries(conn, tenant_id, member_id, before, limit + 1)
    page = rows[:limit]
    items = [p.Entry(entry_id=str(r["transfer_id"]), kind=r["kind"],
                     points=_change(r, "available"), held_change=_change(r, "held"),
                     balance_after=r["available_after"], held_after=r["held_after"],
                     ref=r["ref"], at=r["at"]) for r in page]
    next_cursor = encode_cursor(page[-1]["transfer_id"]) if len(rows) > limit else None
    return p.EntryPage(items=items, next_cursor=next_cursor)


async def ledger_check(conn: asyncpg.Connection, tenant_id: str | None) -> p.LedgerCheck:
    rows = await store.ledger_problems(conn, tenant_id)
    problems = [p.LedgerProblem(tenant_id=r["tenant_id"], member_id=r["member_id"],
                                problem=r["problem"], detail=r["detail"]) for r in rows]
    return p.LedgerCheck(ok=not problems, problems=problems)
