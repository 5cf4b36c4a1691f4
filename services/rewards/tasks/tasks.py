"""Tasks: definitions, members' progress from bus events, completions, chains, claims and the
payment of rewards.

Progress comes from one batch consumer of ``ActionRecorded``, ``CouponUsed`` and
``GroupJoined``: each event once (the inbox), under its member's lock. An event counts in the
period of its own time, for every enabled task whose action, attributes, minimum amount, tiers
and window it meets, and never past the task's target.

Chains: an event for a step whose prerequisite (``after``) the member has never completed is
still counted, but the step completes only once the prerequisite has; the first completion of a
task completes, in the same transaction, every step after it whose stored progress already
reaches its target (and so on down the chain).

Payment: a completion stores the reward and claim mode of that moment. An automatic one is
paid right after the consumer's transaction commits, a manual one in its claim's request, each
in its own transaction with the row locked; the points grant and the wallet issues have ids
derived from (task, member, period), so a payment retried after a crash is a replay, and the
periodic ``pay_due`` finishes what a crash or an unreachable points service left unpaid.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec

from proto import tasks as tk
from proto.events import (
    ActionRecorded,
    CouponUsed,
    Envelope,
    GroupJoined,
    TaskCompleted,
    TaskRewarded,
)
from proto.rewards import IssueIn
from services.rewards.ids import digest
from services.rewards.member_tiers import member_tier
from services.rewards.points_client import PointsClient
from services.rewards.tasks import rules, store
from services.rewards.tasks.store import ProgressKey, ProgressRow, TaskRow
from services.rewards.wallet import wallet
from services.runtime.bus import consume
from services.runtime.db import Conn, Db, Pool
from services.runtime.errors import Conflict, NotFound, ValidationFailed
from services.runtime.idempotency import Outcome, run_once
from services.runtime.outbox import emit
from services.runtime.tenants import tenant_time_zone

log = logging.getLogger("fuli.rewards.tasks")

PROGRESS_CONSUMER = "rewards.advance_tasks"
CLAIMS = "rewards.task_claims"
PAY_BATCH = 200  # completions the periodic payer takes up in one run

_action_decoder = msgspec.json.Decoder(ActionRecorded)
_coupon_decoder = msgspec.json.Decoder(CouponUsed)
_join_decoder = msgspec.json.Decoder(GroupJoined)


def occurrence_of(envelope: Envelope) -> rules.Occurrence | None:
    """The event as tasks count it: coupon uses carry their ``sku``, group joins their
    ``group_id`` and ``group_tier`` as attributes."""
    if envelope.type == "ActionRecorded":
        action = _action_decoder.decode(envelope.data)
        return rules.Occurrence(member_id=action.member_id, action=action.action,
                                occurred_at=action.occurred_at,
                                amount_cents=action.amount_cents,
                                attributes=action.attributes)
    if envelope.type == "CouponUsed":
        used = _coupon_decoder.decode(envelope.data)
        return rules.Occurrence(member_id=used.member_id, action=tk.COUPON_USED,
                                occurred_at=used.used_at, attributes={"sku": used.sku})
    if envelope.type == "GroupJoined":
        joined = _join_decoder.decode(envelope.data)
        return rules.Occurrence(member_id=joined.member_id, action=tk.GROUP_JOINED,
                                occurred_at=joined.joined_at,
                                attributes={"group_id": joined.group_id,
                                            "group_tier": joined.group_tier})
    return None


def terms(task: TaskRow) -> rules.TaskTerms:
    return rules.TaskTerms(task_id=task.task_id, kind=task.kind, action=task.action,
                           min_amount_cents=task.min_amount_cents, attributes=task.attributes,
                           starts_at=task.starts_at, ends_at=task.ends_at, tiers=task.tiers,
                           enabled=task.enabled)


def task_view(row: TaskRow, time_zone: str) -> tk.Task:
    zone = ZoneInfo(time_zone)
    return tk.Task(
        task_id=row.task_id, name=row.name, description=row.description, kind=row.kind,
        condition=tk.Condition(action=row.action,
                               count=1 if row.kind == "streak" else row.target,
                               min_amount_cents=row.min_amount_cents,
                               attributes=row.attributes),
        streak_days=row.streak_days,
        starts_at=row.starts_at.astimezone(zone) if row.starts_at else None,
        ends_at=row.ends_at.astimezone(zone) if row.ends_at else None,
        tiers=row.tiers, after=row.after_task, reward=row.reward, claim=row.claim,
        enabled=row.enabled, updated_at=row.updated_at.astimezone(zone))


def pay_id(task_id: str, member_id: str, period: str) -> str:
    """The id of a completion's points grant; its wallet issues add a suffix."""
    return "task:" + digest(task_id, member_id, period)


