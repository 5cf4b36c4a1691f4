"""The ledger service: every points operation, with its validation, its idempotency and the
shape of its answer around one call of the store (one SQL function, one round trip).

``Ledger`` is built once per app (in the service's components) and serves the HTTP API; the
command line builds one of its own (``standalone``). Earning from the bus runs in the consumer's
transaction instead (``earn_from_bus``). The worker's sweeps are single SQL functions, which the
actors call through the store."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from proto import points as p
from services.points import rules, store
from services.points.group_commit import EventCommitter
from services.runtime.db import Conn, Pool, init_connection, once_more_on_fault
from services.runtime.errors import (
    FuliError,
    IdempotencyConflict,
    ValidationFailed,
    raised_refusal,
    refusal,
)
from services.runtime.idempotency import (
    Claim,
    ClaimingEffect,
    Outcome,
    fingerprint,
    replay_if_done,
    run_claiming,
    store_answers,
    stored_answers,
)
from services.runtime.pagination import decode_int_cursor, encode_cursor
from services.runtime.read_groups import ReadGroups
from services.runtime.settings import Settings
from services.runtime.tiers_client import SegmentTarget, TiersClient, TiersUnavailable
from services.runtime.times import happened

EVENTS_SCOPE = "points.events"
GRANTS_SCOPE = "points.grants"
HOLDS_SCOPE = "points.holds"  # a capture's and a void's: HOLDS_SCOPE + ".capture" or ".void"
EVENT_RECORDED = 201  # an event's answer, first time or replayed; refusals are raised
GRANT_DEFAULT_EXPIRY_DAYS = 365
EXPIRING_SHOWN = 5

_event_result = msgspec.json.Decoder(p.EventResult)
_hold = msgspec.json.Decoder(p.Hold)
_grant = msgspec.json.Decoder(p.Grant)


def event_fingerprint(event: p.EventIn) -> bytes:
    return fingerprint(EVENTS_SCOPE, event.event_id, event)


def _event_refusal(code: str, event: p.EventIn, *, in_batch: bool) -> FuliError:
    """The error for a refusal code of points.record_event, worded as the API always has."""
    if code == "unknown_action":
        return refusal(code, f"unknown or disabled action {event.action!r}", {"field": "action"})
    if code == "amount_required":
        return ValidationFailed(f"the rule of action {event.action!r} pays per unit of amount:"
                                " amount_cents is required", code=code, field="amount_cents")
    if in_batch:  # the item names its event id already
        return refusal(code, "this event_id was already used with a different request")
    return IdempotencyConflict.for_key(event.event_id)


def _batch_error(event_id: str, exc: FuliError) -> p.BatchItem:
    return p.BatchItem(event_id=event_id, status_code=exc.status_code,
                       error=p.BatchItemError(code=exc.code, message=exc.message))


def _item_answer(answer: Outcome | FuliError | None,
                 result: msgspec.json.Decoder[Any]) -> dict[str, Any]:
    """A batch item's status code, and its result (by ``result``) or error, as its own request
    would have answered them."""
    assert answer is not None
    if isinstance(answer, FuliError):
        return {"status_code": answer.status_code, "error": answer.envelope().error}
    return {"status_code": answer.status_code, "result": result.decode(answer.body),
            "replayed": answer.replayed}


def _claimed_answers(rows: Sequence[store.BatchItemRow | store.AppliedGrantItem],
                     claims: Sequence[Claim],
                     answer: Callable[[int], Outcome]) -> list[Outcome | FuliError | None]:
    """Each item's answer as a batch function left it: ``answer(i)`` for one that ran, its
    refusal, or None for one whose id was taken (its stored answer is read next)."""
    answers: list[Outcome | FuliError | None] = []
    for index, row in enumerate(rows):
        if row.outcome == "done":
            answers.append(answer(index))
        elif row.outcome == "refused":
            assert isinstance(row, store.BatchItemRow)
            answers.append(raised_refusal(row.refusal or "", row.refusal_hint,
                                          row.refusal_details))
        else:
            answers.append(None)
    assert len(answers) == len(claims)
    return answers


async def _settle_answers(conn: Conn, claims: Sequence[Claim],
                          answers: list[Outcome | FuliError | None]) -> list[Outcome | FuliError]:
    """Stores the answers of the items that ran and reads those of the items whose ids were
    taken, in the batch's transaction."""
    pairs = list(zip(claims, answers, strict=True))
    await store_answers(conn, [(claim, answer) for claim, answer in pairs
                               if isinstance(answer, Outcome)])
    replays = iter(await stored_answers(conn, [claim for claim, answer in pairs
                                               if answer is None]))
    return [next(replays) if answer is None else answer for answer in answers]


