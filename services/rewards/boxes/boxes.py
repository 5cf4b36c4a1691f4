"""Blind boxes: definitions and their published odds, seeds and proofs, tickets, members' age
bands, and draws.

A draw is paid (ticket or points hold), picked verifiably under the member's lock, captured and
delivered. Like a redemption it is a row moving pending -> drawn -> completed (or failed through
releasing) with compare-and-set steps, so the request, a replay and the worker can all finish
it. The prize is secured (stock taken, pick recorded) before the points hold is captured.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Literal, cast
from zoneinfo import ZoneInfo

import msgspec

from proto.rewards import (
    Box,
    BoxIn,
    BoxList,
    BoxStats,
    DrawIn,
    DrawnPrize,
    DrawProof,
    DrawResult,
    EligibilityIn,
    Odds,
    PityIn,
    PityRule,
    PrizeCount,
    PrizeIn,
    PrizeOdds,
    SeedRotated,
    Tickets,
    TicketsIn,
)
from services.rewards.boxes import rules, store
from services.rewards.boxes.draw_groups import DrawGroups, prize_not_credited
from services.rewards.boxes.rules import BoxMember
from services.rewards.boxes.store import BoxRow, DrawRow, PrizeRow
from services.rewards.ids import digest
from services.rewards.points_client import PointsClient
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
from services.runtime.db import Conn, Db, Pool
from services.runtime.errors import Conflict, FuliError, IdempotencyConflict, NotFound
from services.runtime.idempotency import Outcome, fingerprint, run_once
from services.runtime.pagination import decode_cursor, encode_cursor
from services.runtime.read_groups import ReadGroups

log = logging.getLogger("fuli.rewards.boxes")

SCOPE = "rewards.draws"

PrizeKind = Literal["points", "perk", "coupon", "nothing"]


def hold_id_for(draw_id: str) -> str:
    """The id of the draw's points hold, and of its points prize's grant: one string serves
    both, as a grant is another kind of operation in points."""
    return "draw:" + digest(draw_id)


def prize_coupon_ref(draw_id: str) -> str:
    """The wallet reference of a draw's coupon prize (at most 128 characters, like an id)."""
    return "draw:" + draw_id[:123]


class DrawCheck(msgspec.Struct, frozen=True):
    """Revealed draws recomputed from their seeds: how many, and the ids that did not match."""

    checked: int
    mismatched: list[str]


async def recheck_revealed_draws(db: Db, tenant_id: str, box_id: str) -> DrawCheck:
    """Recompute every draw of the box whose seed has been revealed."""
    rows = await store.revealed_draws(db, tenant_id, box_id)
    return DrawCheck(checked=len(rows), mismatched=[
        row.draw_id for row in rows
        if not rules.verify(seed=row.seed, published_commitment=row.commitment,
                            draw_id=row.draw_id, options=row.candidates,
                            prize_id=row.prize_id)])


