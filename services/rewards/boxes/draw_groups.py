"""New draws paid with points that arrive together are paid, picked and captured together.

A draw is the same row moving pending -> drawn -> completed as a draw driven alone
(``Boxes.drive``), each step a compare-and-set, so a replay and the worker finish it the same way.
What changes is who takes the steps: the draws of one box that arrive while a group is under way
are inserted by one statement, held by one call of points' ``POST /holds/batch``, picked in one
transaction, captured by one ``POST /holds/settlements``, their prize points granted by one
``POST /grants/batch`` (coupons are issued draw by draw) and their answers recorded by one
statement. The pick locks the group's members in member order, then the box's stocked prizes,
then the draws' rows (skipping one another driver has locked): the order a draw alone takes its
member, prize and row in, so groups and single draws never wait for each other in a cycle. Each
draw is picked as it would be alone, one after another in the order they arrived
(``rules.plan_picks``).

A draw the group cannot take through a step (another driver moved it, its capture failed) leaves
the group and its request drives it alone from where it stands. A failure of a whole step (points
unreachable, a lost connection) is each draw's answer, and the draws stay where they were for a
retry or the worker, as a draw alone does.

A group of one draw only inserts it: its request drives it alone, which takes fewer statements
than a group's steps do for one draw. Up to ``max_in_flight`` groups run at once (two: with
more, on two cores, groups were smaller and a draw cost more; with one, a group's steps one
after another held the rate back), and a draw that finds fewer under way starts at once, so a
lone draw waits for nobody. A group's calls to points carry no request id: they serve several.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from proto.points import HoldIn
from proto.rewards import DrawIn
from services.rewards.boxes import rules, store
from services.rewards.boxes.store import DrawRow, NewDraw, PrizeRow
from services.rewards.recovery import HOLD_EXPIRES_S, Forgotten
from services.rewards.refusals import refused
from services.runtime.arrivals import Arrival, Arrivals
from services.runtime.errors import Conflict, FuliError
from services.runtime.idempotency import Outcome
from services.runtime.observability import request_id_var

if TYPE_CHECKING:
    from services.rewards.boxes.boxes import Boxes

# What a draw's request is told: its answer, or to drive the draw alone from where it stands
# (the row as the group left it, or None to read it again); ``Answering`` tells it that, or
# raises an error (or Forgotten) in it.
Answer = Outcome | DrawRow | None
Answering = Callable[[str, Answer | Exception], None]


@dataclass(frozen=True)
class _Draw:
    tenant_id: str
    box_id: str
    draw: NewDraw


_Pending = Arrival[_Draw, Answer]


class DrawGroups:
    def __init__(self, boxes: Boxes, *, max_group: int = 200, max_in_flight: int = 2) -> None:
        self._boxes = boxes
        self._arrivals: Arrivals[_Draw, Answer] = Arrivals(
            self._run, max_group=max_group, max_in_flight=max_in_flight)

    async def draw(self, tenant_id: str, box_id: str, body: DrawIn, fingerprint: bytes,
                   cost_points: int, hold_id: str) -> Answer:
        """The new draw's answer, or the row (None: read it again) its request is to drive
        alone. Raises Forgotten when the id turned out to be taken: the request is evaluated
        again."""
        return await self._arrivals.submit(_Draw(tenant_id, box_id, NewDraw(
            draw_id=body.draw_id, member_id=body.member_id, fingerprint=fingerprint,
            cost_points=cost_points, hold_id=hold_id)))

    async def _run(self, group: list[_Pending]) -> None:
        request_id_var.set(None)
        by_box: dict[tuple[str, str], list[_Pending]] = {}
        for pending in group:
            by_box.setdefault((pending.item.tenant_id, pending.item.box_id), []).append(pending)
        for (tenant_id, box_id), items in by_box.items():
            try:
                await self._steps(tenant_id, box_id, items)
            except Exception as exc:  # a step failed for the whole box's group: each draw is told
                for pending in items:
                    pending.fail(exc)

    async def _steps(self, tenant_id: str, box_id: str, items: list[_Pending]) -> None:
        boxes = self._boxes
        first: dict[str, _Pending] = {}
        for pending in items:  # a second request with the same id finds the first's row
            if pending.item.draw.draw_id in first:
                pending.fail(Forgotten())
            else:
                first[pending.item.draw.draw_id] = pending

        def answer(draw_id: str, outcome: Answer | Exception) -> None:
            if isinstance(outcome, Exception):
                first[draw_id].fail(outcome)
            else:
                first[draw_id].answer(outcome)

        arrived = {draw_id: n for n, draw_id in enumerate(first)}
        rows = sorted(await store.insert_draws(boxes.pool, tenant_id, box_id,
                                               [p.item.draw for p in first.values()]),
                      key=lambda row: arrived[row.draw_id])
        inserted = {row.draw_id for row in rows}
        for draw_id, pending in first.items():
            if draw_id not in inserted:
                pending.fail(Forgotten())
        if len(rows) <= 1:  # a draw alone is driven alone: its steps cost fewer statements
            for row in rows:
                answer(row.draw_id, row)
            return

        rows = await self._hold(tenant_id, box_id, rows, answer)
        if not rows:
            return
        drawn, prizes = await self._pick(tenant_id, box_id, rows, answer)
        if not drawn:
            return
        captures = await boxes.points.capture_many(tenant_id, [row.hold_id for row in drawn])
        delivering: list[DrawRow] = []
        for row, capture in zip(drawn, captures, strict=True):
            if capture.status_code == 200:
                delivering.append(row)
            else:
                await boxes.give_back(tenant_id, row, capture.error_code)
                answer(row.draw_id, None)

        granted = await self._grant(tenant_id, box_id, delivering, prizes, answer)

        async def deliver(row: DrawRow) -> tuple[str, Outcome] | None:
            try:
                result = await boxes.deliver(tenant_id, row, prizes.get(row.prize_id or ""),
                                             points_granted=True)
            except Exception as exc:  # this draw's own failure: it stays drawn for a retry
                answer(row.draw_id, exc)
                return None
            return row.draw_id, Outcome.of(201, result)

        delivering = [row for row in delivering if row.draw_id in granted]

        delivered = [d for d in await asyncio.gather(*map(deliver, delivering)) if d]
        completed = await store.complete_draws(boxes.pool, tenant_id, delivered)
        for draw_id, outcome in delivered:
            # One another driver completed first is answered by the row it left.
            answer(draw_id, outcome if draw_id in completed else None)

    async def _hold(self, tenant_id: str, box_id: str, rows: list[DrawRow],
                    answer: Answering) -> list[DrawRow]:
        """The draws whose points were held; the others answered."""
        boxes = self._boxes
        holds = await boxes.points.hold_many(tenant_id, [HoldIn(
            hold_id=row.hold_id, member_id=row.member_id, points=row.cost_points,
            reason=f"draw in {box_id}", expires_in_s=HOLD_EXPIRES_S) for row in rows])
        held = [row for row, hold in zip(rows, holds, strict=True) if hold.status_code == 201]
        refused_holds = {row.draw_id: (row, hold) for row, hold in zip(rows, holds, strict=True)
                         if hold.status_code != 201}
        if refused_holds:  # nothing was held: forget these draws, as a draw alone does
            forgotten = await store.forget_draws(boxes.pool, tenant_id, list(refused_holds))
            for draw_id, (row, hold) in refused_holds.items():
                if draw_id not in forgotten:  # another driver moved it: drive it on alone
                    answer(draw_id, None)
                    continue
                answer(draw_id, refused(
                    "insufficient_points" if hold.short_of_points else "draw_failed",
                    of="box", available=hold.error_details.get("available", 0),
                    requested=row.cost_points))
        return held

    async def _grant(self, tenant_id: str, box_id: str, rows: list[DrawRow],
                     prizes: dict[str, PrizeRow], answer: Answering) -> set[str]:
        """The draws whose prize points are granted (by one POST /grants/batch) or which have
        none to grant; the others answered."""
        owed = [row for row in rows if row.prize_id in prizes
                and prizes[row.prize_id].kind == "points"]
        if not owed:
            return {row.draw_id for row in rows}
        grants = await self._boxes.points.grant_many(tenant_id, [
            (row.hold_id, row.member_id, prizes[row.prize_id or ""].points or 0,
             f"blind box {box_id}") for row in owed])  # a draw's grant id is its hold's
        failed = {row.draw_id for row, grant in zip(owed, grants, strict=True)
                  if grant.status_code != 201}
        for draw_id in failed:
            answer(draw_id, prize_not_credited())
        return {row.draw_id for row in rows} - failed

    async def _pick(self, tenant_id: str, box_id: str, rows: list[DrawRow],
                    answer: Answering) -> tuple[list[DrawRow], dict[str, PrizeRow]]:
        """The draws picked (drawn), and the prizes as the pick saw them; the others
        answered."""
        boxes = self._boxes
        async with boxes.pool.acquire() as conn, conn.transaction():
            members = await store.lock_box_members(conn, tenant_id, box_id,
                                                   [row.member_id for row in rows])
            stock = await store.lock_stocked_prizes(conn, tenant_id, box_id)
            setting = await store.pick_setting(conn, tenant_id, box_id, rows[0].member_id)
            assert setting is not None
            pending = await store.lock_pending_draws(conn, tenant_id,
                                                     [row.draw_id for row in rows])
            mine = [row for row in rows if row.draw_id in pending]
            seed = setting.seed or await store.live_seed(conn, tenant_id, box_id)
            box = setting.box
            plan = rules.plan_picks(
                [(row.draw_id, row.member_id) for row in mine],
                members,
                [rules.Prize(p.prize_id, p.weight,
                             None if p.stock_left is None else stock.get(p.prize_id, 0))
                 for p in setting.prizes],
                seed=seed.seed,
                today=datetime.now(UTC).astimezone(ZoneInfo(setting.time_zone)).date(),
                daily_limit=box.daily_limit_per_member, pity_after=box.pity_after,
                top_prize_ids=box.pity_prize_ids)
            taken = await store.take_prizes(conn, tenant_id, box_id, plan.taken)
            assert taken  # the prizes it takes from are locked by this transaction
            picks = [pick for pick in plan.picks if isinstance(pick, rules.PlannedPick)]
            drawn = await store.record_picks(
                conn, tenant_id, box_id, seed.seed_no,
                picks, plan.members)
            assert len(drawn) == len(picks)  # their rows are locked by this transaction
            # Refused after the points were held: given back, and that is the draw's answer.
            for row, pick in zip(mine, plan.picks, strict=True):
                if isinstance(pick, str):
                    await store.move_draw(conn, tenant_id, row.draw_id, "pending", "releasing",
                                          Outcome.refused(self._refusal(pick, box)))
        picked = {row.draw_id for row in drawn}
        for row in rows:
            if row.draw_id not in picked:
                answer(row.draw_id, None)  # releasing, or moved by another driver
        return drawn, {p.prize_id: p for p in setting.prizes}

    @staticmethod
    def _refusal(code: str, box: store.BoxRow) -> FuliError:
        if code == "limit_reached":
            return refused(code, of="box", daily_limit_per_member=box.daily_limit_per_member)
        return refused(code, of="box", box_id=box.box_id)


def prize_not_credited() -> Conflict:
    """The answer while a draw's prize points could not be granted: the draw stays drawn, and
    a replay or the worker grants them (under the draw's id, once)."""
    return Conflict("the prize points could not be credited; retry", code="in_progress")
