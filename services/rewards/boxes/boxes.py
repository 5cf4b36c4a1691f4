"""Blind-box draws: pay (ticket or points hold), pick verifiably under lock, capture, deliver.

Like redemptions, a draw is a row moving pending -> drawn -> completed (or failed through
releasing) with compare-and-set steps, so the request, a replay and the worker can all finish
it. The prize is secured (stock taken, pick recorded) before the points hold is captured.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from proto.rewards import DrawIn, DrawnPrize, DrawResult
from services.rewards import draws, store
from services.rewards.points_client import PointsClient
from services.rewards.redemptions import refusal
from services.runtime.errors import Conflict, IdempotencyConflict, NotFound
from services.runtime.idempotency import Outcome, fingerprint
from services.runtime.resources import Resources

SCOPE = "rewards.draws"
HOLD_EXPIRES_S = 120
MAX_STEPS = 8
_encoder = msgspec.json.Encoder()


def hold_id_for(draw_id: str) -> str:
    return "draw:" + hashlib.sha256(draw_id.encode()).hexdigest()[:40]


def age_refusal(min_age: int | None, profile: asyncpg.Record | None) -> str | None:
    """Under 8 never; 8-17 only with a guardian's consent; unknown never."""
    if min_age is None:
        return None
    if profile is None or profile["age_band"] == "under_8":
        return "not_eligible"
    if profile["age_band"] == "8_17":
        return None if min_age <= 8 and profile["guardian_consent"] else "not_eligible"
    return None


