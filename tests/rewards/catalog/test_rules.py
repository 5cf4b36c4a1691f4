"""The pure catalog rules: when a member may redeem a perk, and what the catalog tells them."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.rewards.catalog import rules
from services.runtime.errors import Conflict

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


OPEN = rules.PerkRules(enabled=True, starts_at=None, ends_at=None, tiers=None,
                       per_member_limit=None, stock_left=None)


def perk(**changes: Any) -> rules.PerkRules:
    return dataclasses.replace(OPEN, **changes)


def test_a_perk_is_available_inside_its_window_while_enabled() -> None:
    assert rules.availability_refusal(perk(), NOW) is None
    assert rules.availability_refusal(perk(starts_at=NOW, ends_at=NOW + HOUR), NOW) is None
    assert rules.availability_refusal(perk(ends_at=NOW), NOW) == "not_available"
    assert rules.availability_refusal(perk(starts_at=NOW + HOUR), NOW) == "not_available"
    assert rules.availability_refusal(perk(enabled=False), NOW) == "not_available"


def test_tiers_limit_who_may_redeem() -> None:
    assert rules.eligibility_refusal(perk(), None) is None
    assert rules.eligibility_refusal(perk(tiers=["vip"]), "vip") is None
    assert rules.eligibility_refusal(perk(tiers=["vip"]), "basic") == "not_eligible"
    assert rules.eligibility_refusal(perk(tiers=["vip"]), None) == "not_eligible"


def test_the_allowance_left_never_goes_below_zero() -> None:
    assert rules.remaining_allowance(perk(), 7) is None
    assert rules.remaining_allowance(perk(per_member_limit=3), 1) == 2
    assert rules.remaining_allowance(perk(per_member_limit=3), 5) == 0


def test_eligibility_gives_the_first_reason_in_order() -> None:
    shown = rules.eligibility(perk(per_member_limit=2, stock_left=0), None, 2, NOW)
    assert (shown.eligible, shown.reason, shown.remaining_allowance) == (False, "limit_reached", 0)
    assert rules.eligibility(perk(stock_left=0), None, 0, NOW).reason == "out_of_stock"
    closed = perk(enabled=False, tiers=["vip"], stock_left=0)
    assert rules.eligibility(closed, None, 0, NOW).reason == "not_available"
    assert rules.eligibility(perk(tiers=["vip"]), None, 0, NOW).reason == "not_eligible"
    fine = rules.eligibility(perk(per_member_limit=2), None, 1, NOW)
    assert (fine.eligible, fine.reason, fine.remaining_allowance) == (True, None, 1)


def test_a_redemption_is_refused_with_the_details_clients_see() -> None:
    later = perk(starts_at=NOW + HOUR)
    with pytest.raises(Conflict) as refused:
        rules.check_redeemable(later, None, 1, NOW)
    assert (refused.value.code, refused.value.details) == (
        "not_available", {"starts_at": (NOW + HOUR).isoformat(), "ends_at": None})
    assert refused.value.message == "the perk is not available now"
    with pytest.raises(Conflict) as refused:
        rules.check_redeemable(perk(tiers=["vip"]), "basic", 1, NOW)
    assert (refused.value.code, refused.value.details) == (
        "not_eligible", {"tiers": ["vip"], "member_tier": "basic"})
    with pytest.raises(Conflict) as refused:
        rules.check_redeemable(perk(per_member_limit=2), None, 3, NOW)
    assert (refused.value.code, refused.value.details) == (
        "limit_reached", {"per_member_limit": 2})
    rules.check_redeemable(perk(per_member_limit=2), None, 2, NOW)


def test_cancelling_shows_as_cancelled() -> None:
    assert rules.shown_status("cancelling") == "cancelled"
    assert rules.shown_status("cancelled") == "cancelled"
    assert rules.shown_status("pending_fulfilment") == "pending_fulfilment"