async def require_task(db: Db, tenant_id: str, task_id: str) -> TaskRow:
    row = await store.task(db, tenant_id, task_id)
    if row is None:
        raise NotFound(f"no task {task_id!r}", code="unknown_task", task_id=task_id)
    return row


class Tasks:
    def __init__(self, pool: Pool, points: PointsClient) -> None:
        self.pool = pool
        self.points = points

    # --- definitions -----------------------------------------------------------------------

    async def put_task(self, tenant_id: str, task_id: str, body: tk.TaskIn,
                       key_id: str | None) -> tk.Task:
        """Creates or replaces a task (every change is audited). Refused with 422 and nothing
        stored: an unknown action, box, perk or prerequisite, a chain loop, a window that ends
        before it starts, a streak without streak_days; 409 kind_fixed: a change of kind once
        members have progress. A task turned from manual to auto pays the completions still
        waiting for a claim; one turned manual still pays those completed while automatic."""
        zone = await tenant_time_zone(self.pool, tenant_id)
        points_actions: set[str] = set()
        if body.condition.action not in rules.OTHER_ACTIONS:
            points_actions = {rule.action for rule in (await self.points.rules(tenant_id)).items}
        rules.validate_task(task_id, body, points_actions)
        async with self.pool.acquire() as conn, conn.transaction():
            await store.lock_definitions(conn, tenant_id)
            tickets = body.reward.tickets
            if tickets is not None and not await wallet.known_boxes(conn, tenant_id,
                                                                    [tickets.box_id]):
                raise ValidationFailed(f"no box {tickets.box_id!r}", code="unknown_box",
                                       field="reward.tickets.box_id")
            perk = body.reward.perk
            if perk is not None and not await wallet.known_skus(conn, tenant_id, [perk]):
                raise ValidationFailed(f"no perk {perk!r}", code="unknown_sku",
                                       field="reward.perk")
            if body.after is not None:
                afters = await store.afters(conn, tenant_id)
                if body.after not in afters:
                    raise ValidationFailed(f"no task {body.after!r} to come after",
                                           code="unknown_task", field="after")
                if rules.makes_cycle(task_id, body.after, afters):
                    raise ValidationFailed(f"coming after {body.after!r} makes the chain loop",
                                           code="chain_cycle", field="after")
            previous = await store.task(conn, tenant_id, task_id)
            if previous is not None and previous.kind != body.kind \
                    and await store.has_progress(conn, tenant_id, task_id):
                # Periods of one kind mean nothing to another (a day is not a streak's run).
                raise Conflict(f"task {task_id!r} is {previous.kind} and members have progress "
                               f"in it: its kind cannot change; define a new task",
                               code="kind_fixed", kind=previous.kind)
            row = await store.put_task(conn, tenant_id, task_id, body, key_id)
            if previous is not None and previous.claim == "manual" and body.claim == "auto":
                await store.pay_unclaimed_automatically(conn, tenant_id, task_id)
        return task_view(row, zone)

    async def task(self, tenant_id: str, task_id: str) -> tk.Task:
        row = await require_task(self.pool, tenant_id, task_id)
        return task_view(row, await tenant_time_zone(self.pool, tenant_id))

    async def tasks(self, tenant_id: str) -> tk.TaskList:
        zone = await tenant_time_zone(self.pool, tenant_id)
        return tk.TaskList(items=[task_view(row, zone)
                                  for row in await store.tasks(self.pool, tenant_id)])

    # --- progress --------------------------------------------------------------------------

    async def advance(self, bodies: str | list[str], now: datetime) -> None:
        """Events (``ActionRecorded``, ``CouponUsed``, ``GroupJoined`` envelopes) into
        progress; automatic rewards of what they completed are paid after the commit."""
        progress = Progress(now)
        try:
            await consume(self.pool, PROGRESS_CONSUMER, bodies, progress.apply)
        finally:
            for key in dict.fromkeys(progress.to_pay):
                await self.pay_quietly(key, now)

    # --- payment ---------------------------------------------------------------------------

    async def pay_quietly(self, key: ProgressKey, now: datetime) -> None:
        """Pays one completion; a failure leaves it to the periodic payer. It waits for a row
        another transaction holds: a consumer counting a later event of the same period locks
        the completed row too, and passing over it would leave the reward to the periodic
        payer."""
        try:
            await self.pay(key, now, wait=True)
        except Exception as exc:  # the periodic payer retries whatever the failure was
            await self._payment_failed(key, now, exc)

    async def pay(self, key: ProgressKey, now: datetime, *, wait: bool = False) -> bool:
        """Pays a completion due for payment; False if there is none (paid already or, without
        ``wait``, locked by someone else)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await store.lock_unpaid(conn, key, wait=wait)
            if row is None:
                return False
            await self._pay(conn, key.tenant_id, row, now)
        return True

    async def pay_due(self, now: datetime) -> int:
        """Pays completions left unpaid (a crash after the commit, the points service down);
        returns how many were paid."""
        paid = 0
        for key in await store.unpaid(self.pool, now, PAY_BATCH):
            try:
                paid += await self.pay(key, now)
            except Exception as exc:  # one that cannot be paid now does not hold the others
                await self._payment_failed(key, now, exc)
        return paid

    async def _payment_failed(self, key: ProgressKey, now: datetime, exc: Exception) -> None:
        """Puts the next attempt off (longer after each failure), so a completion that cannot
        be paid now never keeps the payer from the others."""
        attempts: int | None
        try:
            attempts = await store.payment_failed(
                self.pool, key, now, rules.PAY_RETRY_FIRST.total_seconds(),
                rules.PAY_RETRY_MAX.total_seconds())
        except Exception as recording:  # the database is failing too: tried on the next run
            log.warning("failed task payment not recorded: %s", recording)
            attempts = None
        log.warning("task reward not paid yet: %s", exc, extra={"fields": {
            "task_id": key.task_id, "period": key.period, "attempts": attempts}})

    async def _pay(self, conn: Conn, tenant_id: str, row: ProgressRow, now: datetime) -> None:
        """The completion's reward, inside the caller's transaction, with ids derived from the
        completion: a repeat after a crash replays rather than pays again."""
        reward = row.reward
        assert reward is not None
        paid_as = pay_id(row.task_id, row.member_id, row.period)
        reason = f"task {row.task_id} {row.period}"
        if reward.points is not None:
            answer = await self.points.grant(tenant_id, paid_as, row.member_id, reward.points,
                                             reason)
            if answer.status_code != 201:
                raise Conflict("the task's points could not be granted", code="grant_failed",
                               reason=answer.error_code)
        issues = []
        if reward.tickets is not None:
            issues.append(IssueIn(issue_id=paid_as + ":tickets", reason=reason, kind="tickets",
                                  box_id=reward.tickets.box_id, count=reward.tickets.count,
                                  member_ids=[row.member_id]))
        if reward.perk is not None:
            issues.append(IssueIn(issue_id=paid_as + ":perk", reason=reason, kind="perk",
                                  sku=reward.perk, member_ids=[row.member_id]))
        for issue in issues:
            outcome = await wallet.issue(conn, tenant_id, None, issue, now)
            if outcome.status_code != 201:
                raise Conflict("the task's reward could not be issued", code="issue_failed",
                               status=outcome.status_code)
        await store.mark_rewarded(conn, tenant_id, row, now)
        await emit(conn, service="rewards", tenant_id=tenant_id, events=[TaskRewarded(
            member_id=row.member_id, task_id=row.task_id, period=row.period,
            points=reward.points or 0,
            tickets=reward.tickets.count if reward.tickets else 0,
            perks=1 if reward.perk else 0, rewarded_at=now)])

    # --- claims ----------------------------------------------------------------------------

    async def claim(self, tenant_id: str, member_id: str, task_id: str, body: tk.ClaimIn,
                    now: datetime) -> Outcome:
        """Claims a completed manual task's reward and pays it, once per ``claim_id``; 409
        ``nothing_to_claim`` when the member has no completed, unclaimed period of it."""
        async def effect(tx: Conn) -> tuple[int, tk.Claimed]:
            await require_task(tx, tenant_id, task_id)
            row = await store.claimable(tx, tenant_id, task_id, member_id, body.period)
            if row is None:
                raise Conflict("nothing completed to claim", code="nothing_to_claim",
                               task_id=task_id, period=body.period)
            assert row.reward is not None
            await store.mark_claimed(tx, tenant_id, row, body.claim_id, now)
            await self._pay(tx, tenant_id, row, now)
            return 201, tk.Claimed(claim_id=body.claim_id, member_id=member_id,
                                   task_id=task_id, period=row.period, reward=row.reward,
                                   rewarded_at=now)

        async with self.pool.acquire() as conn:
            return await run_once(conn, tenant_id=tenant_id, scope=CLAIMS, key=body.claim_id,
                                  request={"member_id": member_id, "task_id": task_id,
                                           "body": body}, effect=effect)

    # --- views -----------------------------------------------------------------------------

    async def member_tasks(self, tenant_id: str, member_id: str,
                           now: datetime) -> tk.MemberTaskList:
        """The tasks shown to the member now, each in its current period."""
        async with self.pool.acquire() as conn:
            zone = await tenant_time_zone(conn, tenant_id)
            tier = await member_tier(conn, tenant_id, member_id)
            rows = await store.member_progress(conn, tenant_id, member_id)
            tasks = await store.tasks(conn, tenant_id)
            # A run alive is shorter than its streak (at streak_days it completes), and ended
            # tasks show for ENDED_SHOWN_FOR: older days cannot matter.
            days = await store.member_streak_days(
                conn, tenant_id, member_id,
                (now - rules.ENDED_SHOWN_FOR - timedelta(days=400)).date())
        by_period = {(row.task_id, row.period): row for row in rows}
        completed = {row.task_id for row in rows if row.completed_at is not None}
        to_claim: dict[str, list[str]] = {}
        for waiting in sorted(rows, key=lambda r: (r.completed_at or now, r.period)):
            if waiting.completed_at is not None and waiting.manual \
                    and waiting.claimed_at is None:
                to_claim.setdefault(waiting.task_id, []).append(waiting.period)
        items = []
        for task in tasks:
            if not rules.shown_to_member(task.enabled, task.tiers, tier, task.starts_at,
                                         task.ends_at, now):
                continue
            locked = (task.after_task is not None and task.after_task not in completed
                      and task.task_id not in completed)
            ended = task.ends_at is not None and now >= task.ends_at
            at = task.ends_at - timedelta(microseconds=1) if ended and task.ends_at else now
            if task.kind == "streak":
                runs = [row for row in rows if row.task_id == task.task_id]
                item = self._streak_item(task, runs, days.get(task.task_id, []), at, zone)
            else:
                period = rules.period_of(task.kind, at, zone)
                row = by_period.get((task.task_id, period))
                item = (period, row, row.progress if row else 0, task.target,
                        rules.period_end(task.kind, at, zone))
            period, row, progress, target, ends = item
            done = row is not None and row.completed_at is not None
            # A completion pays what it recorded, as it recorded (the task may have changed).
            reward, claim = task.reward, task.claim
            if row is not None and row.reward is not None:
                reward, claim = row.reward, "manual" if row.manual else "auto"
            items.append(tk.MemberTask(
                task_id=task.task_id, name=task.name, description=task.description,
                kind=task.kind,
                status=rules.status_of(locked=locked, completed=done,
                                       rewarded=row is not None and row.rewarded_at is not None,
                                       ended=ended),
                period=period, period_ends_at=ends, progress=progress, target=target,
                streak_days=task.streak_days, reward=reward, claim=claim,
                to_claim=to_claim.get(task.task_id, []),
                unlocked_by=task.after_task if locked else None,
                completed_at=row.completed_at if row else None,
                rewarded_at=row.rewarded_at if row else None))
        return tk.MemberTaskList(items=items)

    @staticmethod
    def _streak_item(task: TaskRow, runs: list[ProgressRow], days: list[date], at: datetime,
                     zone: str) -> tuple[str, ProgressRow | None, int, int, datetime | None]:
        """A streak as the member sees it: its run still alive, or the run it completed last
        while no new run has started and that one could still go on."""
        assert task.streak_days is not None
        today = rules.local_day(at, zone)
        last = max((row for row in runs if row.completed_at is not None and row.last_day),
                   key=lambda row: row.last_day or date.min, default=None)
        boundary = last.last_day if last else None
        start, length = rules.current_run(days, boundary, today)
        if start is None and last is not None and last.last_day is not None \
                and last.last_day >= today - timedelta(days=1):
            return (last.period, last, task.streak_days, task.streak_days,
                    rules.streak_deadline(last.last_day, today, zone))
        last_day = start + timedelta(days=length - 1) if start else None
        return ((start or today).isoformat(), None, length, task.streak_days,
                rules.streak_deadline(last_day, today, zone))

    async def stats(self, tenant_id: str, task_id: str, period: str | None) -> tk.TaskStats:
        """Members who started, completions, claims and payments (in ``period`` if given), and
        the chain's funnel: members who ever completed each step."""
        task = await require_task(self.pool, tenant_id, task_id)
        if period is not None:
            rules.check_period(task.kind, period)
        figures = await store.figures(self.pool, tenant_id, task_id, period)
        started = figures.started
        if task.kind == "streak" and task.streak_days is not None:
            first = rules.parse_day(period) if period is not None else None
            started = 0 if period is not None and first is None else \
                await store.streak_started(self.pool, tenant_id, task_id, first,
                                           task.streak_days)
        chain = rules.chain_of(task_id, await store.afters(self.pool, tenant_id))
        done = await store.completed_members(self.pool, tenant_id, chain)
        return tk.TaskStats(
            task_id=task_id, period=period, started=started, completed=figures.completed,
            claimed=figures.claimed, rewarded=figures.rewarded,
            rewards_paid=tk.PaidRewards(points=figures.points, tickets=figures.tickets,
                                        perks=figures.perks),
            chain=[tk.ChainStep(task_id=step, completed=done.get(step, 0)) for step in chain])