class Boxes:
    def __init__(self, pool: Pool, points: PointsClient) -> None:
        self.pool = pool
        self.points = points
        self.groups = DrawGroups(self)
        # A draw request's first read, made together with the others that arrive with it.
        self._starts = ReadGroups(partial(store.draw_starts, pool))

    # --- boxes, odds, seeds, proofs --------------------------------------------------------

    async def put_box(self, tenant_id: str, box_id: str, body: BoxIn,
                      key_id: str | None) -> Odds:
        """Define a box (every change is audited) and publish its odds."""
        rules.validate_box(body)
        async with self.pool.acquire() as conn, conn.transaction():
            await store.put_box(conn, tenant_id, box_id, body, key_id)
            await store.live_seed(conn, tenant_id, box_id)
        return await self.odds(tenant_id, box_id, None)

    async def boxes(self, tenant_id: str, limit: int, cursor: str | None) -> BoxList:
        """The tenant's boxes by id."""
        after = decode_cursor(cursor, 1)[0] if cursor else None
        rows = await store.boxes(self.pool, tenant_id, after, limit + 1)
        page = rows[:limit]
        return BoxList(items=page, next_cursor=encode_cursor(page[-1].box_id)
                       if len(rows) > limit else None)

    @staticmethod
    async def _definition(conn: Conn, tenant_id: str, box_id: str
                          ) -> tuple[store.Definition, list[store.PrizeRow]]:
        """The box's row and its prizes (in the caller's snapshot); an unknown box is 404."""
        found = await store.definition(conn, tenant_id, box_id)
        if found is None:
            raise NotFound(f"no box {box_id!r}", code="unknown_box", box_id=box_id)
        return found, await store.box_prizes(conn, tenant_id, box_id)

    async def box(self, tenant_id: str, box_id: str) -> Box:
        """The definition as the PUT takes it; each prize's stock is what is left of it."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                                 readonly=True):
            found, prizes = await self._definition(conn, tenant_id, box_id)
        box = found.box
        return Box(box_id=box_id, seed_no=found.seed_no, updated_at=found.updated_at,
                   definition=BoxIn(
                       name=box.name, cost_points=box.cost_points,
                       prizes=[PrizeIn(prize_id=p.prize_id, name=p.name, weight=p.weight,
                                       stock=p.stock_left,
                                       kind=cast(PrizeKind, p.kind), points=p.points,
                                       sku=p.sku) for p in prizes],
                       pity=PityIn(after_draws=box.pity_after,
                                   prize_ids=list(box.pity_prize_ids or ()))
                       if box.pity_after else None,
                       daily_limit_per_member=box.daily_limit_per_member,
                       starts_at=box.starts_at, ends_at=box.ends_at,
                       min_age=cast(Literal[8, 18] | None, box.min_age), enabled=box.enabled))

    async def stats(self, tenant_id: str, box_id: str) -> BoxStats:
        """Prize counts of the draws made since the box's definition last changed, against
        its published odds."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                                 readonly=True):
            found, prizes = await self._definition(conn, tenant_id, box_id)
            counts = await store.prize_draws(conn, tenant_id, box_id, found.updated_at)
        chances = rules.probabilities([rules.Prize(p.prize_id, p.weight, p.stock_left)
                                       for p in prizes])
        tally = rules.tally([p.prize_id for p in prizes],
                            [(c.prize_id, c.pity_applied, c.draws) for c in counts])
        return BoxStats(
            box_id=box_id, since=found.updated_at, draws=tally.draws,
            pity_draws=tally.pity_draws,
            prizes=[PrizeCount(prize_id=p.prize_id, name=p.name,
                               probability=float(chances[p.prize_id]),
                               observed=tally.observed[p.prize_id],
                               expected=float(tally.draws * chances[p.prize_id]))
                    for p in prizes])

    async def odds(self, tenant_id: str, box_id: str, member_id: str | None) -> Odds:
        box = await self._box(self.pool, tenant_id, box_id)
        rows = await store.box_prizes(self.pool, tenant_id, box_id)
        chances = rules.probabilities([rules.Prize(p.prize_id, p.weight, p.stock_left)
                                       for p in rows])
        async with self.pool.acquire() as conn:
            seed = await store.live_seed(conn, tenant_id, box_id)
        pity = PityRule(after_draws=box.pity_after, prize_ids=list(box.pity_prize_ids or ())) \
            if box.pity_after else None
        return Odds(
            box_id=box_id, cost_points=box.cost_points,
            prizes=[PrizeOdds(prize_id=p.prize_id, name=p.name, kind=p.kind,
                              probability=float(chances[p.prize_id]), stock_left=p.stock_left)
                    for p in rows],
            pity=pity, seed_no=seed.seed_no, commitment=seed.commitment,
            pity_counter=await store.pity_counter(self.pool, tenant_id, box_id, member_id)
            if member_id else None)

    async def proof(self, tenant_id: str, box_id: str, draw_id: str) -> DrawProof:
        row = await store.draw(self.pool, tenant_id, draw_id)
        if row is None or row.box_id != box_id or row.prize_id is None:
            raise NotFound(f"no drawn draw {draw_id!r} in box {box_id!r}", code="unknown_draw")
        assert row.seed_no is not None and row.candidates is not None
        seed = await store.seed(self.pool, tenant_id, box_id, row.seed_no)
        assert seed is not None
        return DrawProof(
            draw_id=draw_id, box_id=box_id, seed_no=row.seed_no, commitment=seed.commitment,
            seed=seed.seed.hex() if seed.revealed_at else None,
            candidates=row.candidates,
            pity_applied=bool(row.pity_applied), prize_id=row.prize_id)

    async def rotate_seed(self, tenant_id: str, box_id: str) -> SeedRotated:
        async with self.pool.acquire() as conn, conn.transaction():
            if await store.box(conn, tenant_id, box_id) is None:
                raise NotFound(f"no box {box_id!r}", code="unknown_box")
            old = await store.live_seed(conn, tenant_id, box_id)
            await store.reveal_seed(conn, tenant_id, box_id)
            new = await store.live_seed(conn, tenant_id, box_id)
        return SeedRotated(box_id=box_id, revealed_seed_no=old.seed_no,
                           revealed_seed=old.seed.hex(), seed_no=new.seed_no,
                           commitment=new.commitment)

    async def give_tickets(self, tenant_id: str, body: TicketsIn) -> Outcome:
        """Draw tickets for a member, once per ``ticket_grant_id``."""
        async def effect(tx: Conn) -> tuple[int, Tickets]:
            if await store.box(tx, tenant_id, body.box_id) is None:
                raise NotFound(f"no box {body.box_id!r}", code="unknown_box")
            await wallet.add_tickets(tx, tenant_id, body.box_id, [body.member_id], body.count)
            return 201, Tickets(ticket_grant_id=body.ticket_grant_id, member_id=body.member_id,
                                box_id=body.box_id, count=body.count)

        async with self.pool.acquire() as conn:
            return await run_once(conn, tenant_id=tenant_id, scope="rewards.tickets",
                                  key=body.ticket_grant_id, request=body, effect=effect)

    async def put_eligibility(self, tenant_id: str, member_id: str,
                              body: EligibilityIn) -> EligibilityIn:
        await store.put_member_profile(self.pool, tenant_id, member_id, body.age_band,
                                       body.guardian_consent)
        return body

    @staticmethod
    async def _box(db: Db, tenant_id: str, box_id: str) -> BoxRow:
        box = await store.box(db, tenant_id, box_id)
        if box is None:
            raise NotFound(f"no box {box_id!r}", code="unknown_box", box_id=box_id)
        return box

    # --- draws -----------------------------------------------------------------------------

    async def draw(self, tenant_id: str, box_id: str, body: DrawIn, now: datetime) -> Outcome:
        """Draws once per ``draw_id``. A refusal before anything moved (closed box, age, no
        ticket, the daily limit or no prize left for a ticket draw, too few points for the
        hold) stores nothing: the same request again is evaluated again. A refusal after the
        points were held (and given back) is the draw's final answer."""
        for _ in range(MAX_STEPS):
            try:
                return await self._draw(tenant_id, box_id, body, now)
            except Forgotten:  # a concurrent try with this id was refused: evaluate it again
                continue
        raise Conflict("the draw is still in progress; retry", code="in_progress")

    async def _draw(self, tenant_id: str, box_id: str, body: DrawIn, now: datetime) -> Outcome:
        request_print = fingerprint(SCOPE, body.draw_id, {"box_id": box_id, "body": body})
        start = await self._starts.read(store.DrawRequest(tenant_id, box_id, body.member_id,
                                                          body.draw_id))
        assert start is not None  # every key has its row
        existing = start.existing
        if existing is None:
            setting = start.setting
            if setting is None:
                raise NotFound(f"no box {box_id!r}", code="unknown_box", box_id=box_id)
            box = setting.box
            paid_with = "ticket" if body.use_ticket or box.cost_points == 0 else "points"
            self._precheck(setting, now, paid_with)
            if paid_with == "points":
                answer = await self.groups.draw(tenant_id, box_id, body, request_print,
                                                box.cost_points, hold_id_for(body.draw_id))
                if isinstance(answer, Outcome):
                    return answer
                return await self.drive(tenant_id, body.draw_id, row=answer)
            row = await store.insert_draw(
                self.pool, tenant_id, body.draw_id, box_id, body.member_id, request_print,
                paid_with, box.cost_points, hold_id_for(body.draw_id), "pending", None)
            if row is not None:
                return await self.drive(tenant_id, body.draw_id, row=row)
            # A concurrent request with this id got there first.
            existing = await store.draw(self.pool, tenant_id, body.draw_id)
            if existing is None:
                raise Forgotten
        if existing.fingerprint != request_print:
            raise IdempotencyConflict.for_key(body.draw_id)
        return await self.drive(tenant_id, body.draw_id, replayed=True, row=existing)

    @staticmethod
    def _precheck(setting: store.DrawSetting, now: datetime, paid_with: str) -> None:
        box, profile = setting.box, setting.profile
        if not rules.box_open(box.enabled, box.starts_at, box.ends_at, now):
            raise refused("not_available", of="box")
        if rules.age_refusal(box.min_age, profile.age_band if profile else None,
                             profile.guardian_consent if profile else False):
            raise refused("not_eligible", of="box", min_age=box.min_age)
        if paid_with != "points":
            return
        # The daily limit and the prizes left, as the pick will see them (unlocked here):
        # answered before the hold when it can be, as a refusal after it is final.
        member = setting.member
        today = datetime.now(UTC).astimezone(ZoneInfo(setting.time_zone)).date()
        if rules.over_daily_limit(rules.draws_on(today, member.day, member.draws_that_day),
                                  box.daily_limit_per_member):
            raise refused("limit_reached", of="box",
                          daily_limit_per_member=box.daily_limit_per_member)
        if not rules.candidates([rules.Prize(p.prize_id, p.weight, p.stock_left)
                                 for p in setting.prizes],
                                pity=rules.pity_due(member.pity_counter, box.pity_after),
                                top_prize_ids=box.pity_prize_ids or ()):
            raise refused("out_of_stock", of="box", box_id=box.box_id)

    async def drive(self, tenant_id: str, draw_id: str, *, replayed: bool = False,
                    abandon_pending: bool = False, row: DrawRow | None = None) -> Outcome:
        """Moves the draw on until it has its answer. ``row`` is the draw as last read or
        written; each step returns the draw as it left it, or None for it to be read again."""
        picked: PrizeRow | None = None  # the prize as the pick saw it, when this drive picked
        for _ in range(MAX_STEPS):
            if row is None:
                row = await store.draw(self.pool, tenant_id, draw_id)
                if row is None:
                    raise Forgotten
            if row.status in ("completed", "failed") and row.outcome_status is not None:
                assert row.outcome_body is not None
                return Outcome(row.outcome_status, row.outcome_body, replayed)
            step, row = row, None
            if step.status == "pending":
                if abandon_pending:
                    row = await store.move_draw(
                        self.pool, tenant_id, draw_id, "pending", "releasing",
                        Outcome.refused(refused("draw_failed", reason="timed out")))
                else:
                    row, picked = await self._pay_and_pick(tenant_id, step)
            elif step.status == "drawn":
                row = await self._capture_and_deliver(tenant_id, step, picked)
            elif step.status == "releasing":
                if step.paid_with == "points":
                    await self.points.void(tenant_id, step.hold_id)
                row = await store.move_draw(self.pool, tenant_id, draw_id, "releasing",
                                            "failed")
        raise Conflict("the draw is still in progress; retry", code="in_progress")

    async def _pay_and_pick(self, tenant_id: str, row: DrawRow
                            ) -> tuple[DrawRow | None, PrizeRow | None]:
        """The draw as it left it (None: read it again) and the prize it picked, if it did."""
        if row.paid_with == "points":
            answer = await self.points.hold(tenant_id, row.hold_id, row.member_id,
                                            row.cost_points, f"draw in {row.box_id}",
                                            HOLD_EXPIRES_S)
            if answer.status_code != 201:  # nothing was held: forget the draw
                code = "insufficient_points" if answer.short_of_points else "draw_failed"
                if await store.forget_draw(self.pool, tenant_id, row.draw_id):
                    raise refused(code, of="box",
                                  available=answer.error_details.get("available", 0),
                                  requested=row.cost_points)
                return None, None
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                return await self._pick(conn, tenant_id, row)
        except Moved:
            return None, None
        except Conflict as refusal:
            if row.paid_with == "points":  # the points were held: give them back, final
                return await store.move_draw(self.pool, tenant_id, row.draw_id, "pending",
                                             "releasing", Outcome.refused(refusal)), None
            if await store.forget_draw(self.pool, tenant_id, row.draw_id):
                raise refusal from None  # nothing moved (the pick rolled back): forget it
            return None, None

    async def _pick(self, conn: Conn, tenant_id: str, row: DrawRow
                    ) -> tuple[DrawRow, PrizeRow]:
        """Under the member's lock: the pick, the picked prize's stock (if it has one) and the
        member's pity and draws. Only a draw that picks a prize with a stock locks that prize,
        from taking it to the commit; when another draw took its last one meanwhile, the pick
        is made again from the prizes as they are then.

        The first pick is made from the prizes read with the member's row, which are as they
        were before any wait for its lock: a prize's stock may have gone meanwhile (taking it
        then fails, and the pick is made again) or come back (a draw given back). So a refusal
        for want of prizes and a pity draw, whose promise is a top prize if one is left, are
        decided on the prizes read again."""
        setting = await store.pick_setting(conn, tenant_id, row.box_id, row.member_id)
        assert setting is not None
        box = setting.box
        member = setting.member
        if member is None:  # the member's first draw from this box
            member = await store.box_member(conn, tenant_id, row.box_id, row.member_id)
        today = datetime.now(UTC).astimezone(ZoneInfo(setting.time_zone)).date()
        drawn_today = rules.draws_on(today, member.day, member.draws_that_day)
        if rules.over_daily_limit(drawn_today, box.daily_limit_per_member):
            raise refused("limit_reached", of="box",
                          daily_limit_per_member=box.daily_limit_per_member)
        if row.paid_with == "ticket" and not await wallet.use_ticket(
                conn, tenant_id, row.member_id, row.box_id):
            raise refused("no_ticket", of="box", box_id=row.box_id)
        seed = setting.seed or await store.live_seed(conn, tenant_id, row.box_id)
        due = rules.pity_due(member.pity_counter, box.pity_after)
        fresh = due  # a pity draw starts from the prizes read again
        prizes = await store.box_prizes(conn, tenant_id, row.box_id) if fresh else setting.prizes
        for _ in range(MAX_STEPS):
            options = rules.candidates([rules.Prize(p.prize_id, p.weight, p.stock_left)
                                        for p in prizes],
                                       pity=due, top_prize_ids=box.pity_prize_ids or ())
            if options:
                prize_id = rules.pick(options, rules.roll(seed.seed, row.draw_id))
                prize = next(p for p in prizes if p.prize_id == prize_id)
                if prize.stock_left is None or await store.take_prize(
                        conn, tenant_id, row.box_id, prize_id):
                    break
            elif fresh:
                raise refused("out_of_stock", of="box", box_id=row.box_id)
            prizes, fresh = await store.box_prizes(conn, tenant_id, row.box_id), True
        else:  # the stock kept running out under it: roll back, the driver goes round again
            raise Moved
        picked = await store.record_pick(
            conn, tenant_id, row, seed.seed_no, options, due, prize_id, member.pity_counter,
            BoxMember(pity_counter=rules.next_pity(member.pity_counter, prize_id,
                                                   box.pity_prize_ids),
                      day=today, draws_that_day=drawn_today + 1))
        if picked is None:
            raise Moved
        return picked, prize

    async def _capture_and_deliver(self, tenant_id: str, row: DrawRow,
                                   picked: PrizeRow | None) -> DrawRow | None:
        """``picked``: the prize as the pick saw it, if this drive picked it; a draw picked
        by another drive (a replay, the worker) reads its prize again."""
        if row.paid_with == "points":
            answer = await self.points.capture(tenant_id, row.hold_id)
            if answer.status_code != 200:
                await self.give_back(tenant_id, row, answer.error_code)
                return None
        return await store.move_draw(self.pool, tenant_id, row.draw_id, "drawn", "completed",
                                     Outcome.of(201, await self.deliver(tenant_id, row, picked)))

    async def deliver(self, tenant_id: str, row: DrawRow, picked: PrizeRow | None, *,
                      points_granted: bool = False) -> DrawResult:
        """A paid draw's prize to its member (its points granted, unless ``points_granted``
        says that was done, or its coupon issued; once however often this runs): the draw's
        answer."""
        assert row.prize_id is not None and row.pity_after is not None
        prize = picked if picked is not None and picked.prize_id == row.prize_id else next(
            p for p in await store.box_prizes(self.pool, tenant_id, row.box_id)
            if p.prize_id == row.prize_id)
        coupon_id = None
        if prize.kind == "points" and not points_granted:
            assert prize.points is not None
            answer = await self.points.grant(tenant_id, hold_id_for(row.draw_id),
                                             row.member_id, prize.points,
                                             f"blind box {row.box_id}")
            if answer.status_code != 201:
                raise prize_not_credited()
        elif prize.kind in ("perk", "coupon"):
            assert prize.sku is not None
            async with self.pool.acquire() as conn, conn.transaction():
                coupon_id = await wallet.prize_coupon(conn, tenant_id, row.member_id, prize.sku,
                                                      prize_coupon_ref(row.draw_id),
                                                      datetime.now(UTC))
        return DrawResult(
            draw_id=row.draw_id, paid_with=cast(Literal["points", "ticket"], row.paid_with),
            pity_counter=row.pity_after,
            prize=DrawnPrize(prize_id=prize.prize_id, name=prize.name, kind=prize.kind,
                             points=prize.points, coupon_id=coupon_id))

    async def give_back(self, tenant_id: str, row: DrawRow, reason: str | None) -> None:
        """The payment failed after the pick: return the prize and the pity state."""
        assert row.prize_id is not None and row.pity_before is not None
        async with self.pool.acquire() as conn, conn.transaction():
            if not await store.move_draw(conn, tenant_id, row.draw_id, "drawn", "releasing",
                                         Outcome.refused(refused("draw_failed", reason=reason))):
                return
            # The member's row before the prize's, in the order a pick locks them.
            member = await store.box_member(conn, tenant_id, row.box_id, row.member_id)
            await store.change_prize_stock(conn, tenant_id, row.box_id, row.prize_id, 1)
            await store.set_box_member(conn, tenant_id, row.box_id, row.member_id, BoxMember(
                pity_counter=row.pity_before, day=member.day,
                draws_that_day=max(member.draws_that_day - 1, 0)))

    # --- the worker ------------------------------------------------------------------------

    async def recover(self, now: datetime) -> None:
        """Finish draws a crash or an unreachable points service left half-way; one still
        waiting for its hold after the hold's own lifetime is given up."""
        stuck = await store.unfinished_draws(self.pool, now - timedelta(seconds=STUCK_AFTER_S),
                                             RECOVERY_BATCH)
        for key in stuck:
            abandon = (now - key.created_at).total_seconds() > HOLD_EXPIRES_S
            try:
                await self.drive(key.tenant_id, key.draw_id, abandon_pending=abandon)
            except Forgotten:  # refused by its request meanwhile: nothing to finish
                pass
            except FuliError as exc:
                log.warning("draw %s not finished yet: %s", key.draw_id, exc)
