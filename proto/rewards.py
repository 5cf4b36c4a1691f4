"""Contracts of the rewards service (``/rewards/v1``): catalog, redemptions, wallet, issues."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from proto.common import NO_NUL, PATTERN_END, Id, LongText, Request, Response

Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)]
TierName = Annotated[str, Meta(min_length=1, max_length=64,
                               pattern=r"^[A-Za-z0-9._-]+" + PATTERN_END)]
Code = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+" + PATTERN_END)]
MAX_CODES_PER_UPLOAD = 10_000
MAX_ISSUE_MEMBERS = 10_000
MAX_QUANTITY = 100

RedemptionStatus = Literal["completed", "pending_fulfilment", "cancelled"]
CouponState = Literal["active", "used", "expired", "transferred"]
PoolStatus = Literal["open", "settled"]


class PerkIn(Request, frozen=True, kw_only=True):
    name: Name
    description: LongText = ""
    cost_points: Annotated[int, Meta(gt=0, le=1_000_000_000)]
    stock: Annotated[int, Meta(ge=0, le=100_000_000)] | None = None
    per_member_limit: Annotated[int, Meta(gt=0, le=1_000_000)] | None = None
    tiers: Annotated[list[TierName], Meta(min_length=1, max_length=20)] | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    fulfilment: Literal["code", "manual"] = "manual"
    coupon_valid_days: Annotated[int, Meta(ge=1, le=3650)] = 30
    enabled: bool = True


class Eligibility(Response, frozen=True, kw_only=True):
    eligible: bool
    reason: str | None = None
    remaining_allowance: int | None = None


class Perk(Response, frozen=True, kw_only=True):
    sku: str
    name: str
    description: str
    cost_points: int
    stock: int | None
    per_member_limit: int | None
    tiers: list[str] | None
    starts_at: datetime | None
    ends_at: datetime | None
    fulfilment: Literal["code", "manual"]
    coupon_valid_days: int
    enabled: bool
    codes_available: int | None = None
    eligibility: Eligibility | None = None


class PerkList(Response, frozen=True, kw_only=True):
    items: list[Perk]


class CodesIn(Request, frozen=True, kw_only=True):
    codes: Annotated[list[Code], Meta(min_length=1, max_length=MAX_CODES_PER_UPLOAD)]


class CodesAdded(Response, frozen=True, kw_only=True):
    sku: str
    added: int
    duplicates: int
    available: int


class RedemptionIn(Request, frozen=True, kw_only=True):
    redemption_id: Id
    member_id: Id
    sku: Id
    quantity: Annotated[int, Meta(ge=1, le=MAX_QUANTITY)] = 1


class Redemption(Response, frozen=True, kw_only=True):
    redemption_id: str
    member_id: str
    sku: str
    quantity: int
    points: int
    status: RedemptionStatus
    codes: list[str] = []
    coupon_ids: list[str] = []


class RedemptionList(Response, frozen=True, kw_only=True):
    items: list[Redemption]
    next_cursor: str | None


class Coupon(Response, frozen=True, kw_only=True):
    coupon_id: str
    sku: str
    code: str | None
    state: CouponState
    expires_at: datetime
    transferred_to: str | None = None


class CouponList(Response, frozen=True, kw_only=True):
    items: list[Coupon]
    next_cursor: str | None


class TransferIn(Request, frozen=True, kw_only=True):
    transfer_id: Id
    to_member_id: Id


class Transferred(Response, frozen=True, kw_only=True):
    transfer_id: str
    from_coupon_id: str
    coupon_id: str
    to_member_id: str


class UseIn(Request, frozen=True, kw_only=True):
    use_id: Id


class Used(Response, frozen=True, kw_only=True):
    use_id: str
    coupon_id: str
    member_id: str
    sku: str
    used_at: datetime


class IssueIn(Request, frozen=True, kw_only=True):
    issue_id: Id
    reason: Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)]
    kind: Literal["perk", "coupon", "tickets"]
    sku: Id | None = None
    box_id: Id | None = None
    count: Annotated[int, Meta(ge=1, le=100)] = 1
    # Exactly one of the two: the members, or a tiers segment whose frozen member list (at
    # most MAX_ISSUE_MEMBERS) is read at issue time.
    member_ids: Annotated[list[Id], Meta(min_length=1, max_length=MAX_ISSUE_MEMBERS)] | None = None
    segment_id: Id | None = None


class Issued(Response, frozen=True, kw_only=True):
    issue_id: str
    kind: str
    member_count: int
    count: int


# --- blind boxes ---------------------------------------------------------------------------

class PrizeIn(Request, frozen=True, kw_only=True):
    prize_id: Id
    name: Name
    weight: Annotated[int, Meta(gt=0, le=1_000_000_000)]
    stock: Annotated[int, Meta(ge=0, le=100_000_000)] | None = None
    kind: Literal["points", "perk", "coupon", "nothing"]
    points: Annotated[int, Meta(gt=0, le=1_000_000_000)] | None = None
    sku: Id | None = None


class PityIn(Request, frozen=True, kw_only=True):
    after_draws: Annotated[int, Meta(ge=1, le=1000)]
    prize_ids: Annotated[list[Id], Meta(min_length=1, max_length=50)]


class BoxIn(Request, frozen=True, kw_only=True):
    name: Name
    cost_points: Annotated[int, Meta(ge=0, le=1_000_000_000)]
    prizes: Annotated[list[PrizeIn], Meta(min_length=1, max_length=50)]
    pity: PityIn | None = None
    daily_limit_per_member: Annotated[int, Meta(ge=1, le=10_000)] | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    min_age: Literal[8, 18] | None = None
    enabled: bool = True


class PityRule(Response, frozen=True, kw_only=True):
    after_draws: int
    prize_ids: list[str]


class PrizeOdds(Response, frozen=True, kw_only=True):
    prize_id: str
    name: str
    kind: str
    probability: float
    stock_left: int | None


class Odds(Response, frozen=True, kw_only=True):
    box_id: str
    cost_points: int
    prizes: list[PrizeOdds]
    pity: PityRule | None
    pity_counter: int | None = None
    seed_no: int
    commitment: str


class BoxSummary(Response, frozen=True, kw_only=True):
    box_id: str
    name: str
    cost_points: int
    prizes: int
    pity: bool
    seed_no: int | None
    enabled: bool
    updated_at: datetime


class BoxList(Response, frozen=True, kw_only=True):
    items: list[BoxSummary]
    next_cursor: str | None


class Box(Response, frozen=True, kw_only=True):
    """A box's definition in the shape ``PUT /boxes/{box_id}`` takes (each prize's ``stock`` is
    what is left of it), and what the PUT does not set."""

    box_id: str
    definition: BoxIn
    seed_no: int | None
    updated_at: datetime


class PrizeCount(Response, frozen=True, kw_only=True):
    prize_id: str
    name: str
    probability: float
    observed: int
    expected: float


class BoxStats(Response, frozen=True, kw_only=True):
    """Draws picked under the box's current definition (made since ``since``, its last PUT):
    ``draws`` counts those drawn by the odds, whose prizes ``observed`` counts; ``pity_draws``
    those the pity rule decided, left out of both."""

    box_id: str
    since: datetime
    draws: int
    pity_draws: int
    prizes: list[PrizeCount]


class DrawIn(Request, frozen=True, kw_only=True):
    draw_id: Id
    member_id: Id
    use_ticket: bool = False


class DrawnPrize(Response, frozen=True, kw_only=True):
    prize_id: str
    name: str
    kind: str
    points: int | None = None
    coupon_id: str | None = None


class DrawResult(Response, frozen=True, kw_only=True):
    draw_id: str
    prize: DrawnPrize
    paid_with: Literal["points", "ticket"]
    pity_counter: int


class WeightedPrize(Response, frozen=True, kw_only=True):
    prize_id: str
    weight: int


class DrawProof(Response, frozen=True, kw_only=True):
    """Everything needed to recompute one draw: roll = HMAC-SHA256(seed, draw_id), first 8
    bytes big-endian, scaled onto the candidates' cumulative weights in this order."""

    draw_id: str
    box_id: str
    seed_no: int
    commitment: str
    seed: str | None
    candidates: list[WeightedPrize]
    pity_applied: bool
    prize_id: str


