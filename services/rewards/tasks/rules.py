"""Pure rules of tasks: what a valid definition is, which events count for a task, the periods
events count in, streak runs, and how a task looks to a member.

Periods are the tenant's local calendar: a day ``2026-12-06``, an ISO week ``2026-W49`` (Monday
first), a month ``2026-12``, ``once`` for a task done once. A streak's period is the local date
of the first day of the run that completed it.

Streaks count local days with at least one matching event, in the order of the days, not of
the events' arrival: a run completes once ``streak_days`` consecutive days exist, all after the
last day of the member's last completed run. A late event that fills a gap mends the run it
belongs to; a day left empty breaks it, and the next run starts from the next day with an
event. Days on or before the end of the last completed run never count again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from proto.tasks import COUPON_USED, GROUP_JOINED, TaskIn, TaskKind, TaskStatus
from services.rewards.windows import check_window, open_at
from services.runtime.errors import ValidationFailed

# Actions that come from other services' events rather than points events.
OTHER_ACTIONS = (GROUP_JOINED, COUPON_USED)
ONCE = "once"
# How long after its end a task still shows to members (as expired, or what they reached).
ENDED_SHOWN_FOR = timedelta(days=30)
# A payment that failed is tried again after PAY_RETRY_FIRST, then twice as long after each
# further failure, at most PAY_RETRY_MAX apart.
PAY_RETRY_FIRST = timedelta(seconds=10)
PAY_RETRY_MAX = timedelta(hours=1)


class Occurrence(msgspec.Struct, frozen=True):
    """One event as tasks count it: a points action, a group join or a coupon use."""

    member_id: str
    action: str
    occurred_at: datetime
    amount_cents: int | None = None
    attributes: dict[str, Any] = {}


class TaskTerms(msgspec.Struct, frozen=True):
    """What decides whether an event counts for a task."""

    task_id: str
    kind: TaskKind
    action: str
    min_amount_cents: int | None
    attributes: dict[str, Any] | None
    starts_at: datetime | None
    ends_at: datetime | None
    tiers: list[str] | None
    enabled: bool


# --- definitions ---------------------------------------------------------------------------

def validate_task(task_id: str, body: TaskIn, points_actions: set[str]) -> None:
    """Everything about a definition that needs no other task, box or perk (422)."""
    action = body.condition.action
    if action not in points_actions and action not in OTHER_ACTIONS:
        raise ValidationFailed(
            f"unknown action {action!r}: a task counts a points action (one with an earning "
            f"rule), {GROUP_JOINED} or {COUPON_USED}", code="unknown_action",
            field="condition.action")
    if body.kind == "streak":
        if body.streak_days is None:
            raise ValidationFailed("a streak task needs streak_days", field="streak_days")
        if body.condition.count != 1:
            raise ValidationFailed("a streak counts days with at least one matching event: "
                                   "its condition's count must be 1", field="condition.count")
    elif body.streak_days is not None:
        raise ValidationFailed("streak_days is only for streak tasks", field="streak_days")
    if body.condition.min_amount_cents is not None and action in OTHER_ACTIONS:
        raise ValidationFailed(f"{action} events carry no amount: drop min_amount_cents",
                               field="condition.min_amount_cents")
    check_window(body.starts_at, body.ends_at)
    reward = body.reward
    if reward.points is None and reward.tickets is None and reward.perk is None:
        raise ValidationFailed("a reward needs points, tickets or a perk", field="reward")
    if body.after == task_id:
        raise ValidationFailed("a task cannot come after itself", code="chain_cycle",
                               field="after")


def makes_cycle(task_id: str, after: str | None, afters: Mapping[str, str | None]) -> bool:
    """Whether ``task_id`` coming after ``after`` closes a loop, given every other task's
    ``after`` (``afters``)."""
    seen = {task_id}
    step = after
    while step is not None:
        if step in seen:
            return True
        seen.add(step)
        step = afters.get(step)
    return False


def chain_of(task_id: str, afters: Mapping[str, str | None]) -> list[str]:
    """The chain a task belongs to, first step first: back along ``after`` to the root, then on
    through the single task that comes after each step (a step followed by several tasks, or
    none, ends it)."""
    back = [task_id]
    while (previous := afters.get(back[-1])) is not None and previous not in back:
        back.append(previous)
    chain = back[::-1]
    followers: dict[str, list[str]] = {}
    for task, previous in afters.items():
        if previous is not None:
            followers.setdefault(previous, []).append(task)
    while len(nexts := followers.get(chain[-1], [])) == 1 and nexts[0] not in chain:
        chain.append(nexts[0])
    return chain


# --- events --------------------------------------------------------------------------------

def attributes_match(required: Mapping[str, Any] | None, actual: Mapping[str, Any]) -> bool:
    """Every required attribute is in the event with an equal value of the same JSON type
    (true is not 1; 1 and 1.0 are the same number)."""
    for key, wanted in (required or {}).items():
        if key not in actual:
            return False
        got = actual[key]
        if isinstance(wanted, bool) or isinstance(got, bool):
            if not (isinstance(wanted, bool) and isinstance(got, bool) and wanted == got):
                return False
        elif isinstance(wanted, str) != isinstance(got, str) or wanted != got:
            return False
    return True


def counts_for(task: TaskTerms, event: Occurrence, member_tier: str | None) -> bool:
    """Whether ``event`` counts for ``task``: the task enabled, its action, attributes and
    minimum amount, the member's tier among the task's, and the event inside its window."""
    return (task.enabled and task.action == event.action
            and (task.min_amount_cents is None
                 or (event.amount_cents is not None
                     and event.amount_cents >= task.min_amount_cents))
            and attributes_match(task.attributes, event.attributes)
            and tier_allowed(task.tiers, member_tier)
            and open_at(event.occurred_at, task.starts_at, task.ends_at))


def tier_allowed(tiers: Sequence[str] | None, member_tier: str | None) -> bool:
    return tiers is None or member_tier in tiers


# --- periods -------------------------------------------------------------------------------

def local_day(at: datetime, time_zone: str) -> date:
    return at.astimezone(ZoneInfo(time_zone)).date()


def period_of(kind: TaskKind, at: datetime, time_zone: str) -> str:
    """The period an event at ``at`` counts in (not for streaks: see ``completed_runs``)."""
    if kind == "once":
        return ONCE
    day = local_day(at, time_zone)
    if kind == "weekly":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if kind == "monthly":
        return f"{day.year}-{day.month:02d}"
    return day.isoformat()


def period_end(kind: TaskKind, at: datetime, time_zone: str) -> datetime | None:
    """When the period holding ``at`` ends (local midnight, as an aware time); None for a task
    done once. For a streak: the end of the local day holding ``at``."""
    if kind == "once":
        return None
    zone = ZoneInfo(time_zone)
    day = at.astimezone(zone).date()
    if kind == "weekly":
        end = day + timedelta(days=7 - day.weekday())
    elif kind == "monthly":
        end = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    else:
        end = day + timedelta(days=1)
    return datetime(end.year, end.month, end.day, tzinfo=zone)


# --- streaks -------------------------------------------------------------------------------

def completed_runs(days: Sequence[date], after: date | None,
                   streak_days: int) -> list[tuple[date, date]]:
    """The runs (first day, last day) that complete, in order, given the member's action days
    and the last day of its last completed run (``after``): each run is ``streak_days``
    consecutive days after the previous one's end."""
    runs: list[tuple[date, date]] = []
    start: date | None = None
    length = 0
    previous: date | None = None
    for day in sorted(set(days)):
        if after is not None and day <= after:
            continue
        if previous is not None and day == previous + timedelta(days=1) and start is not None:
            length += 1
        else:
            start, length = day, 1
        previous = day
        if length == streak_days:
            runs.append((start, day))
            after, start, length, previous = day, None, 0, None
    return runs


