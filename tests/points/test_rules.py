"""The ledger's pure rules, without servers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proto.points import GrantIn, GrantItem, Limit, RuleIn
from services.points import rules
from services.runtime import times
from services.runtime.errors import ValidationFailed

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def refused_field(call: Callable[..., object], *args: object) -> str:
    with pytest.raises(ValidationFailed) as raised:
        call(*args)
    return str(raised.value.details["field"])


# --- validate_rule -------------------------------------------------------------------------

def test_valid_rules_pass() -> None:
    rules.validate_rule(RuleIn(points=5))
    rules.validate_rule(RuleIn(points_per_unit=1, unit_cents=100))
    rules.validate_rule(RuleIn(points=1, limits=[Limit(period="day", max_events=3),
                                                 Limit(period="month", max_points=50)]))


@pytest.mark.parametrize(("rule", "field"), [
    (RuleIn(points_per_unit=1), "unit_cents"),
    (RuleIn(unit_cents=100), "unit_cents"),
    (RuleIn(limits=[Limit(period="day", max_events=1), Limit(period="day", max_points=2)]),
     "limits"),
    (RuleIn(limits=[Limit(period="week", max_events=1), Limit(period="day")]), "limits[1]"),
])
def test_invalid_rules_name_their_field(rule: RuleIn, field: str) -> None:
    assert refused_field(rules.validate_rule, rule) == field


# --- stored_limits -------------------------------------------------------------------------

def test_stored_limits_leave_out_absent_maxima() -> None:
    rule = RuleIn(limits=[Limit(period="day", max_events=3),
                          Limit(period="week", max_points=40),
                          Limit(period="lifetime", max_events=1, max_points=9)])
    assert rules.stored_limits(rule) == [
        {"period": "day", "max_events": 3},
        {"period": "week", "max_points": 40},
        {"period": "lifetime", "max_events": 1, "max_points": 9},
    ]
    assert rules.stored_limits(RuleIn()) == []


# --- when an event happened (services.runtime.times.happened) -------------------------------

def test_an_event_without_a_time_happened_now() -> None:
    assert times.happened(None, NOW, "occurred_at") == NOW


def test_past_times_and_small_clock_skew_are_kept() -> None:
    past = NOW - timedelta(days=30)
    assert times.happened(past, NOW, "occurred_at") == past
    skewed = NOW + times.MAX_FUTURE_SKEW
    assert times.happened(skewed, NOW, "occurred_at") == skewed


def test_future_times_and_naive_times_are_refused() -> None:
    future = NOW + times.MAX_FUTURE_SKEW + timedelta(seconds=1)
    assert refused_field(times.happened, future, NOW, "occurred_at") == "occurred_at"
    assert refused_field(times.happened, datetime(2026, 3, 1), NOW, "events[3].occurred_at") \
        == "events[3].occurred_at"


# --- check_grant_expiries ------------------------------------------------------------------

def test_grant_items_may_carry_a_future_expiry() -> None:
    rules.check_grant_expiries([GrantItem(member_id="a", points=1),
                                GrantItem(member_id="b", points=1,
                                          expires_at=NOW + timedelta(days=1))], NOW)


@pytest.mark.parametrize("expires_at", [NOW, NOW - timedelta(days=1), datetime(2099, 1, 1)])
def test_grant_expiries_in_the_past_or_without_zone_name_the_item(expires_at: datetime) -> None:
    items = [GrantItem(member_id="a", points=1),
             GrantItem(member_id="b", points=1, expires_at=expires_at)]
    assert refused_field(rules.check_grant_expiries, items, NOW) == "items[1].expires_at"


# --- account_change ------------------------------------------------------------------------

@pytest.mark.parametrize(("from_account", "to_account", "available", "held"), [
    ("issuance", "available", 7, 0),    # earn, grant
    ("available", "held", -7, 7),       # hold
    ("held", "redemption", 0, -7),      # capture
    ("held", "available", 7, -7),       # void, expiry of a hold
    ("available", "redemption", -7, 0),  # debit
    ("available", "issuance", -7, 0),   # reversal, retirement
    ("available", "expiry", -7, 0),     # expiry
    ("redemption", "available", 7, 0),  # refund
])
def test_account_change_of_every_transfer(from_account: str, to_account: str, available: int,
                                          held: int) -> None:
    assert rules.account_change(from_account, to_account, 7, "available") == available
    assert rules.account_change(from_account, to_account, 7, "held") == held


# --- clawback ------------------------------------------------------------------------------

def test_clawback_is_pro_rata_and_rounds_down() -> None:
    assert rules.clawback(100, 10_000, 0, 2_500) == 25
    assert rules.clawback(100, 10_000, 2_500, 3_333) == 33
    assert rules.clawback(100, 10_000, 5_833, 4_167) == 42
    assert rules.clawback(10, 3, 0, 1) == 3


@given(points=st.integers(0, 10_000), amount=st.integers(1, 1_000_000),
       cuts=st.lists(st.floats(0, 1), max_size=6))
def test_partial_refunds_adding_up_to_the_whole_claw_back_every_point(
        points: int, amount: int, cuts: list[float]) -> None:
    marks = sorted({0, amount, *(int(amount * cut) for cut in cuts)})
    refunds = [b - a for a, b in pairwise(marks)]
    clawed = [rules.clawback(points, amount, sum(refunds[:i]), refund)
              for i, refund in enumerate(refunds)]
    assert all(c >= 0 for c in clawed)
    assert sum(clawed) == points


def grant_in(**fields: object) -> GrantIn:
    return msgspec.convert({"grant_id": "g", "reason": "r", **fields}, GrantIn)


def test_a_grant_has_items_or_a_segment_with_its_points() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    item = {"member_id": "m", "points": 5}
    rules.check_grant_form(grant_in(items=[item]), now)
    rules.check_grant_form(grant_in(segment_id="s", points=5), now)
    rules.check_grant_form(grant_in(segment_id="s", points=5,
                                    expires_at=(now + timedelta(days=1)).isoformat()), now)
    for fields, field in (({}, "items"),
                          ({"items": [item], "segment_id": "s", "points": 5}, "segment_id"),
                          ({"segment_id": "s"}, "points"),
                          ({"items": [item], "points": 5}, "points"),
                          ({"items": [item], "expires_at": "2030-02-01T00:00:00Z"},
                           "expires_at"),
                          ({"segment_id": "s", "points": 5, "expires_at": now.isoformat()},
                           "expires_at")):
        with pytest.raises(ValidationFailed) as refused:
            rules.check_grant_form(grant_in(**fields), now)
        assert refused.value.details == {"field": field}


def test_a_segment_grant_gives_each_member_the_same_points_once() -> None:
    at = datetime(2030, 2, 1, tzinfo=UTC)
    assert rules.segment_items(["b", "a", "b"], 7, at) == [
        GrantItem(member_id="a", points=7, expires_at=at),
        GrantItem(member_id="b", points=7, expires_at=at)]
