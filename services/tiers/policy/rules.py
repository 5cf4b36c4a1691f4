"""Pure rules of tier policies: which policies are valid, what a points fact does to a
member's metrics, when a member moves (upgrades at once, downgrades after grace), what is
missing for the next tier, and the distribution over the ladder."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from proto.events import (
    Envelope,
    PointsAwarded,
    PointsExpired,
    PointsRefunded,
    PointsReversed,
    PointsSpent,
    PurchaseRecorded,
    PurchaseReversed,
)
from proto.tiers import (
    CutLine,
    Distribution,
    MemberTier,
    NextTier,
    PercentilePolicy,
    Policy,
    ThresholdPolicy,
    ThresholdTier,
    TierShare,
)
from services.runtime.errors import ValidationFailed
from services.tiers.ladder import ladder

METRICS = ("spend_cents", "points_earned", "points_available")


def validate_policy(policy: Policy) -> None:
    names = ladder(policy)
    if len(set(names)) != len(names):
        raise ValidationFailed("tier names must be unique", field="tiers")
    if isinstance(policy, PercentilePolicy):
        if abs(sum(t.share for t in policy.tiers) - 1) > 1e-9:
            raise ValidationFailed("tier shares must add up to 1", field="tiers")
        return
    floors: dict[str, int] = {}
    for index, tier in enumerate(policy.tiers):
        minimums = minimums_of(tier)
        if index > 0 and not minimums:
            raise ValidationFailed("every tier above the first needs a minimum",
                                   field=f"tiers[{index}].min")
        for metric, value in minimums.items():
            if value < floors.get(metric, 0):
                raise ValidationFailed("tiers go from lowest to highest: a minimum may not be "
                                       "below the one of a lower tier",
                                       field=f"tiers[{index}].min.{metric}")
            floors[metric] = value


def minimums_of(tier: ThresholdTier) -> dict[str, int]:
    """The metrics a threshold tier sets a minimum on, with those minimums."""
    if tier.min is None:
        return {}
    given = {m: getattr(tier.min, m) for m in METRICS}
    return {m: value for m, value in given.items() if value is not None}


def threshold_tier(policy: ThresholdPolicy, metrics: Mapping[str, int]) -> int:
    """The index of the highest tier whose minimums ``metrics`` meet, the lowest tier if none
    does. Tiers are checked one by one, so a tier can be reached past one that is not."""
    met = [index for index, tier in enumerate(policy.tiers) if meets(tier, metrics)]
    return max(met, default=0)


def meets(tier: ThresholdTier, metrics: Mapping[str, int]) -> bool:
    """Whether ``metrics`` reach all of the tier's minimums (any one with ``match: any``). A
    tier without minimums is met; a minimum on a metric ``metrics`` lacks is left out (as the
    SQL ``tiers.threshold_tier`` this replaces compared it with NULL)."""
    reached = [metrics[m] >= minimum for m, minimum in minimums_of(tier).items() if m in metrics]
    if not reached:
        return True
    return any(reached) if tier.match == "any" else all(reached)


@dataclass(frozen=True)
class MetricChange:
    """What one points fact adds to a member's metrics. ``at`` is the moment whose local day
    (in the tenant's time zone) is the daily bucket that spend and earned points go to (None:
    the fact touches no bucket); ``points_available`` is None when the fact leaves the
    available balance alone."""

    member_id: str
    at: datetime | None = None
    spend_cents: int = 0
    points_earned: int = 0
    points_available: int | None = None


_SPENDS: dict[str, type[PointsSpent | PointsExpired | PointsRefunded]] = {
    "PointsSpent": PointsSpent, "PointsExpired": PointsExpired,
    "PointsRefunded": PointsRefunded}


def metric_change(envelope: Envelope) -> MetricChange | None:
    """The change a points event makes to its member's metrics; None for other events."""
    kind = envelope.type
    if kind == "PointsAwarded":
        awarded = msgspec.json.decode(envelope.data, type=PointsAwarded)
        return MetricChange(awarded.member_id, at=awarded.occurred_at,
                            points_earned=awarded.points, points_available=awarded.points)
    if kind == "PurchaseRecorded":
        bought = msgspec.json.decode(envelope.data, type=PurchaseRecorded)
        return MetricChange(bought.member_id, at=bought.occurred_at,
                            spend_cents=bought.amount_cents)
    if kind == "PurchaseReversed":
        refunded = msgspec.json.decode(envelope.data, type=PurchaseReversed)
        return MetricChange(refunded.member_id,
                            at=refunded.occurred_at,
                            spend_cents=-refunded.amount_cents)
    if kind == "PointsReversed":
        reversed_ = msgspec.json.decode(envelope.data, type=PointsReversed)
        return MetricChange(reversed_.member_id,
                            at=reversed_.reversed_at,
                            points_earned=-reversed_.points,
                            points_available=-reversed_.clawed_back)
    if kind in _SPENDS:
        fact = msgspec.json.decode(envelope.data, type=_SPENDS[kind])
        sign = 1 if kind == "PointsRefunded" else -1
        return MetricChange(fact.member_id, points_available=sign * fact.points)
    return None


