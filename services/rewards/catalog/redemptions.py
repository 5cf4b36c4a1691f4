"""Redemptions: hold points, reserve stock, capture; or release everything.

Each redemption is a row that moves through states with compare-and-set updates, and every
step is idempotent (the hold id is derived from the redemption id, points replays holds,
captures and refunds), so the request, a replay of it and the worker can all drive the same
redemption forward after a crash, and it ends either completed or with no charge and no stock
taken. The hold's time-out in the points service is the last line of defence.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from proto.common import ErrorBody, ErrorEnvelope
from proto.events import RedemptionCancelled, RedemptionCompleted
from proto.rewards import Redemption, RedemptionIn
from services.rewards import domain, store
from services.rewards.points_client import PointsAnswer, PointsClient
from services.rewards.stock import StockMirror
from services.runtime.errors import Conflict, IdempotencyConflict, NotFound
from services.runtime.idempotency import Outcome, fingerprint
from services.runtime.outbox import emit
from services.runtime.resources import Resources

SCOPE = "rewards.redemptions"
HOLD_EXPIRES_S = 120
FINAL = ("completed", "pending_fulfilment", "cancelled", "failed", "cancelling")
MAX_STEPS = 8

_encoder = msgspec.json.Encoder()

MESSAGES = {
    "insufficient_points": "not enough points for this redemption",
    "out_of_stock": "the perk is out of stock",
    "limit_reached": "the member reached this perk's per-member limit",
    "not_eligible": "the member's tier may not redeem this perk",
    "not_available": "the perk is not available now",
    "redemption_failed": "the redemption could not be completed; nothing was charged",
    "draw_failed": "the draw could not be completed; nothing was charged",
    "no_ticket": "the member has no draw ticket for this box",
}


def refusal(code: str, **details: Any) -> tuple[int, bytes]:
    body = ErrorEnvelope(error=ErrorBody(code=code, message=MESSAGES.get(code, code),
                                         details=details))
    return 409, _encoder.encode(body)


def hold_id_for(redemption_id: str) -> str:
    return "rdm:" + hashlib.sha256(redemption_id.encode()).hexdigest()[:40]


def refund_id_for(redemption_id: str) -> str:
    return "rdmc:" + hashlib.sha256(redemption_id.encode()).hexdigest()[:40]


def view(row: asyncpg.Record, status: str, coupon_ids: list[str]) -> Redemption:
    return Redemption(redemption_id=row["redemption_id"], member_id=row["member_id"],
                      sku=row["sku"], quantity=row["quantity"], points=row["points"],
                      status=status, codes=list(row["codes"]), coupon_ids=coupon_ids)  # type: ignore[arg-type]


class Redeemer:
    def __init__(self, resources: Resources, points: PointsClient, stock: StockMirror) -> None:
        self.resources = resources
        self.pool = resources.pool
        self.points = points
        self.stock = stock

    # --- the request -----------------------------------------------------------------------

    async def redeem(self, tenant_id: str, body: RedemptionIn, now: datetime) -> Outcome:
        request_print = fingerprint(SCOPE, body.redemption_id, body)
        existing = await store.redemption(self.pool, tenant_id, body.redemption_id)
        if existing is not None:
            return await self._replay(tenant_id, existing, request_print)
        perk = await store.perk(self.pool, tenant_id, body.sku)
        if perk is None:
            raise NotFound(f"no perk {body.sku!r}", code="unknown_sku", sku=body.sku)
        points = perk["cost_points"] * body.quantity
        refused = await self._precheck(tenant_id, body, perk, points, now)
        status = "failed" if refused else "pending"
        row = await store.insert_redemption(
            self.pool, tenant_id, body.redemption_id, body.member_id, body.sku, body.quantity,
            points, request_print, hold_id_for(body.redemption_id), status, refused)
        if row is None:  # a concurrent request with this id got there first
            existing = await store.redemption(self.pool, tenant_id, body.redemption_id)
            assert existing is not None
            return await self._replay(tenant_id, existing, request_print)
        if refused:
            return Outcome(refused[0], refused[1], replayed=False)
        return await self.drive(tenant_id, body.redemption_id, replayed=False)

    async def _precheck(self, tenant_id: str, body: RedemptionIn, perk: asyncpg.Record,
                        points: int, now: datetime) -> tuple[int, bytes] | None:
        rules = perk_rules(perk)
        code = domain.availability_refusal(rules, now)
        if code:
            return refusal(code, starts_at=_iso(perk["starts_at"]), ends_at=_iso(perk["ends_at"]))
        async with self.pool.acquire() as conn:
            tier = await store.member_tier(conn, tenant_id, body.member_id)
        code = domain.eligibility_refusal(rules, tier)
        if code:
            return refusal(code, tiers=perk["tiers"], member_tier=tier)
        if rules.per_member_limit is not None and body.quantity > rules.per_member_limit:
            return refusal("limit_reached", per_member_limit=rules.per_member_limit)
        left = await self.stock.left(tenant_id, body.sku, self.pool)
        if left is not None and left < body.quantity:  # fast answer once sold out
            return refusal("out_of_stock", stock=left, requested=body.quantity)
        return None

    async def _replay(self, tenant_id: str, row: asyncpg.Record, request_print: bytes) -> Outcome:
        if bytes(row["fingerprint"]) != request_print:
            raise IdempotencyConflict(f"{row['redemption_id']!r} was already used with a "
                                      "different request", id=row["redemption_id"])
        return await self.drive(tenant_id, row["redemption_id"], replayed=True)

    # --- driving a redemption to its end ---------------------------------------------------

    async def drive(self, tenant_id: str, redemption_id: str, *, replayed: bool = False,
                    abandon_pending: bool = False) -> Outcome:
        for _ in range(MAX_STEPS):
            row = await store.redemption(self.pool, tenant_id, redemption_id)
            assert row is not None
            status = row["status"]
            if status in FINAL and row["outcome_status"] is not None:
                return Outcome(row["outcome_status"], bytes(row["outcome_body"]), replayed)
            if status == "pending":
                if abandon_pending:
                    await store.move_redemption(self.pool, tenant_id, redemption_id, "pending",
                                                "releasing", outcome=refusal("redemption_failed",
                                                                             reason="timed out"))
                else:
                    await self._hold_and_reserve(tenant_id, row)
            elif status == "reserved":
                await self._capture(tenant_id, row)
            elif status == "releasing":
                await self._release(tenant_id, row)
            elif status == "cancelling":
                await self._finish_cancel(tenant_id, row)
        raise Conflict("the redemption is still in progress; retry", code="in_progress")

    async def _hold_and_reserve(self, tenant_id: str, row: asyncpg.Record) -> None:
        answer = await self.points.hold(tenant_id, row["hold_id"], row["member_id"],
                                        row["points"], f"redemption of {row['sku']}",
                                        HOLD_EXPIRES_S)
        if answer.status_code != 201:
            await store.move_redemption(self.pool, tenant_id, row["redemption_id"], "pending",
                                        "failed", outcome=points_refusal(answer, row["points"]))
            return
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                codes, stock_row = await store.take_stock(
                    conn, tenant_id, row["sku"], row["quantity"], row["member_id"],
                    redemption_id=row["redemption_id"])
                if not await store.move_redemption(conn, tenant_id, row["redemption_id"],
                                                   "pending", "reserved", codes=codes):
                    raise _Moved
        except store.Refused as refused:
            await store.move_redemption(self.pool, tenant_id, row["redemption_id"], "pending",
                                        "releasing", outcome=refusal(refused.code,
                                                                     **refused.details))
            return
        except _Moved:
            return
        await self.stock.publish(tenant_id, row["sku"], stock_row)

    async def _capture(self, tenant_id: str, row: asyncpg.Record) -> None:
        answer = await self.points.capture(tenant_id, row["hold_id"])
        if answer.status_code == 200:
            await self._complete(tenant_id, row)
            return
        # The hold expired or was voided: put everything back, nothing was charged.
        async with self.pool.acquire() as conn, conn.transaction():
            moved = await store.move_redemption(
                conn, tenant_id, row["redemption_id"], "reserved", "releasing",
                outcome=refusal("redemption_failed", reason=answer.error_code))
            if moved:
                stock_row = await store.put_back_stock(
                    conn, tenant_id, row["sku"], row["quantity"], row["member_id"],
                    row["redemption_id"], free_codes_too=True)
        if moved:
            await self.stock.publish(tenant_id, row["sku"], stock_row)

    async def _complete(self, tenant_id: str, row: asyncpg.Record) -> None:
        try:
            await self._write_completion(tenant_id, row)
        except _Moved:
            pass

    async def _write_completion(self, tenant_id: str, row: asyncpg.Record) -> None:
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            perk = await store.perk(conn, tenant_id, row["sku"])
            assert perk is not None
            codes = list(row["codes"])
            coupon_ids: list[str] = []
            if codes:
                expires = now + timedelta(days=perk["coupon_valid_days"])
                coupon_ids = [f"cp_{uuid.uuid4().hex}" for _ in codes]
                await store.add_coupons(conn, tenant_id, [
                    (cid, row["member_id"], row["sku"], code, expires, "redemption",
                     row["redemption_id"]) for cid, code in zip(coupon_ids, codes, strict=True)])
            status = "completed" if perk["fulfilment"] == "code" else "pending_fulfilment"
            outcome = (201, _encoder.encode(view(row, status, coupon_ids)))
            if await store.move_redemption(conn, tenant_id, row["redemption_id"], "reserved",
                                           status, outcome=outcome):
                await emit(conn, service="rewards", tenant_id=tenant_id, events=[
                    RedemptionCompleted(member_id=row["member_id"],
                                        redemption_id=row["redemption_id"], sku=row["sku"],
                                        quantity=row["quantity"], points=row["points"],
                                        completed_at=now)])
            else:
                raise _Moved  # rolls back the coupons: another driver completed it

    async def _release(self, tenant_id: str, row: asyncpg.Record) -> None:
        await self.points.void(tenant_id, row["hold_id"])  # voided, expired or never placed
        await store.move_redemption(self.pool, tenant_id, row["redemption_id"], "releasing",
                                    "failed")

    # --- after completion ------------------------------------------------------------------

    async def cancel(self, tenant_id: str, redemption_id: str) -> Redemption:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await store.redemption(conn, tenant_id, redemption_id, lock=True)
            if row is None:
                raise NotFound(f"no redemption {redemption_id!r}", code="unknown_redemption")
            if row["status"] in ("completed", "pending_fulfilment"):
                states = await store.revoke_coupons(conn, tenant_id, redemption_id)
                if "used" in states or "transferred" in states:
                    raise Conflict("a coupon of this redemption was already used or given away",
                                   code="coupon_used")
                await store.move_redemption(conn, tenant_id, redemption_id, row["status"],
                                            "cancelling")
            elif row["status"] not in ("cancelling", "cancelled"):
                raise Conflict(f"a {row['status']} redemption cannot be cancelled",
                               code="not_cancellable", status=row["status"])
        for _ in range(MAX_STEPS):
            row = await store.redemption(self.pool, tenant_id, redemption_id)
            assert row is not None
            if row["status"] == "cancelled":
                return view(row, "cancelled", [])
            await self._finish_cancel(tenant_id, row)
        raise Conflict("the cancellation is still in progress; retry", code="in_progress")

    async def _finish_cancel(self, tenant_id: str, row: asyncpg.Record) -> None:
        answer = await self.points.refund(tenant_id, row["hold_id"],
                                          refund_id_for(row["redemption_id"]))
        if answer.status_code not in (201, 409):
            raise Conflict("points could not be refunded", code="refund_failed",
                           points_status=answer.status_code)
        if answer.status_code == 409 and answer.error_code != "already_refunded":
            raise Conflict("points could not be refunded", code="refund_failed",
                           reason=answer.error_code)
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            if not await store.move_redemption(conn, tenant_id, row["redemption_id"],
                                               "cancelling", "cancelled"):
                return
            stock_row = await store.put_back_stock(
                conn, tenant_id, row["sku"], row["quantity"], row["member_id"],
                row["redemption_id"], free_codes_too=False)
            await emit(conn, service="rewards", tenant_id=tenant_id, events=[
                RedemptionCancelled(member_id=row["member_id"],
                                    redemption_id=row["redemption_id"], sku=row["sku"],
                                    quantity=row["quantity"], points=row["points"],
                                    cancelled_at=now)])
        await self.stock.publish(tenant_id, row["sku"], stock_row)

    async def fulfil(self, tenant_id: str, redemption_id: str) -> Redemption:
        row = await store.redemption(self.pool, tenant_id, redemption_id)
        if row is None:
            raise NotFound(f"no redemption {redemption_id!r}", code="unknown_redemption")
        if row["status"] == "pending_fulfilment":
            await store.move_redemption(self.pool, tenant_id, redemption_id,
                                        "pending_fulfilment", "completed")
        elif row["status"] != "completed":
            raise Conflict(f"a {row['status']} redemption cannot be fulfilled",
                           code="not_fulfillable", status=row["status"])
        row = await store.redemption(self.pool, tenant_id, redemption_id)
        assert row is not None
        return view(row, row["status"], [])


class _Moved(Exception):
    """Another driver moved the redemption first; this one backs off."""


def points_refusal(answer: PointsAnswer, points: int) -> tuple[int, bytes]:
    if answer.error_code in ("insufficient_points", "unknown_member"):
        return refusal("insufficient_points",
                       available=answer.error_details.get("available", 0), requested=points)
    return refusal("redemption_failed", reason=answer.error_code)


def perk_rules(perk: asyncpg.Record) -> domain.PerkRules:
    return domain.PerkRules(enabled=perk["enabled"], starts_at=perk["starts_at"],
                            ends_at=perk["ends_at"], tiers=perk["tiers"],
                            per_member_limit=perk["per_member_limit"],
                            stock_left=perk["stock_left"])


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