class TicketsIn(Request, frozen=True, kw_only=True):
    ticket_grant_id: Id
    member_id: Id
    box_id: Id
    count: Annotated[int, Meta(ge=1, le=100)] = 1


class Tickets(Response, frozen=True, kw_only=True):
    ticket_grant_id: str
    member_id: str
    box_id: str
    count: int


class EligibilityIn(Request, frozen=True, kw_only=True):
    age_band: Literal["under_8", "8_17", "adult"]
    guardian_consent: bool = False


class SeedRotated(Response, frozen=True, kw_only=True):
    box_id: str
    revealed_seed_no: int | None
    revealed_seed: str | None
    seed_no: int
    commitment: str


# --- red packets ---------------------------------------------------------------------------

class PoolIn(Request, frozen=True, kw_only=True):
    pool_id: Id
    name: Name
    total_points: Annotated[int, Meta(gt=0, le=1_000_000_000)]
    packets: Annotated[int, Meta(gt=0, le=100_000)]
    split: Literal["lucky", "equal"] = "lucky"
    open_cost_points: Annotated[int, Meta(ge=0, le=1_000_000)] = 0
    per_member_opens: Annotated[int, Meta(ge=1, le=1000)] = 1
    starts_at: datetime | None = None
    ends_at: datetime


class PoolOpenIn(Request, frozen=True, kw_only=True):
    open_id: Id
    member_id: Id


