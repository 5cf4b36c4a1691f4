"""Bus events: what services tell each other, and who listens.

Every event is a tagged Struct (``type`` names it). It travels inside an Envelope that carries
the id consumers deduplicate on.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import msgspec


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every bus event."""


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    event_id: str
    tenant_id: str
    service: str
    type: str
    emitted_at: datetime
    data: msgspec.Raw


class Subscriber(msgspec.Struct, frozen=True):
    """A consumer of an event type. A ``batch`` consumer receives a list of envelope bodies per
    message (events of its types, in outbox order) and applies them in one transaction. A
    consumer with work for some tenants only names ``tenants``, a relation (view) of
    ``tenant_id`` rows: the relay sends it the events of the tenants the relation holds when
    the event is sent, and no others (None: every tenant's)."""

    queue: str
    actor: str
    batch: bool = False
    tenants: str | None = None


class ActionRecorded(Event, frozen=True, kw_only=True):
    """Every accepted earning event, capped or not: activity for tiers and group reports."""

    member_id: str
    event_id: str
    action: str
    occurred_at: datetime
    amount_cents: int | None = None
    attributes: dict[str, Any] = {}
    points: int


class PointsAwarded(Event, frozen=True, kw_only=True):
    member_id: str
    points: int
    source: Literal["event", "grant"]
    ref: str
    action: str | None = None
    occurred_at: datetime
    expires_at: datetime


class PointsSpent(Event, frozen=True, kw_only=True):
    member_id: str
    points: int
    kind: Literal["debit", "capture"]
    ref: str
    reason: str
    spent_at: datetime


class PurchaseRecorded(Event, frozen=True, kw_only=True):
    member_id: str
    event_id: str
    amount_cents: int
    occurred_at: datetime
    attributes: dict[str, Any] = {}


class PurchaseReversed(Event, frozen=True, kw_only=True):
    member_id: str
    event_id: str
    reversal_id: str
    amount_cents: int
    occurred_at: datetime
    reversed_at: datetime


class PointsReversed(Event, frozen=True, kw_only=True):
    member_id: str
    event_id: str
    reversal_id: str
    points: int
    clawed_back: int
    shortfall: int
    reversed_at: datetime


class PointsRefunded(Event, frozen=True, kw_only=True):
    member_id: str
    points: int
    ref: str
    refunded_at: datetime


class PointsExpired(Event, frozen=True, kw_only=True):
    member_id: str
    points: int
    expired_at: datetime


class RedemptionCompleted(Event, frozen=True, kw_only=True):
    member_id: str
    redemption_id: str
    sku: str
    quantity: int
    points: int
    completed_at: datetime


class RedemptionCancelled(Event, frozen=True, kw_only=True):
    member_id: str
    redemption_id: str
    sku: str
    quantity: int
    points: int
    cancelled_at: datetime


class CouponUsed(Event, frozen=True, kw_only=True):
    member_id: str
    coupon_id: str
    sku: str
    used_at: datetime
    uses_by_member: int


class CouponTransferred(Event, frozen=True, kw_only=True):
    from_member_id: str
    to_member_id: str
    coupon_id: str
    new_coupon_id: str
    sku: str
    transferred_at: datetime


class PacketMade(Event, frozen=True, kw_only=True):
    member_id: str
    packet_id: str
    total_points: int
    shares: int
    group_id: str | None = None
    made_at: datetime


class PacketGrabbed(Event, frozen=True, kw_only=True):
    member_id: str
    maker_member_id: str
    packet_id: str
    points: int
    group_id: str | None = None
    grabbed_at: datetime


class TeamFormed(Event, frozen=True, kw_only=True):
    """A team-buy team reached its size."""

    campaign_id: str
    team_id: str
    size: int
    member_ids: list[str]
    formed_at: datetime


class CampaignSettled(Event, frozen=True, kw_only=True):
    campaign_id: str
    teams_ranked: int
    teams_with_prizes: int
    settled_at: datetime


class TierChanged(Event, frozen=True, kw_only=True):
    member_id: str
    tier: str
    previous_tier: str | None = None
    changed_at: datetime
    earn_multiplier: float | None = None


class TierChanges(Event, frozen=True, kw_only=True):
    """What ``TierChanged`` says of each of ``member_ids``, all moved from ``previous_tier`` to
    ``tier`` in one percentile stratification: those among each TIER_CHANGES_MEMBERS movers (in
    member order) that moved alike, so a first pass over a million members and three tiers
    writes about 3,000 outbox rows and messages, not a million. Between services only: the
    webhooks service pushes a ``TierChanged`` for each member (PUSHED_AS), whose event id
    ``tier_changed_id`` derives from this event's and the member's."""

    member_ids: list[str]
    tier: str
    previous_tier: str | None = None
    changed_at: datetime
    earn_multiplier: float | None = None

    def each(self) -> list[TierChanged]:
        return [TierChanged(member_id=m, tier=self.tier, previous_tier=self.previous_tier,
                            changed_at=self.changed_at, earn_multiplier=self.earn_multiplier)
                for m in self.member_ids]


TIER_CHANGES_MEMBERS = 1000  # written by tiers.stratify (services/tiers/sql)
_tier_announcement = msgspec.json.Decoder(TierChanged | TierChanges)