class Drawer:
    def __init__(self, resources: Resources, points: PointsClient) -> None:
        self.pool = resources.pool
        self.points = points

    async def draw(self, tenant_id: str, box_id: str, body: DrawIn, now: datetime) -> Outcome:
        request_print = fingerprint(SCOPE, body.draw_id, {"box_id": box_id, "body": body})
        existing = await store.draw(self.pool, tenant_id, body.draw_id)
        replayed = existing is not None
        if existing is None:
            box = await store.box(self.pool, tenant_id, box_id)
            if box is None:
                raise NotFound(f"no box {box_id!r}", code="unknown_box", box_id=box_id)
            refused = await self._precheck(tenant_id, box, body, now)
            paid_with = "ticket" if body.use_ticket or box["cost_points"] == 0 else "points"
            replayed = not await store.insert_draw(
                self.pool, tenant_id, body.draw_id, box_id, body.member_id, request_print,
                paid_with, box["cost_points"], hold_id_for(body.draw_id),
                "failed" if refused else "pending", refused)
            existing = await store.draw(self.pool, tenant_id, body.draw_id)
            assert existing is not None
        if bytes(existing["fingerprint"]) != request_print:
            raise IdempotencyConflict(f"{body.draw_id!r} was already used with a different "
                                      "request", id=body.draw_id)
        return await self.drive(tenant_id, body.draw_id, replayed=replayed)

    async def _precheck(self, tenant_id: str, box: asyncpg.Record, body: DrawIn,
                        now: datetime) -> tuple[int, bytes] | None:
        if not box["enabled"] or (box["starts_at"] and now < box["starts_at"]) or \
                (box["ends_at"] and now >= box["ends_at"]):
            return refusal("not_available")
        profile = await store.member_profile(self.pool, tenant_id, body.member_id)
        if age_refusal(box["min_age"], profile):
            return refusal("not_eligible", min_age=box["min_age"])
        return None

    async def drive(self, tenant_id: str, draw_id: str, *, replayed: bool = False,
                    abandon_pending: bool = False) -> Outcome:
        for _ in range(MAX_STEPS):
            row = await store.draw(self.pool, tenant_id, draw_id)
            assert row is not None
            if row["status"] in ("completed", "failed") and row["outcome_status"] is not None:
                return Outcome(row["outcome_status"], bytes(row["outcome_body"]), replayed)
            if row["status"] == "pending":
                if abandon_pending:
                    await store.move_draw(self.pool, tenant_id, draw_id, "pending", "releasing",
                                          refusal("draw_failed", reason="timed out"))
                else:
                    await self._pay_and_pick(tenant_id, row)
            elif row["status"] == "drawn":
                await self._capture_and_deliver(tenant_id, row)
            elif row["status"] == "releasing":
                if row["paid_with"] == "points":
                    await self.points.void(tenant_id, row["hold_id"])
                await store.move_draw(self.pool, tenant_id, draw_id, "releasing", "failed")
        raise Conflict("the draw is still in progress; retry", code="in_progress")

    async def _pay_and_pick(self, tenant_id: str, row: asyncpg.Record) -> None:
        if row["paid_with"] == "points":
            answer = await self.points.hold(tenant_id, row["hold_id"], row["member_id"],
                                            row["cost_points"], f"draw in {row['box_id']}",
                                            HOLD_EXPIRES_S)
            if answer.status_code != 201:
                code = "insufficient_points" if answer.error_code in (
                    "insufficient_points", "unknown_member") else "draw_failed"
                await store.move_draw(self.pool, tenant_id, row["draw_id"], "pending", "failed",
                                      refusal(code, available=answer.error_details.get(
                                          "available", 0), requested=row["cost_points"]))
                return
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await self._pick(conn, tenant_id, row)
        except _Moved:
            return
        except _Refused as refused:
            await store.move_draw(self.pool, tenant_id, row["draw_id"], "pending",
                                  "releasing" if row["paid_with"] == "points" else "failed",
                                  refusal(refused.code, **refused.details))

    async def _pick(self, conn: asyncpg.Connection, tenant_id: str, row: asyncpg.Record) -> None:
        box = await store.box(conn, tenant_id, row["box_id"])
        assert box is not None
        member = await store.box_member(conn, tenant_id, row["box_id"], row["member_id"])
        zone = ZoneInfo(await store.tenant_time_zone(conn, tenant_id))
        today = datetime.now(UTC).astimezone(zone).date()
        drawn_today = member["draws_that_day"] if member["day"] == today else 0
        limit = box["daily_limit_per_member"]
        if limit is not None and drawn_today >= limit:
            raise _Refused("limit_reached", daily_limit_per_member=limit)
        if row["paid_with"] == "ticket" and not await store.use_ticket(
                conn, tenant_id, row["member_id"], row["box_id"]):
            raise _Refused("no_ticket", box_id=row["box_id"])
        prizes = await store.box_prizes(conn, tenant_id, row["box_id"], lock=True)
        pool = [draws.Prize(p["prize_id"], p["weight"], p["stock_left"]) for p in prizes]
        due = draws.pity_due(member["pity_counter"], box["pity_after"])
        options = draws.candidates(pool, pity=due, top_prize_ids=box["pity_prize_ids"] or ())
        if not options:
            raise _Refused("out_of_stock", box_id=row["box_id"])
        seed = await store.live_seed(conn, tenant_id, row["box_id"])
        prize_id = draws.pick(options, draws.roll(bytes(seed["seed"]), row["draw_id"]))
        await store.change_prize_stock(conn, tenant_id, row["box_id"], prize_id, -1)
        pity_after = draws.next_pity(member["pity_counter"], prize_id, box["pity_prize_ids"])
        await store.set_box_member(conn, tenant_id, row["box_id"], row["member_id"], pity_after,
                                   today, drawn_today + 1)
        if not await store.record_pick(
                conn, tenant_id, row["draw_id"], seed["seed_no"],
                [{"prize_id": c.prize_id, "weight": c.weight} for c in options], due, prize_id,
                member["pity_counter"], pity_after):
            raise _Moved

    async def _capture_and_deliver(self, tenant_id: str, row: asyncpg.Record) -> None:
        if row["paid_with"] == "points":
            answer = await self.points.capture(tenant_id, row["hold_id"])
            if answer.status_code != 200:
                await self._give_back(tenant_id, row, answer.error_code)
                return
        prizes = {p["prize_id"]: p for p in await store.box_prizes(self.pool, tenant_id,
                                                                  row["box_id"])}
        prize = prizes[row["prize_id"]]
        coupon_id = None
        if prize["kind"] == "points":
            answer = await self.points.grant(tenant_id, "draw:" + row["hold_id"][5:],
                                             row["member_id"], prize["points"],
                                             f"blind box {row['box_id']}")
            if answer.status_code != 201:
                raise Conflict("the prize points could not be credited; retry",
                               code="in_progress")
        elif prize["kind"] in ("perk", "coupon"):
            coupon_id = await self._wallet_prize(tenant_id, row, prize["sku"])
        result = DrawResult(
            draw_id=row["draw_id"], paid_with=row["paid_with"], pity_counter=row["pity_after"],
            prize=DrawnPrize(prize_id=prize["prize_id"], name=prize["name"], kind=prize["kind"],
                             points=prize["points"], coupon_id=coupon_id))
        await store.move_draw(self.pool, tenant_id, row["draw_id"], "drawn", "completed",
                              (201, _encoder.encode(result)))

    async def _wallet_prize(self, tenant_id: str, row: asyncpg.Record, sku: str) -> str:
        async with self.pool.acquire() as conn, conn.transaction():
            existing = await conn.fetchval(
                "SELECT coupon_id FROM rewards.coupons WHERE tenant_id = $1 AND ref = $2",
                tenant_id, "draw:" + row["draw_id"][:123])
            if existing:
                return str(existing)
            perk = await store.perk(conn, tenant_id, sku)
            code = await conn.fetchval(
                "UPDATE rewards.codes SET issue_id = $3, assigned_at = now()"
                " WHERE (tenant_id, sku, code) IN (SELECT tenant_id, sku, code FROM rewards.codes"
                "   WHERE tenant_id = $1 AND sku = $2 AND redemption_id IS NULL"
                "   AND issue_id IS NULL ORDER BY code LIMIT 1 FOR UPDATE SKIP LOCKED)"
                " RETURNING code", tenant_id, sku, "draw:" + row["draw_id"][:123])
            days = perk["coupon_valid_days"] if perk else 30
            coupon_id = f"cp_{uuid.uuid4().hex}"
            await store.add_coupons(conn, tenant_id, [
                (coupon_id, row["member_id"], sku, code,
                 datetime.now(UTC) + timedelta(days=days), "issue",
                 "draw:" + row["draw_id"][:123])])
            return coupon_id

    async def _give_back(self, tenant_id: str, row: asyncpg.Record, reason: str | None) -> None:
        """The payment failed after the pick: return the prize and the pity state."""
        async with self.pool.acquire() as conn, conn.transaction():
            if not await store.move_draw(conn, tenant_id, row["draw_id"], "drawn", "releasing",
                                         refusal("draw_failed", reason=reason)):
                return
            await store.change_prize_stock(conn, tenant_id, row["box_id"], row["prize_id"], 1)
            member = await store.box_member(conn, tenant_id, row["box_id"], row["member_id"])
            await store.set_box_member(conn, tenant_id, row["box_id"], row["member_id"],
                                       row["pity_before"], member["day"],
                                       max(member["draws_that_day"] - 1, 0))


class _Refused(Exception):
    def __init__(self, code: str, **details: object) -> None:
        super().__init__(code)
        self.code = code
        self.details = details


class _Moved(Exception):
    """Another driver recorded this draw's pick first."""