class PoolOpened(Response, frozen=True, kw_only=True):
    open_id: str
    member_id: str
    points: int


class PoolOpenView(Response, frozen=True, kw_only=True):
    open_id: str
    member_id: str
    points: int
    at: datetime


class Pool(Response, frozen=True, kw_only=True):
    pool_id: str
    name: str
    total_points: int
    packets: int
    split: str
    open_cost_points: int
    per_member_opens: int
    starts_at: datetime | None
    ends_at: datetime
    status: Literal["open", "settled"]
    remaining_packets: int
    remaining_points: int
    latest_opens: list[PoolOpenView]


class PoolSummary(Response, frozen=True, kw_only=True):
    pool_id: str
    name: str
    total_points: int
    packets: int
    split: str
    open_cost_points: int
    per_member_opens: int
    starts_at: datetime | None
    ends_at: datetime
    status: PoolStatus
    remaining_packets: int
    remaining_points: int
    created_at: datetime


class PoolList(Response, frozen=True, kw_only=True):
    items: list[PoolSummary]
    next_cursor: str | None


class PacketIn(Request, frozen=True, kw_only=True):
    packet_id: Id
    member_id: Id
    total_points: Annotated[int, Meta(gt=0, le=100_000_000)]
    shares: Annotated[int, Meta(gt=0, le=1000)]
    split: Literal["lucky", "equal"] = "lucky"
    group_id: Id | None = None
    expires_in_s: Annotated[int, Meta(ge=60, le=7 * 86_400)] = 86_400


class GrabIn(Request, frozen=True, kw_only=True):
    member_id: Id
    # The grab's id, as every value-moving request has. Without one (older clients) the grab is
    # keyed by packet and member alone: grabbing again answers with the member's first grab.
    grab_id: Id | None = None


class Grab(Response, frozen=True, kw_only=True):
    packet_id: str
    member_id: str
    points: int
    grab_id: str | None = None


class GrabView(Response, frozen=True, kw_only=True):
    member_id: str
    points: int
    at: datetime


class Packet(Response, frozen=True, kw_only=True):
    packet_id: str
    member_id: str
    total_points: int
    shares: int
    split: str
    group_id: str | None
    expires_at: datetime
    status: Literal["open", "expired"]
    remaining_shares: int
    remaining_points: int
    refunded_points: int | None
    grabs: list[GrabView]
