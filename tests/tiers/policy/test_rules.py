"""Pure rules of tier policies (no servers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from proto import tiers as t
from proto.events import (
    Envelope,
    Event,
    PointsAwarded,
    PointsExpired,
    PointsRefunded,
    PointsReversed,
    PointsSpent,
    PurchaseRecorded,
    PurchaseReversed,
    TierChanged,
)
from services.runtime.errors import ValidationFailed
from services.tiers.policy import rules

NOW = datetime(2026, 10, 5, 12, 0, tzinfo=UTC)


def ladder(**extra: Any) -> t.ThresholdPolicy:
    return msgspec.convert({"mode": "threshold", "tiers": [
        {"name": "fan"},
        {"name": "member", "min": {"spend_cents": 30_000}},
        {"name": "vip", "min": {"spend_cents": 100_000, "points_earned": 500},
         "benefits": {"earn_multiplier": 1.5}}], **extra}, t.ThresholdPolicy)


def percentile(*shares: float) -> t.PercentilePolicy:
    return t.PercentilePolicy(metric="spend_cents", tiers=[
        t.PercentileTier(name=f"t{i}", share=share) for i, share in enumerate(shares)])


def envelope(event: Event) -> Envelope:
    return Envelope(event_id="e1", tenant_id="acme", service="points",
                    type=type(event).__name__, emitted_at=NOW,
                    data=msgspec.Raw(msgspec.json.encode(event)))


def test_a_valid_ladder_and_valid_shares_pass() -> None:
    rules.validate_policy(ladder())
    rules.validate_policy(percentile(0.5, 0.3, 0.2))


@pytest.mark.parametrize("policy", [
    percentile(0.5, 0.4),
    msgspec.convert({"mode": "threshold", "tiers": [
        {"name": "fan"}, {"name": "fan", "min": {"spend_cents": 1}}]}, t.ThresholdPolicy),
    msgspec.convert({"mode": "threshold", "tiers": [{"name": "fan"}, {"name": "vip"}]},
                    t.ThresholdPolicy),
    msgspec.convert({"mode": "threshold", "tiers": [
        {"name": "fan"}, {"name": "vip", "min": {"spend_cents": 100}},
        {"name": "member", "min": {"spend_cents": 50}}]}, t.ThresholdPolicy),
])
def test_invalid_policies_are_refused(policy: t.Policy) -> None:
    with pytest.raises(ValidationFailed):
        rules.validate_policy(policy)


def test_the_field_of_a_minimum_below_a_lower_tier_is_named() -> None:
    policy = msgspec.convert({"mode": "threshold", "tiers": [
        {"name": "fan"}, {"name": "vip", "min": {"spend_cents": 100}},
        {"name": "member", "min": {"spend_cents": 50}}]}, t.ThresholdPolicy)
    with pytest.raises(ValidationFailed) as refused:
        rules.validate_policy(policy)
    assert refused.value.details == {"field": "tiers[2].min.spend_cents"}


def test_upgrades_are_immediate_downgrades_wait_for_grace() -> None:
    assert rules.next_tier(None, 0, None, 7, NOW) == rules.Move(0, None, True)
    assert rules.next_tier(1, 2, None, 7, NOW) == rules.Move(2, None, True)
    assert rules.next_tier(1, 1, NOW - timedelta(days=1), 7, NOW) == rules.Move(1, None, False)
    # The first time below the line starts the grace, which then runs from that moment.
    assert rules.next_tier(2, 1, None, 7, NOW) == rules.Move(2, NOW, False)
    started = NOW - timedelta(days=3)
    assert rules.next_tier(2, 1, started, 7, NOW) == rules.Move(2, started, False)
    assert rules.next_tier(2, 0, NOW - timedelta(days=7), 7, NOW) == rules.Move(0, None, True)
    assert rules.next_tier(2, 1, None, 0, NOW) == rules.Move(1, None, True)


def threshold(*tiers: dict[str, Any]) -> t.ThresholdPolicy:
    return msgspec.convert({"mode": "threshold", "tiers": list(tiers)}, t.ThresholdPolicy)


def test_threshold_tier_is_the_highest_tier_whose_minimums_are_met() -> None:
    policy = ladder()
    zero = {"spend_cents": 0, "points_earned": 0, "points_available": 0}
    assert rules.threshold_tier(policy, zero) == 0
    assert rules.threshold_tier(policy, {**zero, "spend_cents": 30_000}) == 1
    # "all" (the default) needs every minimum of the tier.
    assert rules.threshold_tier(policy, {**zero, "spend_cents": 100_000,
                                         "points_earned": 499}) == 1
    assert rules.threshold_tier(policy, {**zero, "spend_cents": 100_000,
                                         "points_earned": 500}) == 2


def test_threshold_tier_with_match_any_needs_one_minimum() -> None:
    policy = threshold({"name": "fan"}, {"name": "vip", "match": "any",
                                         "min": {"spend_cents": 100, "points_earned": 50}})
    assert rules.threshold_tier(policy, {"spend_cents": 0, "points_earned": 50}) == 1
    assert rules.threshold_tier(policy, {"spend_cents": 99, "points_earned": 49}) == 0


def test_threshold_tier_checks_each_tier_on_its_own() -> None:
    # A higher tier is reached past a lower one that is not met; none met is the lowest tier.
    policy = threshold({"name": "fan", "min": {"spend_cents": 10}},
                       {"name": "member", "min": {"points_available": 1_000}},
                       {"name": "vip", "min": {"points_earned": 5}})
    assert rules.threshold_tier(policy, {"spend_cents": 0, "points_available": 0,
                                         "points_earned": 5}) == 2
    assert rules.threshold_tier(policy, {"spend_cents": 0, "points_available": 0,
                                         "points_earned": 0}) == 0


def test_threshold_tier_leaves_out_what_it_cannot_compare() -> None:
    # A tier without minimums (or with an empty "min") is met; a minimum on a metric that is
    # not given is left out, for "all" and "any" alike.
    policy = threshold({"name": "fan", "min": {"spend_cents": 10}}, {"name": "member", "min": {}},
                       {"name": "vip", "min": {"spend_cents": 100, "points_earned": 5}})
    assert rules.threshold_tier(policy, {"spend_cents": 0}) == 1
    assert rules.threshold_tier(policy, {"spend_cents": 100}) == 2
    anyone = threshold({"name": "fan"}, {"name": "vip", "match": "any",
                                         "min": {"spend_cents": 100}})
    assert rules.threshold_tier(anyone, {}) == 1
    assert rules.threshold_tier(anyone, {"spend_cents": 0}) == 0


def test_needed_for_next_lists_what_is_missing_of_each_minimum() -> None:
    policy = ladder()
    assert rules.needed_for_next(policy, -1, {}) == ("fan", {})
    assert rules.needed_for_next(policy, 0, {"spend_cents": 10_000}) == (
        "member", {"spend_cents": 20_000})
    assert rules.needed_for_next(policy, 1, {"spend_cents": 120_000, "points_earned": 100}) == (
        "vip", {"spend_cents": 0, "points_earned": 400})
    assert rules.needed_for_next(policy, 2, {}) is None


def test_earn_multiplier_defaults_to_one() -> None:
    assert rules.earn_multiplier(ladder(), 2) == 1.5
    assert rules.earn_multiplier(ladder(), 0) == 1.0


def test_member_tier_shows_next_tier_and_grace() -> None:
    below = NOW - timedelta(days=2)
    shown = rules.member_tier("m1", ladder(grace_days=7), "vip", NOW, below,
                              {"spend_cents": 90_000})
    assert shown.next is None and shown.grace_until == below + timedelta(days=7)
    fan = rules.member_tier("m1", ladder(), "fan", NOW, None, {"spend_cents": 10_000})
    assert fan.next == t.NextTier(tier="member", needed={"spend_cents": 20_000})
    assert fan.grace_until is None
    unknown = rules.member_tier("m2", None, None, None, None, {})
    assert (unknown.tier, unknown.next, unknown.grace_until) == (None, None, None)
    # Percentile tiers have no "next": the job moves members.
    assert rules.member_tier("m3", percentile(1.0), "t0", NOW, None, {}).next is None


def test_distribution_follows_the_ladder_or_the_tiers_seen() -> None:
    cut = [t.CutLine(tier="t0", members=1, from_value=0)]
    shares = rules.distribution(percentile(0.5, 0.5), {"t1": 1, "t0": 3}, cut, NOW)
    assert [(s.tier, s.members, s.share) for s in shares.tiers] == [("t0", 3, 0.75),
                                                                    ("t1", 1, 0.25)]
    assert shares.members == 4 and shares.cut_lines == cut and shares.evaluated_at == NOW
    empty = rules.distribution(None, {}, [], None)
    assert (empty.members, empty.tiers) == (0, [])
    seen = rules.distribution(None, {"b": 1, "a": 1}, [], None)
    assert [s.tier for s in seen.tiers] == ["a", "b"]


def test_points_facts_change_metrics() -> None:
    awarded = PointsAwarded(member_id="m", points=10, source="event", ref="e", occurred_at=NOW,
                            expires_at=NOW)
    assert rules.metric_change(envelope(awarded)) == rules.MetricChange(
        "m", at=NOW, points_earned=10, points_available=10)
    bought = PurchaseRecorded(member_id="m", event_id="e", amount_cents=500, occurred_at=NOW)
    assert rules.metric_change(envelope(bought)) == rules.MetricChange(
        "m", at=NOW, spend_cents=500)
    refunded = PurchaseReversed(member_id="m", event_id="e", reversal_id="r", amount_cents=200,
                                occurred_at=NOW, reversed_at=NOW)
    assert rules.metric_change(envelope(refunded)) == rules.MetricChange(
        "m", at=NOW, spend_cents=-200)
    reversed_ = PointsReversed(member_id="m", event_id="e", reversal_id="r", points=10,
                               clawed_back=7, shortfall=3, reversed_at=NOW)
    assert rules.metric_change(envelope(reversed_)) == rules.MetricChange(
        "m", at=NOW, points_earned=-10, points_available=-7)
    spent = PointsSpent(member_id="m", points=4, kind="debit", ref="d", reason="x",
                        spent_at=NOW)
    assert rules.metric_change(envelope(spent)) == rules.MetricChange("m", points_available=-4)
    expired = PointsExpired(member_id="m", points=3, expired_at=NOW)
    assert rules.metric_change(envelope(expired)) == rules.MetricChange(
        "m", points_available=-3)
    back = PointsRefunded(member_id="m", points=2, ref="h", refunded_at=NOW)
    assert rules.metric_change(envelope(back)) == rules.MetricChange("m", points_available=2)
    other = TierChanged(member_id="m", tier="vip", changed_at=NOW)
    assert rules.metric_change(envelope(other)) is None


def test_facts_carry_their_moment_for_the_local_day_bucket() -> None:
    early = datetime.fromisoformat("2026-10-05T02:00:00+08:00")  # 4 October in UTC
    bought = PurchaseRecorded(member_id="m", event_id="e", amount_cents=1, occurred_at=early)
    change = rules.metric_change(envelope(bought))
    assert change is not None and change.at == early