@dataclass(frozen=True)
class Move:
    tier_index: int
    below_since: datetime | None
    changed: bool


def next_tier(current: int | None, qualified: int, below_since: datetime | None,
              grace_days: int, now: datetime) -> Move:
    """Upgrades take effect at once; a downgrade only after ``grace_days`` below the line."""
    if current is None or qualified > current:
        return Move(qualified, None, True)
    if qualified == current:
        return Move(current, None, False)
    started = below_since or now
    if now - started >= timedelta(days=grace_days):
        return Move(qualified, None, True)
    return Move(current, started, False)


def needed_for_next(policy: ThresholdPolicy, index: int,
                    metrics: dict[str, int]) -> tuple[str, dict[str, int]] | None:
    """The next tier up and what is missing to reach it."""
    if index + 1 >= len(policy.tiers):
        return None
    tier = policy.tiers[index + 1]
    missing = {m: max(minimum - metrics.get(m, 0), 0)
               for m, minimum in minimums_of(tier).items()}
    return tier.name, missing


def earn_multiplier(policy: Policy, tier_index: int) -> float:
    """The earn multiplier a tier gives (1 without one), announced with every move."""
    benefits = policy.tiers[tier_index].benefits
    return benefits.earn_multiplier if benefits and benefits.earn_multiplier else 1.0


def member_tier(member_id: str, policy: Policy | None, tier: str | None,
                since: datetime | None, below_since: datetime | None,
                metrics: dict[str, int]) -> MemberTier:
    """A member's tier as shown: under a threshold ladder with what the next tier needs, and
    the end of a running downgrade grace."""
    next_up = None
    if isinstance(policy, ThresholdPolicy):
        names = ladder(policy)
        index = names.index(tier) if tier in names else -1
        upcoming = needed_for_next(policy, index, metrics)
        if upcoming:
            next_up = NextTier(tier=upcoming[0], needed=upcoming[1])
    grace_until = None
    if below_since and policy:
        grace_until = below_since + timedelta(days=policy.grace_days)
    return MemberTier(member_id=member_id, tier=tier, since=since, metrics=metrics,
                      next=next_up, grace_until=grace_until)


def distribution(policy: Policy | None, counts: dict[str, int], cut_lines: list[CutLine],
                 evaluated_at: datetime | None) -> Distribution:
    """Members and share per tier of the ladder (per tier seen when there is no policy)."""
    total = sum(counts.values())
    names = ladder(policy) if policy else sorted(counts)
    return Distribution(
        members=total,
        tiers=[TierShare(tier=name, members=counts.get(name, 0),
                         share=counts.get(name, 0) / total if total else 0.0)
               for name in names],
        cut_lines=cut_lines, evaluated_at=evaluated_at)