class Progress:
    """Applies events to tasks inside the consumer's transaction, and keeps the automatic
    completions to pay once it commits."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.to_pay: list[ProgressKey] = []
        self._tasks: dict[str, dict[str, list[TaskRow]]] = {}
        self._zones: dict[str, str] = {}
        self._tiers: dict[tuple[str, str], str | None] = {}

    async def _tasks_of(self, conn: Conn, tenant_id: str) -> dict[str, list[TaskRow]]:
        if tenant_id not in self._tasks:
            by_action: dict[str, list[TaskRow]] = {}
            for task in await store.counting_tasks(conn, tenant_id):
                by_action.setdefault(task.action, []).append(task)
            self._tasks[tenant_id] = by_action
        return self._tasks[tenant_id]

    async def _zone(self, conn: Conn, tenant_id: str) -> str:
        if tenant_id not in self._zones:
            self._zones[tenant_id] = await tenant_time_zone(conn, tenant_id)
        return self._zones[tenant_id]

    async def _tier(self, conn: Conn, tenant_id: str, member_id: str) -> str | None:
        """The member's tier, read once per batch (a batch often holds several of its
        events)."""
        key = (tenant_id, member_id)
        if key not in self._tiers:
            self._tiers[key] = await member_tier(conn, tenant_id, member_id)
        return self._tiers[key]

    async def apply(self, conn: Conn, envelope: Envelope) -> None:
        event = occurrence_of(envelope)
        if event is None:
            return
        tenant = envelope.tenant_id
        candidates = (await self._tasks_of(conn, tenant)).get(event.action)
        if not candidates:
            return
        zone = await self._zone(conn, tenant)
        tier = await self._tier(conn, tenant, event.member_id) \
            if any(task.tiers is not None for task in candidates) else None
        for task in candidates:
            if not rules.counts_for(terms(task), event, tier):
                continue
            if task.kind == "streak":
                day = rules.local_day(event.occurred_at, zone)
                if await store.add_streak_day(conn, tenant, task.task_id, event.member_id, day):
                    await self._settle_streak(conn, tenant, task, event.member_id)
                continue
            period = rules.period_of(task.kind, event.occurred_at, zone)
            progress = await store.count_event(conn, tenant, task.task_id, event.member_id,
                                               period, task.target)
            if progress is not None and progress >= task.target \
                    and await self._unlocked(conn, tenant, task, event.member_id):
                first = not await store.ever_completed(conn, tenant, task.task_id,
                                                       event.member_id)
                periods = await store.complete_reached(
                    conn, tenant, task.task_id, event.member_id, task.target, task.reward,
                    task.claim == "manual", self.now, period)
                await self._completed(conn, tenant, task, event.member_id, periods, first)

    async def _unlocked(self, conn: Conn, tenant_id: str, task: TaskRow,
                        member_id: str) -> bool:
        return task.after_task is None or await store.ever_completed(
            conn, tenant_id, task.after_task, member_id)

    async def _settle_streak(self, conn: Conn, tenant_id: str, task: TaskRow,
                             member_id: str) -> None:
        """Completes the member's runs of the streak task its days now make."""
        assert task.streak_days is not None
        if not await self._unlocked(conn, tenant_id, task, member_id):
            return
        boundary = await store.last_run_end(conn, tenant_id, task.task_id, member_id)
        days = await store.streak_days(conn, tenant_id, task.task_id, member_id, boundary)
        first = boundary is None and not await store.ever_completed(conn, tenant_id,
                                                                    task.task_id, member_id)
        periods = []
        for start, end in rules.completed_runs(days, boundary, task.streak_days):
            if await store.complete_run(conn, tenant_id, task.task_id, member_id,
                                        start.isoformat(), task.streak_days, end, task.reward,
                                        task.claim == "manual", self.now):
                periods.append(start.isoformat())
        await self._completed(conn, tenant_id, task, member_id, periods, first)

    async def _completed(self, conn: Conn, tenant_id: str, task: TaskRow, member_id: str,
                         periods: list[str], first: bool) -> None:
        """Announces completions, keeps automatic ones to pay, and on a task's first
        completion completes the steps after it that were waiting for it."""
        if not periods:
            return
        await emit(conn, service="rewards", tenant_id=tenant_id, events=[
            TaskCompleted(member_id=member_id, task_id=task.task_id, period=period,
                          completed_at=self.now) for period in periods])
        if task.claim == "auto":
            self.to_pay += [ProgressKey(tenant_id=tenant_id, task_id=task.task_id,
                                        member_id=member_id, period=period)
                            for period in periods]
        if not first:
            return
        for follower in await store.followers(conn, tenant_id, task.task_id):
            if follower.kind == "streak":
                await self._settle_streak(conn, tenant_id, follower, member_id)
                continue
            follower_first = not await store.ever_completed(conn, tenant_id, follower.task_id,
                                                            member_id)
            reached = await store.complete_reached(
                conn, tenant_id, follower.task_id, member_id, follower.target, follower.reward,
                follower.claim == "manual", self.now)
            await self._completed(conn, tenant_id, follower, member_id, reached, follower_first)
