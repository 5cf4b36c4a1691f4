"""Redemptions: hold points, reserve stock, capture; or release everything.

Each redemption is a row that moves through states with compare-and-set updates, and every
step is idempotent (the hold id is derived from the redemption id, points replays holds,
captures and refunds), so the request, a replay of it and the worker can all drive the same
redemption forward after a crash, and it ends either completed or with no charge and no stock
taken. The hold's time-out in the points service is the last line of defence.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import cast

from proto.events import RedemptionCancelled, RedemptionCompleted
from proto.rewards import Redemption, RedemptionIn, RedemptionList, RedemptionStatus
from services.rewards.catalog import rules, store
from services.rewards.catalog.catalog import perk_rules
from services.rewards.catalog.stock import StockMirror
from services.rewards.catalog.store import PerkRow, RedemptionRow
from services.rewards.ids import digest
from services.rewards.points_client import PointsAnswer, PointsClient
from services.rewards.recovery import (
    HOLD_EXPIRES_S,
    MAX_STEPS,
    RECOVERY_BATCH,
    STUCK_AFTER_S,
    Forgotten,
    Moved,
)
from services.rewards.refusals import refused
from services.rewards.wallet import wallet
from services.runtime.db import Pool
from services.runtime.errors import (
    Conflict,
    FuliError,
    IdempotencyConflict,
    NotFound,
)
from services.runtime.idempotency import Outcome, fingerprint
from services.runtime.outbox import emit
from services.runtime.pagination import before_cursor, newest_first_cursor

log = logging.getLogger("fuli.rewards.redemptions")

SCOPE = "rewards.redemptions"
FINAL = ("completed", "pending_fulfilment", "cancelled", "failed", "cancelling")


def hold_id_for(redemption_id: str) -> str:
    return "rdm:" + digest(redemption_id)


def refund_id_for(redemption_id: str) -> str:
    return "rdmc:" + digest(redemption_id)


def view(row: RedemptionRow, status: str, coupon_ids: list[str]) -> Redemption:
    # Callers pass the status to show; the cast only narrows the type to the wire's.
    return Redemption(redemption_id=row.redemption_id, member_id=row.member_id, sku=row.sku,
                      quantity=row.quantity, points=row.points,
                      status=cast(RedemptionStatus, status), codes=list(row.codes),
                      coupon_ids=coupon_ids)


def points_refusal(answer: PointsAnswer, points: int) -> Conflict:
    if answer.short_of_points:
        return refused("insufficient_points",
                       available=answer.error_details.get("available", 0), requested=points)
    return refused("redemption_failed", reason=answer.error_code)


class Redemptions:
    def __init__(self, pool: Pool, points: PointsClient, stock: StockMirror) -> None:
        self.pool = pool
        self.points = points
        self.stock = stock

    # --- the request -----------------------------------------------------------------------

    async def redeem(self, tenant_id: str, body: RedemptionIn, now: datetime) -> Outcome:
        """Redeems once per ``redemption_id``. A refusal before anything moved (the perk's
        window, tier, allowance or a sold-out mirror; too few points for the hold) stores
        nothing: the same request again is evaluated again. A refusal after the points were
        held (and given back) is the redemption's final answer."""
        for _ in range(MAX_STEPS):
            try:
                return await self._redeem(tenant_id, body, now)
            except Forgotten:  # a concurrent try with this id was refused: evaluate it again
                continue
        raise Conflict("the redemption is still in progress; retry", code="in_progress")

    async def _redeem(self, tenant_id: str, body: RedemptionIn, now: datetime) -> Outcome:
        request_print = fingerprint(SCOPE, body.redemption_id, body)
        start = await store.redemption_start(self.pool, tenant_id, body.redemption_id, body.sku,
                                             body.member_id)
        if start.existing is not None:
            return await self._replay(tenant_id, start.existing, request_print)
        perk = start.perk
        if perk is None:
            raise NotFound(f"no perk {body.sku!r}", code="unknown_sku", sku=body.sku)
        await self._precheck(tenant_id, body, perk, start.member_tier, now)
        row = await store.insert_redemption(
            self.pool, tenant_id, body.redemption_id, body.member_id, body.sku,
            body.quantity, perk.cost_points * body.quantity, request_print,
            hold_id_for(body.redemption_id), "pending", None)
        if row is None:
            # A concurrent request with this id got there first.
            existing = await store.redemption(self.pool, tenant_id, body.redemption_id)
            if existing is None:
                raise Forgotten
            return await self._replay(tenant_id, existing, request_print)
        return await self.drive(tenant_id, body.redemption_id, replayed=False, row=row)

    async def _precheck(self, tenant_id: str, body: RedemptionIn, perk: PerkRow,
                        tier: str | None, now: datetime) -> None:
        rules.check_redeemable(perk_rules(perk), tier, body.quantity, now)
        left = await self.stock.left(tenant_id, body.sku, self.pool)
        if left is not None and left < body.quantity:  # fast answer once sold out
            raise refused("out_of_stock", stock=left, requested=body.quantity)

    async def _replay(self, tenant_id: str, row: RedemptionRow,
                      request_print: bytes) -> Outcome:
        if row.fingerprint != request_print:
            raise IdempotencyConflict.for_key(row.redemption_id)
        return await self.drive(tenant_id, row.redemption_id, replayed=True, row=row)

    # --- driving a redemption to its end ---------------------------------------------------

    async def drive(self, tenant_id: str, redemption_id: str, *, replayed: bool = False,
                    abandon_pending: bool = False, row: RedemptionRow | None = None) -> Outcome:
        """Moves the redemption on until it has its answer. ``row`` is the redemption as last
        read or written; a step that wrote it hands it on, the others have it read again."""
        for _ in range(MAX_STEPS):
            if row is None:
                row = await store.redemption(self.pool, tenant_id, redemption_id)
                if row is None:
                    raise Forgotten
            if row.status in FINAL and row.outcome_status is not None:
                assert row.outcome_body is not None
                return Outcome(row.outcome_status, row.outcome_body, replayed)
            step, row = row, None
            if step.status == "pending":
                if abandon_pending:
                    row = await store.move_redemption(
                        self.pool, tenant_id, redemption_id, "pending", "releasing",
                        outcome=Outcome.refused(refused("redemption_failed",
                                                        reason="timed out")))
                else:
                    row = await self._hold_and_reserve(tenant_id, step)
            elif step.status == "reserved":
                row = await self._capture(tenant_id, step)
            elif step.status == "releasing":
                await self._release(tenant_id, step)
            elif step.status == "cancelling":
                await self._finish_cancel(tenant_id, step)
        raise Conflict("the redemption is still in progress; retry", code="in_progress")

    async def _hold_and_reserve(self, tenant_id: str,
                                row: RedemptionRow) -> RedemptionRow | None:
        answer = await self.points.hold(tenant_id, row.hold_id, row.member_id, row.points,
                                        f"redemption of {row.sku}", HOLD_EXPIRES_S)
        if answer.status_code != 201:  # nothing was held: forget the redemption
            if await store.forget_redemption(self.pool, tenant_id, row.redemption_id):
                raise points_refusal(answer, row.points)
            return None
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                taken = await wallet.reserve(conn, tenant_id, row.sku, row.quantity,
                                             row.member_id, redemption_id=row.redemption_id)
                reserved = await store.move_redemption(conn, tenant_id, row.redemption_id,
                                                       "pending", "reserved", codes=taken.codes)
                if reserved is None:
                    raise Moved
        except Conflict as refusal:
            return await store.move_redemption(self.pool, tenant_id, row.redemption_id,
                                               "pending", "releasing",
                                               outcome=Outcome.refused(refusal))
        except Moved:
            return None
        await self.stock.publish(tenant_id, row.sku, taken.stock)
        return reserved

    async def _capture(self, tenant_id: str, row: RedemptionRow) -> RedemptionRow | None:
        answer = await self.points.capture(tenant_id, row.hold_id)
        if answer.status_code == 200:
            return await self._complete(tenant_id, row)
        # The hold expired or was voided: put everything back, nothing was charged.
        async with self.pool.acquire() as conn, conn.transaction():
            moved = await store.move_redemption(
                conn, tenant_id, row.redemption_id, "reserved", "releasing",
                outcome=Outcome.refused(refused("redemption_failed", reason=answer.error_code)))
            if moved:
                level = await wallet.put_back(conn, tenant_id, row.sku, row.quantity,
                                              row.member_id, row.redemption_id, free_codes=True)
        if moved:
            await self.stock.publish(tenant_id, row.sku, level)
        return None

    async def _complete(self, tenant_id: str, row: RedemptionRow) -> RedemptionRow | None:
        try:
            return await self._write_completion(tenant_id, row)
        except Moved:
            return None

    async def _write_completion(self, tenant_id: str, row: RedemptionRow) -> RedemptionRow:
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            perk = await store.perk(conn, tenant_id, row.sku)
            assert perk is not None
            coupon_ids: list[str] = []
            if row.codes:
                coupon_ids = await wallet.give_coupons(
                    conn, tenant_id, row.sku, [(row.member_id, code) for code in row.codes],
                    expires_at=now + timedelta(days=perk.coupon_valid_days),
                    source="redemption", ref=row.redemption_id)
            status = "completed" if perk.fulfilment == "code" else "pending_fulfilment"
            outcome = Outcome.of(201, view(row, status, coupon_ids))
            moved = await store.move_redemption(conn, tenant_id, row.redemption_id, "reserved",
                                                status, outcome=outcome)
            if moved is None:
                raise Moved  # rolls back the coupons: another driver completed it
            completed = RedemptionCompleted(
                member_id=row.member_id, redemption_id=row.redemption_id, sku=row.sku,
                quantity=row.quantity, points=row.points, completed_at=now)
            await emit(conn,
                       service="rewards", tenant_id=tenant_id, events=[completed])
        return moved

    async def _release(self, tenant_id: str, row: RedemptionRow) -> None:
        await self.points.void(tenant_id, row.hold_id)  # voided, expired or never placed
        await store.move_redemption(self.pool, tenant_id, row.redemption_id, "releasing",
                                    "failed")

    # --- after completion ------------------------------------------------------------------

    async def cancel(self, tenant_id: str, redemption_id: str) -> Redemption:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await store.redemption(conn, tenant_id, redemption_id, lock=True)
            if row is None:
                raise NotFound(f"no redemption {redemption_id!r}", code="unknown_redemption")
            if row.status in ("completed", "pending_fulfilment"):
                states = await wallet.revoke_coupons(conn, tenant_id, redemption_id)
                if "used" in states or "transferred" in states:
                    raise Conflict("a coupon of this redemption was already used or given away",
                                   code="coupon_used")
                await store.move_redemption(conn, tenant_id, redemption_id, row.status,
                                            "cancelling")
            elif row.status not in ("cancelling", "cancelled"):
                raise Conflict(f"a {row.status} redemption cannot be cancelled",
                               code="not_cancellable", status=row.status)
        for _ in range(MAX_STEPS):
            row = await store.redemption(self.pool, tenant_id, redemption_id)
            assert row is not None
            if row.status == "cancelled":
                return view(row, "cancelled", [])
            await self._finish_cancel(tenant_id, row)
        raise Conflict("the cancellation is still in progress; retry", code="in_progress")

    async def _finish_cancel(self, tenant_id: str, row: RedemptionRow) -> None:
        answer = await self.points.refund(tenant_id, row.hold_id,
                                          refund_id_for(row.redemption_id))
        if answer.status_code not in (201, 409):
            raise Conflict("points could not be refunded", code="refund_failed",
                           points_status=answer.status_code)
        if answer.status_code == 409 and answer.error_code != "already_refunded":
            raise Conflict("points could not be refunded", code="refund_failed",
                           reason=answer.error_code)
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            if not await store.move_redemption(conn, tenant_id, row.redemption_id,
                                               "cancelling", "cancelled"):
                return
            level = await wallet.put_back(conn, tenant_id, row.sku, row.quantity, row.member_id,
                                          row.redemption_id, free_codes=False)
            cancelled = RedemptionCancelled(
                member_id=row.member_id, redemption_id=row.redemption_id, sku=row.sku,
                quantity=row.quantity, points=row.points, cancelled_at=now)
            await emit(conn,
                       service="rewards", tenant_id=tenant_id, events=[cancelled])
        await self.stock.publish(tenant_id, row.sku, level)

    async def fulfil(self, tenant_id: str, redemption_id: str) -> Redemption:
        row = await store.redemption(self.pool, tenant_id, redemption_id)
        if row is None:
            raise NotFound(f"no redemption {redemption_id!r}", code="unknown_redemption")
        if row.status == "pending_fulfilment":
            await store.move_redemption(self.pool, tenant_id, redemption_id,
                                        "pending_fulfilment", "completed")
        elif row.status != "completed":
            raise Conflict(f"a {row.status} redemption cannot be fulfilled",
                           code="not_fulfillable", status=row.status)
        row = await store.redemption(self.pool, tenant_id, redemption_id)
        assert row is not None
        return view(row, row.status, [])

    # --- reading ---------------------------------------------------------------------------

    async def member_redemptions(self, tenant_id: str, member_id: str, limit: int,
                                 cursor: str | None) -> RedemptionList:
        """The member's completed and cancelled redemptions, newest first."""
        before = before_cursor(cursor)
        rows = await store.member_redemptions(self.pool, tenant_id, member_id, before,
                                              limit + 1)
        page = rows[:limit]
        items = [Redemption(
            redemption_id=row.redemption_id, member_id=row.member_id, sku=row.sku,
            quantity=row.quantity, points=row.points,
            status=rules.shown_status(row.status), codes=list(row.codes)) for row in page]
        next_cursor = (newest_first_cursor(page[-1].created_at, page[-1].redemption_id)
                       if len(rows) > limit else None)
        return RedemptionList(items=items, next_cursor=next_cursor)

    # --- the worker ------------------------------------------------------------------------

    async def recover(self, now: datetime) -> None:
        """Drive redemptions untouched for a while to their end. One still waiting for its hold
        after the hold's own lifetime is given up (and its hold voided if it exists)."""
        stuck = await store.unfinished_redemptions(
            self.pool, now - timedelta(seconds=STUCK_AFTER_S), RECOVERY_BATCH)
        for key in stuck:
            abandon = (now - key.created_at).total_seconds() > HOLD_EXPIRES_S
            try:
                if key.status == "cancelling":
                    await self.cancel(key.tenant_id, key.redemption_id)
                else:
                    await self.drive(key.tenant_id, key.redemption_id, abandon_pending=abandon)
            except Forgotten:  # refused by its request meanwhile: nothing to finish
                pass
            except FuliError as exc:  # the points service is down, or a refund refused
                log.warning("redemption %s not finished yet: %s", key.redemption_id, exc)
