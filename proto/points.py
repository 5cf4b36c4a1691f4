"""Contracts of the points service (``/points/v1``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from msgspec import Meta

from proto.common import (
    NO_NUL,
    PATTERN_END,
    Cents,
    ErrorBody,
    Id,
    Points,
    Request,
    Response,
    ShortText,
)

# An action's name, also in the path of PUT /rules/{action}.
ACTION_PATTERN = r"^[a-z][a-z0-9_]*" + PATTERN_END
ACTION_MAX_LENGTH = 64
ActionName = Annotated[str, Meta(min_length=1, max_length=ACTION_MAX_LENGTH,
                                 pattern=ACTION_PATTERN)]
Period = Literal["day", "week", "month", "lifetime"]
AttributeValue = (Annotated[str, Meta(max_length=256, pattern=NO_NUL)]
                  | Annotated[int, Meta(ge=-(2**53), le=2**53)] | float | bool)
Attributes = Annotated[
    dict[Annotated[str, Meta(min_length=1, max_length=64, pattern=NO_NUL)], AttributeValue],
    Meta(max_length=32)]
Reason = Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)]
EntryKind = Literal["earn", "grant", "hold", "capture", "void", "debit", "reversal", "expiry",
                    "refund"]
HoldStatus = Literal["pending", "captured", "voided", "expired"]
MAX_BATCH_EVENTS = 1000
MAX_BATCH_HOLDS = 1000
MAX_BATCH_GRANTS = 1000
MAX_GRANT_ITEMS = 10_000


# --- rules ---------------------------------------------------------------------------------

class Limit(Request, frozen=True, kw_only=True):
    period: Period
    max_events: Annotated[int, Meta(ge=1, le=1_000_000)] | None = None
    max_points: Annotated[int, Meta(ge=1, le=1_000_000_000)] | None = None


class RuleIn(Request, frozen=True, kw_only=True):
    points: Annotated[int, Meta(ge=0, le=1_000_000)] = 0
    points_per_unit: Annotated[int, Meta(ge=0, le=1_000_000)] = 0
    unit_cents: Annotated[int, Meta(ge=1, le=100_000_000)] | None = None
    limits: Annotated[list[Limit], Meta(max_length=4)] = []
    expires_after_days: Annotated[int, Meta(ge=1, le=36_500)] = 365
    enabled: bool = True


class LimitOut(Response, frozen=True, kw_only=True):
    period: Period
    max_events: int | None = None
    max_points: int | None = None


class Rule(Response, frozen=True, kw_only=True):
    action: str
    points: int
    points_per_unit: int
    unit_cents: int | None
    limits: list[LimitOut]
    expires_after_days: int
    enabled: bool
    builtin: bool


class RuleList(Response, frozen=True, kw_only=True):
    items: list[Rule]


# --- events --------------------------------------------------------------------------------

class EventIn(Request, frozen=True, kw_only=True):
    event_id: Id
    member_id: Id
    action: ActionName
    occurred_at: datetime | None = None
    amount_cents: Cents | None = None
    attributes: Attributes | None = None


class EventResult(Response, frozen=True, kw_only=True):
    event_id: str
    member_id: str
    status: Literal["awarded", "capped"]
    points: int
    capped_points: int
    balance: int


class EventBatchIn(Request, frozen=True, kw_only=True):
    events: Annotated[list[EventIn], Meta(min_length=1, max_length=MAX_BATCH_EVENTS)]


class BatchItemError(Response, frozen=True, kw_only=True):
    code: str
    message: str


class BatchItem(Response, frozen=True, kw_only=True):
    """One event's outcome: ``status_code`` as if it had been posted alone; ``result`` or
    ``error``."""

    event_id: str
    status_code: int
    result: EventResult | None = None
    error: BatchItemError | None = None


class EventBatchResult(Response, frozen=True, kw_only=True):
    items: list[BatchItem]


class ReversalIn(Request, frozen=True, kw_only=True):
    reversal_id: Id
    amount_cents: Annotated[int, Meta(gt=0, le=100_000_000_000)] | None = None


class Reversal(Response, frozen=True, kw_only=True):
    reversal_id: str
    event_id: str
    member_id: str
    refunded_cents: int
    points: int
    clawed_back: int
    shortfall: int
    balance: int


# --- members -------------------------------------------------------------------------------

class Expiring(Response, frozen=True, kw_only=True):
    points: int
    expires_at: datetime


class Member(Response, frozen=True, kw_only=True):
    member_id: str
    available: int
    held: int
    lifetime_earned: int
    spent: int
    expired: int
    reversed: int
    spend_cents: int
    earn_multiplier: float
    expiring: list[Expiring]


class Entry(Response, frozen=True, kw_only=True):
    entry_id: str
    kind: EntryKind
    points: int
    held_change: int
    balance_after: int
    held_after: int
    ref: str
    at: datetime


class EntryPage(Response, frozen=True, kw_only=True):
    items: list[Entry]
    next_cursor: str | None


class MultiplierIn(Request, frozen=True, kw_only=True):
    # Stored with 4 decimals: anything smaller than 0.0001 would be stored as 0.
    earn_multiplier: Annotated[float, Meta(ge=0.0001, le=100)]


# --- holds and debits ----------------------------------------------------------------------

class HoldIn(Request, frozen=True, kw_only=True):
    hold_id: Id
    member_id: Id
    points: Points
    reason: Reason
    expires_in_s: Annotated[int, Meta(ge=1, le=7 * 86_400)] = 900


class Hold(Response, frozen=True, kw_only=True):
    hold_id: str
    member_id: str
    points: int
    status: HoldStatus
    available: int
    held: int
    expires_at: datetime | None = None


class SettleIn(Request, frozen=True, kw_only=True):
    """Body of capture and void (optional)."""

    note: ShortText | None = None


class HoldBatchIn(Request, frozen=True, kw_only=True):
    holds: Annotated[list[HoldIn], Meta(min_length=1, max_length=MAX_BATCH_HOLDS)]


class SettlementIn(Request, frozen=True, kw_only=True):
    """A capture or void of one hold, as ``POST /holds/{hold_id}/{action}`` with ``note``."""

    hold_id: Id
    action: Literal["capture", "void"]
    note: ShortText | None = None


class SettlementBatchIn(Request, frozen=True, kw_only=True):
    settlements: Annotated[list[SettlementIn], Meta(min_length=1, max_length=MAX_BATCH_HOLDS)]


class HoldBatchItem(Response, frozen=True, kw_only=True):
    """One hold's outcome: ``status_code`` and ``result`` (the hold) or ``error`` (the error
    body) as its own request would have answered them."""

    hold_id: str
    status_code: int
    result: Hold | None = None
    error: ErrorBody | None = None
    replayed: bool = False  # what Idempotent-Replayed would say of the item alone


class HoldBatchResult(Response, frozen=True, kw_only=True):
    items: list[HoldBatchItem]


class RefundIn(Request, frozen=True, kw_only=True):
    refund_id: Id


class Refund(Response, frozen=True, kw_only=True):
    refund_id: str
    hold_id: str
    member_id: str
    points: int
    available: int


class DebitIn(Request, frozen=True, kw_only=True):
    debit_id: Id
    member_id: Id
    points: Points
    reason: Reason


class Debit(Response, frozen=True, kw_only=True):
    debit_id: str
    member_id: str
    points: int
    available: int


class MoveIn(Request, frozen=True, kw_only=True):
    move_id: Id
    from_member_id: Id
    to_member_id: Id
    points: Points
    reason: Reason
    expires_after_days: Annotated[int, Meta(ge=1, le=36_500)] = 365


class Move(Response, frozen=True, kw_only=True):
    move_id: str
    from_member_id: str
    to_member_id: str
    points: int
    from_available: int
    to_available: int


class RetirementIn(Request, frozen=True, kw_only=True):
    retirement_id: Id
    member_id: Id
    points: Points
    reason: Reason


class Retirement(Response, frozen=True, kw_only=True):
    retirement_id: str
    member_id: str
    points: int
    available: int


# --- grants --------------------------------------------------------------------------------

class GrantItem(Request, frozen=True, kw_only=True):
    member_id: Id
    points: Points
    expires_at: datetime | None = None


class GrantIn(Request, frozen=True, kw_only=True):
    """Either ``items`` (each member's points), or ``segment_id`` with the ``points`` (and
    ``expires_at``) every member of that tiers segment's frozen list (at most MAX_GRANT_ITEMS)
    gets."""

    grant_id: Id
    reason: Reason
    items: Annotated[list[GrantItem], Meta(min_length=1, max_length=MAX_GRANT_ITEMS)] | None = None
    segment_id: Id | None = None
    points: Points | None = None
    expires_at: datetime | None = None


class Grant(Response, frozen=True, kw_only=True):
    grant_id: str
    item_count: int
    total_points: int


class ItemGrantIn(Request, frozen=True, kw_only=True):
    """A grant of items, as ``POST /grants`` takes one (a grant to a segment is made alone)."""

    grant_id: Id
    reason: Reason
    items: Annotated[list[GrantItem], Meta(min_length=1, max_length=MAX_GRANT_ITEMS)]


class GrantBatchIn(Request, frozen=True, kw_only=True):
    """Up to MAX_BATCH_GRANTS grants, of MAX_GRANT_ITEMS items in all."""

    grants: Annotated[list[ItemGrantIn], Meta(min_length=1, max_length=MAX_BATCH_GRANTS)]


class GrantBatchItem(Response, frozen=True, kw_only=True):
    """One grant's outcome: ``status_code`` and ``result`` or ``error`` as its own request
    would have answered them."""

    grant_id: str
    status_code: int
    result: Grant | None = None
    error: ErrorBody | None = None
    replayed: bool = False  # what Idempotent-Replayed would say of the item alone


class GrantBatchResult(Response, frozen=True, kw_only=True):
    items: list[GrantBatchItem]


# --- ledger check --------------------------------------------------------------------------

class LedgerProblem(Response, frozen=True, kw_only=True):
    tenant_id: str
    member_id: str | None
    problem: str
    detail: dict[str, object]


class LedgerCheck(Response, frozen=True, kw_only=True):
    ok: bool
    problems: list[LedgerProblem]


# --- stats (the operators' console) ---------------------------------------------------------

class DailyFigures(Response, frozen=True, kw_only=True):
    """One local day of the tenant's ledger, from its transfers (entries) of that day. Escrow
    members (a red-packet pool's or packet's points, see proto.common) are left out throughout:
    these are the figures of people.

    - ``issued``: points credited to members from outside them: entries of kind ``earn``
      (events), ``grant`` (grants, and the receiving side of a move) and ``refund`` (a captured
      hold given back).
    - ``spent``: entries of kind ``debit`` (debits, and the sending side of a move) and
      ``capture`` (captured holds).
    - ``expired``: entries of kind ``expiry``, on the day the expiry sweep moved them.
    - ``reversed``: entries of kind ``reversal``: points clawed back by event reversals, and
      points retired to the issuance account.
    - ``balance``: a stock, not a flow: the points members hold at the end of the day,
      available and on hold (in pending holds), as the ledger's entries leave them. Each day's
      balance is the day before's plus ``issued``, less ``spent``, ``expired`` and ``reversed``:
      a lot past its expiry counts until the expiry sweep (every minute) moves it, when
      ``expired`` counts it. ``GET /members/{id}`` leaves such points out of ``available`` at
      once, so for that minute the two differ.

    Placing and settling holds moves points between a member's available and held balances only,
    so ``hold`` and ``void`` entries are in no flow and leave the balance as it is."""

    day: date
    issued: int
    spent: int
    expired: int
    reversed: int
    balance: int


class DailyStats(Response, frozen=True, kw_only=True):
    """The last ``days`` local days of the tenant's time zone, oldest first, today last, every
    day present."""

    time_zone: str
    days: list[DailyFigures]


class HourlyFigures(Response, frozen=True, kw_only=True):
    """Events the ledger recorded in one hour of the tenant's clock (``hour`` is its start, an
    instant written in UTC: half past on a UTC clock in a zone half an hour off): every
    accepted event (POST /events, /events/batch and earning from red-packet activity), capped
    ones included, and the points they awarded."""

    hour: datetime
    events: int
    points: int


class HourlyStats(Response, frozen=True, kw_only=True):
    """The last ``hours`` hours, oldest first, the current one last, every hour present."""

    time_zone: str
    hours: list[HourlyFigures]


class OutboxLag(Response, frozen=True, kw_only=True):
    """This tenant's events in the outbox that some consumer has not applied yet (never sent
    ones included), and the age of the oldest of them (null when there is none); ``parked``:
    events a consumer has failed to apply through eight sends (about half an hour), counted
    apart: still kept and still sent, but a fault to look at rather than a lag."""

    pending: int
    oldest_pending_age_s: float | None
    parked: int


class StatsOverview(Response, frozen=True, kw_only=True):
    """``members``: members with a ledger account (escrow members left out);
    ``active_members_7d`` / ``_30d``: members with an event that occurred in the last 7 / 30
    days; ``at``: when these were read."""

    members: int
    active_members_7d: int
    active_members_30d: int
    outbox: OutboxLag
    at: datetime
