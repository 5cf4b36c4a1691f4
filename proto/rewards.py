"""Contracts of the rewards service (``/rewards/v1``): catalog, redemptions, wallet, issues."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from proto.common import NO_NUL, Id, LongText, Request, Response

Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)]
TierName = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
Code = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
MAX_CODES_PER_UPLOAD = 10_000
MAX_ISSUE_MEMBERS = 10_000
MAX_QUANTITY = 100

RedemptionStatus = Literal["completed", "pending_fulfilment", "cancelled"]
CouponState = Literal["active", "used", "expired", "transferred"]


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
    member_ids: Annotated[list[Id], Meta(min_length=1, max_length=MAX_ISSUE_MEMBERS)]


class Issued(Response, frozen=True, kw_only=True):
    issue_id: str
    kind: str
    member_count: int
    count: int