def current_run(days: Sequence[date], after: date | None,
                today: date) -> tuple[date | None, int]:
    """The run still alive on ``today`` (its last day today or yesterday) after ``after``: its
    first day and length, or (None, 0) when the last run broke."""
    ordered = sorted({day for day in days if (after is None or day > after) and day <= today})
    if not ordered or ordered[-1] < today - timedelta(days=1):
        return None, 0
    length = 1
    while length < len(ordered) and \
            ordered[-length - 1] == ordered[-length] - timedelta(days=1):
        length += 1
    return ordered[-length], length


def streak_deadline(last_day: date | None, today: date, time_zone: str) -> datetime:
    """When a streak breaks unless an event comes: the end of the day after the run's last
    day (with no run alive: the end of today)."""
    day = last_day + timedelta(days=1) if last_day is not None else today
    end = day + timedelta(days=1)
    return datetime(end.year, end.month, end.day, tzinfo=ZoneInfo(time_zone))


_DAY = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
PERIOD_FORMATS: dict[TaskKind, tuple[str, str]] = {
    "once": ("once", "once"), "daily": (_DAY, "2026-12-06"),
    "weekly": (r"[0-9]{4}-W[0-9]{2}", "2026-W49"), "monthly": (r"[0-9]{4}-[0-9]{2}", "2026-12"),
    "streak": (_DAY, "2026-12-06, the first day of a run")}


def check_period(kind: TaskKind, period: str) -> None:
    """A period as a task of ``kind`` names them (422 otherwise)."""
    pattern, example = PERIOD_FORMATS[kind]
    if re.fullmatch(pattern, period, re.ASCII) is None:
        raise ValidationFailed(f"{period!r} is not a period of a {kind} task (like {example})",
                               field="period")


def parse_day(period: str) -> date | None:
    """A streak period's first day; None if ``period`` is not a date."""
    try:
        return date.fromisoformat(period)
    except ValueError:
        return None


# --- members' view -------------------------------------------------------------------------

def shown_to_member(enabled: bool, tiers: Sequence[str] | None, member_tier: str | None,
                    starts_at: datetime | None, ends_at: datetime | None,
                    now: datetime) -> bool:
    """Enabled tasks the member's tier may take, from their start until some time after their
    end (so a member sees what it missed)."""
    return (enabled and tier_allowed(tiers, member_tier)
            and (starts_at is None or starts_at <= now)
            and (ends_at is None or now < ends_at + ENDED_SHOWN_FOR))


def status_of(*, locked: bool, completed: bool, rewarded: bool, ended: bool) -> TaskStatus:
    """locked (its prerequisite never completed), claimed (paid), completed (not paid yet: a
    manual task waiting for its claim), expired (ended first), or open."""
    if locked:
        return "locked"
    if completed:
        return "claimed" if rewarded else "completed"
    return "expired" if ended else "open"