def tier_changes(data: bytes) -> TierChanges:
    """A ``TierChanged`` or ``TierChanges`` payload as the latter (of one member for the
    former): what the consumers of both apply."""
    event = _tier_announcement.decode(data)
    if isinstance(event, TierChanges):
        return event
    return TierChanges(member_ids=[event.member_id], tier=event.tier,
                       previous_tier=event.previous_tier, changed_at=event.changed_at,
                       earn_multiplier=event.earn_multiplier)


def tier_changed_id(tier_changes_id: str, member_id: str) -> str:
    """The event id of one member's ``TierChanged`` within a ``TierChanges``: the same on every
    redelivery, and distinct for every member and every ``TierChanges``."""
    return str(uuid.uuid5(uuid.UUID(tier_changes_id), member_id))


class GroupJoined(Event, frozen=True, kw_only=True):
    """A member joined a community group (a rejoin too; not a repeated join of a current
    member)."""

    member_id: str
    group_id: str
    group_tier: str
    joined_at: datetime


class TaskCompleted(Event, frozen=True, kw_only=True):
    """A member reached a task's target in one of its periods."""

    member_id: str
    task_id: str
    period: str
    completed_at: datetime


class TaskRewarded(Event, frozen=True, kw_only=True):
    """A completed (and, for a manual task, claimed) task's reward was paid."""

    member_id: str
    task_id: str
    period: str
    points: int
    tickets: int
    perks: int
    rewarded_at: datetime


# The tiers consumers see every earning event: they take them in batches.
TIER_METRICS = Subscriber("tiers", "tiers.apply_points_event", batch=True)
TIER_ACTIVITY = Subscriber("tiers", "tiers.record_activity", batch=True)
TEAM_SCORES = Subscriber("rewards", "rewards.apply_team_purchases", batch=True)
# Most tenants have no task and no webhook endpoint: their events are not sent to those consumers.
TASK_PROGRESS = Subscriber("rewards", "rewards.advance_tasks", batch=True,
                           tenants="rewards.task_tenants")

# event type -> the actors (by queue and name) that consume it. The outbox relay reads this, so a
# relay in any process can route every event without importing the consumers.
SUBSCRIPTIONS: dict[str, tuple[Subscriber, ...]] = {
    **{name: (Subscriber("rewards", "rewards.apply_tier_changed"),
              Subscriber("points", "points.apply_tier_multiplier"))
       for name in ("TierChanged", "TierChanges")},
    "PacketMade": (Subscriber("points", "points.earn_for_red_packets"),),
    **{name: (TIER_METRICS,)
       for name in ("PointsAwarded", "PointsSpent", "PointsExpired", "PointsReversed",
                    "PointsRefunded")},
    "PurchaseRecorded": (TIER_METRICS, TEAM_SCORES),
    "PurchaseReversed": (TIER_METRICS, TIER_ACTIVITY, TEAM_SCORES),
    "ActionRecorded": (TIER_ACTIVITY, TASK_PROGRESS),
    "CouponUsed": (TIER_ACTIVITY, TASK_PROGRESS),
    "GroupJoined": (TASK_PROGRESS,),
    "PacketGrabbed": (Subscriber("points", "points.earn_for_red_packets"),),
}
# The webhooks service records every public event (PUBLIC_EVENT_TYPES, below) for the
# endpoints subscribed to it.
WEBHOOK_DELIVERIES = Subscriber("webhooks", "webhooks.record_events", batch=True,
                                tenants="webhooks.endpoint_tenants")

EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (ActionRecorded, PointsAwarded, PointsSpent, PurchaseRecorded, PurchaseReversed,
                PointsReversed, PointsRefunded, PointsExpired, RedemptionCompleted,
                RedemptionCancelled, CouponUsed, CouponTransferred, PacketMade, PacketGrabbed,
                TeamFormed, CampaignSettled, TierChanged, TierChanges, GroupJoined, TaskCompleted,
                TaskRewarded)
}


def event_name(event: Event) -> str:
    return type(event).__name__


# --- lifecycle (AIPL) ---------------------------------------------------------------------

class LifecycleChanged(Event, frozen=True, kw_only=True):
    """A member's AIPL stage changed in an evaluation at ``at`` (``from_stage`` null: the
    member's first stage). Emitted by ``tiers.compute_lifecycle`` in SQL, with these fields."""

    member_id: str
    from_stage: str | None
    to_stage: str
    at: datetime


EVENT_TYPES[LifecycleChanged.__name__] = LifecycleChanged

# The events pushed to brand systems by the webhooks service, in one list (an endpoint's `*`
# means all of these): what happened to a member, a team or a campaign. Events a brand sent
# itself (ActionRecorded, PurchaseRecorded, PurchaseReversed) are not pushed back.
PUBLIC_EVENT_TYPES: tuple[str, ...] = (
    "PointsAwarded", "PointsSpent", "PointsExpired", "PointsReversed", "PointsRefunded",
    "TierChanged", "LifecycleChanged", "GroupJoined",
    "RedemptionCompleted", "RedemptionCancelled", "CouponUsed", "CouponTransferred",
    "PacketMade", "PacketGrabbed", "TeamFormed", "CampaignSettled",
    "TaskCompleted", "TaskRewarded",
)
# Bus events the webhooks service pushes as several public events, one a member, of this type.
PUSHED_AS: dict[str, str] = {"TierChanges": "TierChanged"}
for _public in (*PUBLIC_EVENT_TYPES, *PUSHED_AS):
    SUBSCRIPTIONS[_public] = (*SUBSCRIPTIONS.get(_public, ()), WEBHOOK_DELIVERIES)
