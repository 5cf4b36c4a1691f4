"""Pure rules of the wallet: when a coupon can be used or given away, what a member sees of it,
and what a bulk issue hands out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from proto.rewards import CouponState, IssueIn
from services.runtime.errors import Conflict, ValidationFailed

# What a draw's prize coupon is valid for when its perk is not in the catalog.
PRIZE_COUPON_DAYS = 30


def shown_state(state: CouponState, expires_at: datetime, now: datetime) -> CouponState:
    """An active coupon past its expiry shows as expired (nothing rewrites the row)."""
    if state == "active" and expires_at <= now:
        return "expired"
    return state


def check_usable(state: str, expires_at: datetime, now: datetime) -> None:
    """Only an active coupon before its expiry may be used or transferred."""
    if state != "active":
        raise Conflict(f"the coupon is {state}", code="coupon_not_active", state=state)
    if expires_at <= now:
        raise Conflict("the coupon expired", code="coupon_not_active", state="expired")


def check_transfer(owner_id: str, to_member_id: str) -> None:
    if owner_id == to_member_id:
        raise ValidationFailed("a coupon cannot be transferred to its owner",
                               field="to_member_id")


def check_issue(body: IssueIn) -> None:
    """Exactly one of ``member_ids`` and ``segment_id``; tickets are for a box, perks and
    coupons for a sku."""
    if (body.member_ids is None) == (body.segment_id is None):
        raise ValidationFailed("give exactly one of member_ids and segment_id",
                               field="segment_id" if body.segment_id else "member_ids")
    if body.kind == "tickets":
        if body.box_id is None:
            raise ValidationFailed("tickets need a box_id", field="box_id")
    elif body.sku is None:
        raise ValidationFailed(f"{body.kind} issues need a sku", field="sku")


def issue_members(member_ids: Sequence[str]) -> list[str]:
    """Each member once, in a stable order (the order codes are handed out in)."""
    return sorted(set(member_ids))


def issue_slots(members: Sequence[str], count: int) -> list[str]:
    """One entry per coupon to make: each member ``count`` times, next to each other."""
    return [member for member in members for _ in range(count)]


def expiry(now: datetime, valid_days: int) -> datetime:
    return now + timedelta(days=valid_days)
