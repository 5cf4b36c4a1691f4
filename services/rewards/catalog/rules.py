"""Pure rules of the catalog: when a member may redeem a perk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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
    if not perk.enabled:
        return "not_available"
    if perk.starts_at is not None and now < perk.starts_at:
        return "not_available"
    if perk.ends_at is not None and now >= perk.ends_at:
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
