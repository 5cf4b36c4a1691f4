"""Contracts of tasks (``/rewards/v1/tasks``, ``/rewards/v1/members/{id}/tasks``): definitions,
members' progress, claims and operators' figures."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from proto.common import Id, LongText, Request, Response
from proto.points import ActionName, Attributes
from proto.rewards import Name, TierName

TaskKind = Literal["once", "daily", "weekly", "monthly", "streak"]
ClaimMode = Literal["auto", "manual"]
TaskStatus = Literal["locked", "open", "completed", "claimed", "expired"]
# The actions of other services' events a task may count, beside the points actions.
GROUP_JOINED = "group_joined"
COUPON_USED = "coupon_used"


class ConditionIn(Request, frozen=True, kw_only=True):
    """What counts: events of ``action`` (a points action, ``group_joined`` or
    ``coupon_used``) whose attributes include every one of ``attributes`` exactly and, for
    ``min_amount_cents``, whose amount is at least that; ``count`` of them complete a period."""

    action: ActionName
    count: Annotated[int, Meta(ge=1, le=10_000)] = 1
    min_amount_cents: Annotated[int, Meta(ge=1, le=100_000_000_000)] | None = None
    attributes: Attributes | None = None


class TicketsReward(Request, frozen=True, kw_only=True):
    box_id: Id
    count: Annotated[int, Meta(ge=1, le=100)] = 1


class RewardIn(Request, frozen=True, kw_only=True):
    """One or more of: points (a grant), draw tickets for a blind box, one coupon of a perk."""

    points: Annotated[int, Meta(ge=1, le=1_000_000)] | None = None
    tickets: TicketsReward | None = None
    perk: Id | None = None


class TaskIn(Request, frozen=True, kw_only=True):
    name: Name
    description: LongText = ""
    kind: TaskKind
    condition: ConditionIn
    streak_days: Annotated[int, Meta(ge=2, le=366)] | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    tiers: Annotated[list[TierName], Meta(min_length=1, max_length=20)] | None = None
    after: Id | None = None
    reward: RewardIn
    claim: ClaimMode = "auto"
    enabled: bool = True


class Condition(Response, frozen=True, kw_only=True):
    action: str
    count: int
    min_amount_cents: int | None
    attributes: dict[str, str | int | float | bool] | None


class RewardTickets(Response, frozen=True, kw_only=True):
    box_id: str
    count: int


class Reward(Response, frozen=True, kw_only=True):
    points: int | None
    tickets: RewardTickets | None
    perk: str | None


class Task(Response, frozen=True, kw_only=True):
    task_id: str
    name: str
    description: str
    kind: TaskKind
    condition: Condition
    streak_days: int | None
    starts_at: datetime | None
    ends_at: datetime | None
    tiers: list[str] | None
    after: str | None
    reward: Reward
    claim: ClaimMode
    enabled: bool
    updated_at: datetime


class TaskList(Response, frozen=True, kw_only=True):
    items: list[Task]


class MemberTask(Response, frozen=True, kw_only=True):
    """A task as one member sees it now, in its current period (for a streak: its current
    run); ``reward`` and ``claim`` are those its completion recorded, once completed;
    ``to_claim`` lists every period (this one or earlier) completed and waiting for the
    member's claim, oldest first."""

    task_id: str
    name: str
    description: str
    kind: TaskKind
    status: TaskStatus
    period: str
    period_ends_at: datetime | None
    progress: int
    target: int
    streak_days: int | None
    reward: Reward
    claim: ClaimMode
    to_claim: list[str]
    unlocked_by: str | None = None
    completed_at: datetime | None = None
    rewarded_at: datetime | None = None


class MemberTaskList(Response, frozen=True, kw_only=True):
    items: list[MemberTask]


class ClaimIn(Request, frozen=True, kw_only=True):
    """Claim a completed manual task's reward; ``period`` picks one, default the oldest
    completed and unclaimed."""

    claim_id: Id
    period: Annotated[str, Meta(min_length=1, max_length=32)] | None = None


class Claimed(Response, frozen=True, kw_only=True):
    claim_id: str
    member_id: str
    task_id: str
    period: str
    reward: Reward
    rewarded_at: datetime


class ChainStep(Response, frozen=True, kw_only=True):
    task_id: str
    completed: int


class PaidRewards(Response, frozen=True, kw_only=True):
    points: int
    tickets: int
    perks: int


class TaskStats(Response, frozen=True, kw_only=True):
    """Members who made progress (``started``), completed, claimed and were paid, in
    ``period`` (every period when None)."""

    task_id: str
    period: str | None
    started: int
    completed: int
    claimed: int
    rewarded: int
    rewards_paid: PaidRewards
    chain: list[ChainStep]