def _entry(row: store.TransferRow) -> p.Entry:
    return p.Entry(
        entry_id=str(row.transfer_id), kind=row.kind,
        points=rules.account_change(row.from_account, row.to_account, row.amount, "available"),
        held_change=rules.account_change(row.from_account, row.to_account, row.amount, "held"),
        balance_after=row.available_after, held_after=row.held_after, ref=row.ref, at=row.at)


def _occurred_at(event: p.EventIn, now: datetime) -> datetime:
    return happened(event.occurred_at, now, "occurred_at")


async def earn_from_bus(conn: Conn, tenant_id: str, event: p.EventIn, now: datetime) -> bool:
    """Record an earning event in the caller's transaction (a bus consumer's). False if it was
    refused, as an action without an enabled rule is: it earns nothing then."""
    recorded = await store.call_record_event(conn, tenant_id, event, event_fingerprint(event),
                                             _occurred_at(event, now), now)
    return recorded.refused is None


# --- the service ---------------------------------------------------------------------------

class Ledger:
    """Every operation of the HTTP API and the command line, each on a connection of its own from
    the pool; earning events go through the group committer."""

    def __init__(self, pool: Pool, committer: EventCommitter,
                 tiers: TiersClient | None = None) -> None:
        self.pool = pool
        self.committer = committer
        # Reads segments for grants to one; None (the command line) grants items only.
        self.tiers = tiers
        self._members = ReadGroups(self._read_members)

    async def _run_once(self, tenant_id: str, scope: str, key: str, request: Any,
                        effect: ClaimingEffect) -> Outcome:
        """Each operation is one ledger function, called by the statement claiming its id."""
        async def attempt() -> Outcome:
            async with self.pool.acquire() as conn:
                return await run_claiming(conn, tenant_id=tenant_id, scope=scope, key=key,
                                          request=request, effect=effect)

        # Safe to repeat: the idempotency record commits with the effect, in one transaction.
        return await once_more_on_fault(attempt, f"{scope} {key}")

    # --- rules -----------------------------------------------------------------------------

    async def list_rules(self, tenant_id: str) -> p.RuleList:
        return p.RuleList(items=await store.select_rules(self.pool, tenant_id))

    async def put_rule(self, tenant_id: str, action: str, rule: p.RuleIn) -> p.Rule:
        rules.validate_rule(rule)
        await store.upsert_rule(self.pool, tenant_id, action, rule, rules.stored_limits(rule))
        return next(row for row in await store.select_rules(self.pool, tenant_id)
                    if row.action == action)

    async def set_multiplier(self, tenant_id: str, member_id: str, multiplier: float,
                             at: datetime) -> None:
        """The member's earn multiplier from ``at`` on, unless a newer one was set already."""
        await store.upsert_multipliers(self.pool, tenant_id, [member_id], multiplier, at)

    # --- events ----------------------------------------------------------------------------

    async def record_event(self, tenant_id: str, event: p.EventIn, now: datetime) -> Outcome:
        recorded = await self.committer.record(tenant_id, event, event_fingerprint(event),
                                               _occurred_at(event, now), now)
        if recorded.refused is not None:
            raise _event_refusal(recorded.refused, event, in_batch=False)
        assert recorded.body is not None
        return Outcome(EVENT_RECORDED, recorded.body, recorded.replayed)

    async def record_batch(self, tenant_id: str, batch: p.EventBatchIn,
                           now: datetime) -> p.EventBatchResult:
        items: list[p.BatchItem | None] = [None] * len(batch.events)
        valid: list[int] = []
        occurred: list[datetime] = []
        for index, event in enumerate(batch.events):
            try:
                occurred.append(_occurred_at(event, now))
                valid.append(index)
            except ValidationFailed as exc:
                items[index] = _batch_error(event.event_id, exc)
        events = [batch.events[i] for i in valid]
        recorded = await store.call_record_events(
            self.pool, tenant_id, events, [event_fingerprint(e) for e in events], occurred,
            now) if events else []
        for index, event, outcome in zip(valid, events, recorded, strict=True):
            if outcome.refused is not None:
                items[index] = _batch_error(
                    event.event_id, _event_refusal(outcome.refused, event, in_batch=True))
            else:
                assert outcome.body is not None
                items[index] = p.BatchItem(event_id=event.event_id, status_code=EVENT_RECORDED,
                                           result=_event_result.decode(outcome.body))
        assert all(item is not None for item in items)
        return p.EventBatchResult(items=[item for item in items if item is not None])

    async def reverse_event(self, tenant_id: str, event_id: str, body: p.ReversalIn,
                            now: datetime) -> Outcome:
        async def effect(tx: Conn, claim: Claim) -> tuple[int, p.Reversal]:
            row = await store.call_reverse_event(tx, claim, body.reversal_id, event_id,
                                                 body.amount_cents, now)
            return 201, p.Reversal(
                reversal_id=body.reversal_id, event_id=event_id, member_id=row.member_id,
                refunded_cents=row.refunded_cents, points=row.points,
                clawed_back=row.clawed_back, shortfall=row.shortfall, balance=row.available)

        return await self._run_once(tenant_id, "points.reversals", body.reversal_id,
                                    {"event_id": event_id, "body": body}, effect)

    # --- holds, debits, moves, grants ------------------------------------------------------

    async def place_hold(self, tenant_id: str, body: p.HoldIn, now: datetime) -> Outcome:
        async def effect(tx: Conn, claim: Claim) -> tuple[int, p.Hold]:
            row = await store.call_place_hold(tx, claim, body.hold_id, body.member_id,
                                              body.points, body.reason, body.expires_in_s, now)
            return 201, p.Hold(hold_id=body.hold_id, member_id=body.member_id,
                               points=body.points, status="pending", expires_at=row.expires_at,
                               available=row.available, held=row.held)

        return await self._run_once(tenant_id, HOLDS_SCOPE, body.hold_id, body, effect)

    async def settle_hold(self, tenant_id: str, hold_id: str, action: str,
                          body: p.SettleIn, now: datetime) -> Outcome:
        """``action`` is capture or void."""
        async def effect(tx: Conn, claim: Claim) -> tuple[int, p.Hold]:
            row = await store.call_settle_hold(tx, claim, hold_id, action, now)
            return 200, p.Hold(hold_id=hold_id, member_id=row.member_id, points=row.points,
                               status=row.status,
                               available=row.available, held=row.held)

        return await self._run_once(tenant_id, f"{HOLDS_SCOPE}.{action}", hold_id, body,
                                    effect)

    async def place_holds(self, tenant_id: str, batch: p.HoldBatchIn,
                          now: datetime) -> p.HoldBatchResult:
        """Each hold placed, replayed or refused as ``place_hold`` would, in one transaction."""
        claims = [Claim(tenant_id, HOLDS_SCOPE, hold.hold_id,
                        fingerprint(HOLDS_SCOPE, hold.hold_id, hold)) for hold in batch.holds]

        async def attempt() -> list[Outcome | FuliError]:
            async with self.pool.acquire() as conn, conn.transaction():
                rows = await store.call_place_holds(conn, tenant_id, batch.holds,
                                                    [claim.fingerprint for claim in claims], now)

                def placed(index: int) -> Outcome:
                    hold, row = batch.holds[index], rows[index]
                    assert row.available is not None and row.held is not None
                    return Outcome.of(201, p.Hold(
                        hold_id=hold.hold_id, member_id=hold.member_id, points=hold.points,
                        status="pending", expires_at=row.expires_at, available=row.available,
                        held=row.held))

                return await _settle_answers(conn, claims, _claimed_answers(rows, claims, placed))

        answers = await once_more_on_fault(attempt, f"{HOLDS_SCOPE} batch")
        return p.HoldBatchResult(items=[
            p.HoldBatchItem(hold_id=hold.hold_id, **_item_answer(answer, _hold))
            for hold, answer in zip(batch.holds, answers, strict=True)])

    async def settle_holds(self, tenant_id: str, batch: p.SettlementBatchIn,
                           now: datetime) -> p.HoldBatchResult:
        """Each capture or void done, replayed or refused as ``settle_hold`` would, in one
        transaction."""
        items = batch.settlements
        claims = [Claim(tenant_id, f"{HOLDS_SCOPE}.{item.action}", item.hold_id,
                        fingerprint(f"{HOLDS_SCOPE}.{item.action}", item.hold_id,
                                    p.SettleIn(note=item.note))) for item in items]

        async def attempt() -> list[Outcome | FuliError]:
            async with self.pool.acquire() as conn, conn.transaction():
                rows = await store.call_settle_holds(
                    conn, tenant_id, [item.hold_id for item in items],
                    [item.action for item in items], [claim.fingerprint for claim in claims],
                    now)

                def settled(index: int) -> Outcome:
                    row = rows[index]
                    assert (row.member_id is not None and row.points is not None
                            and row.status is not None and row.available is not None
                            and row.held is not None)
                    return Outcome.of(200, p.Hold(
                        hold_id=items[index].hold_id, member_id=row.member_id,
                        points=row.points, status=row.status, available=row.available,
                        held=row.held))

                return await _settle_answers(conn, claims,
                                             _claimed_answers(rows, claims, settled))

        answers = await once_more_on_fault(attempt, f"{HOLDS_SCOPE} settlements")
        return p.HoldBatchResult(items=[
            p.HoldBatchItem(hold_id=item.hold_id, **_item_answer(answer, _hold))
            for item, answer in zip(items, answers, strict=True)])

    async def refund_hold(self, tenant_id: str, hold_id: str, body: p.RefundIn,
                          now: datetime) -> Outcome:
        async def effect(tx: Conn, claim: Claim) -> tuple[int, p.Refund]:
            row = await store.call_refund_hold(tx, claim, hold_id, now)
            return 201, p.Refund(refund_id=body.refund_id, hold_id=hold_id,
                                 member_id=row.member_id, points=row.points,
                                 available=row.available)

        return await self._run_once(tenant_id, "points.refunds", body.refund_id,
                                    {"hold_id": hold_id, "body": body}, effect)

    async def debit(self, tenant_id: str, body: p.DebitIn, now: datetime) -> Outcome:
        async def effect(tx: Conn, claim: Claim) -> tuple[int, p.Debit]:
            available = await store.call_debit(tx, claim, body.debit_id, body.member_id,
                                               body.points, body.reason, now)
            return 201, p.Debit(debit_id=body.debit_id, member_id=body.member_id,
                                points=body.points, available=available)

        return await self._run_once(tenant_id, "points.debits", body.debit_id, body, effect)

    async def move_points(self, tenant_id: str, body: p.MoveIn, now: datetime) -> Outcome:
        async def effect(tx: Conn, claim: Claim) -> tuple[int, p.Move]:
            row = await store.call_move_points(tx, claim, body.move_id, body.from_member_id,
                                               body.to_member_id, body.points, body.reason,
                                               body.expires_after_days, now)
            return 201, p.Move(move_id=body.move_id, from_member_id=body.from_member_id,
                               to_member_id=body.to_member_id, points=body.points,
                               from_available=row.from_available,
                               to_available=row.to_available)

        return await self._run_once(tenant_id, "points.moves", body.move_id, body, effect)

    async def retire_points(self, tenant_id: str, body: p.RetirementIn,
                            now: datetime) -> Outcome:
        async def effect(tx: Conn, claim: Claim) -> tuple[int, p.Retirement]:
            available = await store.call_retire_points(tx, claim, body.retirement_id,
                                                       body.member_id, body.points, now)
            return 201, p.Retirement(retirement_id=body.retirement_id,
                                     member_id=body.member_id, points=body.points,
                                     available=available)

        return await self._run_once(tenant_id, "points.retirements", body.retirement_id, body,
                                    effect)

    async def grant(self, tenant_id: str, key_id: str | None, body: p.GrantIn,
                    now: datetime) -> Outcome:
        """A grant of items, or of ``points`` to every member of a tiers segment: its frozen
        list is read from the tiers service first (a repeated grant id answers without reading
        it again), then granted all or nothing like items, audited with the segment."""
        rules.check_grant_form(body, now)
        segment: SegmentTarget | None = None
        if body.segment_id is not None:
            assert body.points is not None
            async with self.pool.acquire() as conn:
                done = await replay_if_done(conn, tenant_id=tenant_id, scope=GRANTS_SCOPE,
                                            key=body.grant_id, request=body)
            if done is not None:
                return done
            if self.tiers is None:
                raise TiersUnavailable("grants to segments need the tiers service")
            segment = await self.tiers.segment(tenant_id, body.segment_id, p.MAX_GRANT_ITEMS)
            items = rules.segment_items(segment.member_ids, body.points, body.expires_at)
        else:
            assert body.items is not None
            items = body.items
            rules.check_grant_expiries(items, now)

        async def effect(tx: Conn, claim: Claim) -> tuple[int, p.Grant]:
            applied = await store.call_apply_grant(tx, claim, body.grant_id, key_id,
                                                   body.reason, items,
                                                   GRANT_DEFAULT_EXPIRY_DAYS, now)
            if segment is not None:
                await store.audit_grant_segment(tx, tenant_id, body.grant_id,
                                                segment.segment_id, segment.count,
                                                segment.computed_at)
            return 201, p.Grant(grant_id=body.grant_id, item_count=applied.item_count,
                                total_points=applied.total_points)

        return await self._run_once(tenant_id, GRANTS_SCOPE, body.grant_id, body, effect)

    async def grant_many(self, tenant_id: str, key_id: str | None, batch: p.GrantBatchIn,
                         now: datetime) -> p.GrantBatchResult:
        """Each grant of items made, replayed or refused as ``grant`` would, in one
        transaction."""
        if sum(len(grant.items) for grant in batch.grants) > p.MAX_GRANT_ITEMS:
            raise ValidationFailed(f"a batch grants at most {p.MAX_GRANT_ITEMS} items in all",
                                   field="grants")
        answers: list[Outcome | FuliError | None] = [None] * len(batch.grants)
        valid: list[int] = []
        for index, grant in enumerate(batch.grants):
            try:
                rules.check_grant_expiries(grant.items, now)
                valid.append(index)
            except ValidationFailed as exc:
                answers[index] = exc
        grants = [batch.grants[i] for i in valid]
        claims = [Claim(tenant_id, GRANTS_SCOPE, grant.grant_id, fingerprint(
            GRANTS_SCOPE, grant.grant_id,
            p.GrantIn(grant_id=grant.grant_id, reason=grant.reason, items=grant.items)))
            for grant in grants]

        async def attempt() -> list[Outcome | FuliError]:
            async with self.pool.acquire() as conn, conn.transaction():
                rows = await store.call_apply_grants(
                    conn, tenant_id, grants, [claim.fingerprint for claim in claims], key_id,
                    GRANT_DEFAULT_EXPIRY_DAYS, now)

                def granted(index: int) -> Outcome:
                    row = rows[index]
                    assert row.item_count is not None and row.total_points is not None
                    return Outcome.of(201, p.Grant(grant_id=grants[index].grant_id,
                                                   item_count=row.item_count,
                                                   total_points=row.total_points))

                return await _settle_answers(conn, claims,
                                             _claimed_answers(rows, claims, granted))

        for index, answer in zip(valid, await once_more_on_fault(attempt, "grants batch")
                                 if grants else [], strict=True):
            answers[index] = answer
        return p.GrantBatchResult(items=[
            p.GrantBatchItem(grant_id=grant.grant_id, **_item_answer(answer, _grant))
            for grant, answer in zip(batch.grants, answers, strict=True)])

    # --- reads -----------------------------------------------------------------------------

    async def member(self, tenant_id: str, member_id: str) -> p.Member:
        found = await self._members.read((tenant_id, member_id))
        if found is None:  # never seen: nothing earned yet
            return p.Member(member_id=member_id, available=0, held=0, lifetime_earned=0,
                            spent=0, expired=0, reversed=0, spend_cents=0,
                            earn_multiplier=1.0, expiring=[])
        row, soon = found
        return p.Member(**msgspec.structs.asdict(row), expiring=soon)

    async def _read_members(self, keys: Sequence[store.MemberKey]
                            ) -> dict[store.MemberKey, tuple[store.MemberRow, list[p.Expiring]]]:
        return await store.select_members(self.pool, keys, datetime.now(UTC), EXPIRING_SHOWN)

    async def entries(self, tenant_id: str, member_id: str, cursor: str | None,
                      limit: int) -> p.EntryPage:
        """Newest first; the cursor is the last transfer id of the previous page."""
        before = decode_int_cursor(cursor, minimum=1) if cursor else None
        rows = await store.select_transfers(self.pool, tenant_id, member_id, before, limit + 1)
        page = rows[:limit]
        next_cursor = encode_cursor(page[-1].transfer_id) if len(rows) > limit else None
        return p.EntryPage(items=[_entry(row) for row in page], next_cursor=next_cursor)

    async def check(self, tenant_id: str | None) -> p.LedgerCheck:
        """The ledger's invariants, for one tenant or all (None)."""
        problems = await store.call_ledger_problems(self.pool, tenant_id)
        return p.LedgerCheck(ok=not problems, problems=problems)


@contextlib.asynccontextmanager
async def standalone(settings: Settings) -> AsyncIterator[Ledger]:
    """A ledger of its own for a command-line run: one connection (set up as the command line's
    connections are), events one at a time."""
    async with asyncpg.create_pool(settings.database_url, min_size=1, max_size=1,
                                   init=init_connection) as pool:
        yield Ledger(pool, EventCommitter(pool, max_group=1, max_in_flight=1))
