"""The pure wallet rules: which coupons may be used or given away, what members see of them,
and what a bulk issue hands out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from proto.rewards import IssueIn
from services.rewards.wallet import rules
from services.runtime.errors import Conflict, ValidationFailed

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def test_an_active_coupon_past_its_expiry_shows_as_expired() -> None:
    assert rules.shown_state("active", NOW + timedelta(seconds=1), NOW) == "active"
    assert rules.shown_state("active", NOW, NOW) == "expired"
    assert rules.shown_state("used", NOW - timedelta(days=1), NOW) == "used"
    assert rules.shown_state("transferred", NOW, NOW) == "transferred"


def test_only_active_unexpired_coupons_are_usable() -> None:
    rules.check_usable("active", NOW + timedelta(days=1), NOW)
    with pytest.raises(Conflict) as used:
        rules.check_usable("used", NOW + timedelta(days=1), NOW)
    assert (used.value.code, used.value.message, used.value.details) == (
        "coupon_not_active", "the coupon is used", {"state": "used"})
    with pytest.raises(Conflict) as expired:
        rules.check_usable("active", NOW, NOW)
    assert (expired.value.message, expired.value.details) == (
        "the coupon expired", {"state": "expired"})


def test_a_coupon_is_not_transferred_to_its_owner() -> None:
    rules.check_transfer("alice", "bob")
    with pytest.raises(ValidationFailed):
        rules.check_transfer("alice", "alice")


def issue(**fields: Any) -> IssueIn:
    return msgspec.convert({"issue_id": "i", "reason": "r", "member_ids": ["m"], **fields},
                           IssueIn)


def test_issues_name_what_they_hand_out() -> None:
    rules.check_issue(issue(kind="tickets", box_id="b"))
    rules.check_issue(issue(kind="coupon", sku="s"))
    with pytest.raises(ValidationFailed) as no_box:
        rules.check_issue(issue(kind="tickets", sku="s"))
    assert no_box.value.details == {"field": "box_id"}
    with pytest.raises(ValidationFailed) as no_sku:
        rules.check_issue(issue(kind="perk", box_id="b"))
    assert (no_sku.value.message, no_sku.value.details) == (
        "perk issues need a sku", {"field": "sku"})


def test_each_member_gets_count_coupons_in_a_stable_order() -> None:
    members = rules.issue_members(["b", "a", "b", "c"])
    assert members == ["a", "b", "c"]
    assert rules.issue_slots(members, 2) == ["a", "a", "b", "b", "c", "c"]
    assert rules.expiry(NOW, 30) == NOW + timedelta(days=30)


def test_an_issue_names_its_members_or_a_segment_never_both() -> None:
    rules.check_issue(issue(kind="coupon", sku="s"))
    rules.check_issue(msgspec.convert({"issue_id": "i", "reason": "r", "kind": "coupon",
                                       "sku": "s", "segment_id": "seg"}, IssueIn))
    with pytest.raises(ValidationFailed) as both:
        rules.check_issue(issue(kind="coupon", sku="s", segment_id="seg"))
    assert both.value.details == {"field": "segment_id"}
    with pytest.raises(ValidationFailed) as neither:
        rules.check_issue(issue(kind="coupon", sku="s", member_ids=None))
    assert neither.value.details == {"field": "member_ids"}
