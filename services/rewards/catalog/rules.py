"""Pure rules of the catalog: when a member may redeem a perk, and how many more they may take."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from proto.rewards import Eligibility, RedemptionStatus
from services.rewards.refusals import refused
from services.rewards.windows import open_at


@dataclass(frozen=True)
class PerkRules:
    enabled: bool
    starts_at: datetime | None
    ends_at: datetime | None
    tiers: list[str] | None
    per_member_limit: int | None
    stock_left: int | None


def availability_refusal(perk: PerkRules, now: datetime) -> str | None:
    """``not_available`` when the perk is disabled or outside its window."""
    if not perk.enabled or not open_at(now, perk.starts_at, perk.ends_at):
        return "not_available"
    return None


def eligibility_refusal(perk: PerkRules, member_tier: str | None) -> str | None:
    """``not_eligible`` when the perk is for tiers the member is not in (unknown tier: none)."""
    if perk.tiers is not None and member_tier not in perk.tiers:
        return "not_eligible"
    return None


def remaining_allowance(perk: PerkRules, redeemed: int) -> int | None:
    if perk.per_member_limit is None:
        return None
    return max(perk.per_member_limit - redeemed, 0)


def eligibility(perk: PerkRules, member_tier: str | None, redeemed: int,
                now: datetime) -> Eligibility:
    """What the catalog tells a member about a perk: the first reason they may not redeem it
    (window, tier, their allowance, stock) and how many more they may take."""
    reason = availability_refusal(perk, now) or eligibility_refusal(perk, member_tier)
    remaining = remaining_allowance(perk, redeemed)
    if reason is None and remaining == 0:
        reason = "limit_reached"
    if reason is None and perk.stock_left == 0:
        reason = "out_of_stock"
    return Eligibility(eligible=reason is None, reason=reason, remaining_allowance=remaining)


def check_redeemable(perk: PerkRules, member_tier: str | None, quantity: int,
                     now: datetime) -> None:
    """The 409 a redemption of ``quantity`` gets before anything is held or reserved (stock is
    decided later, against the stock itself)."""
    if availability_refusal(perk, now):
        raise refused("not_available", starts_at=_iso(perk.starts_at),
                      ends_at=_iso(perk.ends_at))
    if eligibility_refusal(perk, member_tier):
        raise refused("not_eligible", tiers=perk.tiers, member_tier=member_tier)
    if perk.per_member_limit is not None and quantity > perk.per_member_limit:
        raise refused("limit_reached", per_member_limit=perk.per_member_limit)


def shown_status(status: str) -> RedemptionStatus:
    """A cancelling redemption shows as cancelled: its refund is on its way and cannot stop."""
    return "cancelled" if status.startswith("cancel") else cast(RedemptionStatus, status)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
