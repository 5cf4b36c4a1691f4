"""Pure rules of tiers: which policies are valid, and when a member moves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from proto.tiers import PercentilePolicy, Policy, ThresholdPolicy
from services.runtime.errors import ValidationFailed

METRICS = ("spend_cents", "points_earned", "points_available")


def validate_policy(policy: Policy) -> None:
    names = [t.name for t in policy.tiers]
    if len(set(names)) != len(names):
        raise ValidationFailed("tier names must be unique", field="tiers")
    if isinstance(policy, PercentilePolicy):
        if abs(sum(t.share for t in policy.tiers) - 1) > 1e-9:
            raise ValidationFailed("tier shares must add up to 1", field="tiers")
        return
    floors: dict[str, int] = {}
    for index, tier in enumerate(policy.tiers):
        minimums = {m: getattr(tier.min, m) for m in METRICS
                    if tier.min is not None and getattr(tier.min, m) is not None}
        if index > 0 and not minimums:
            raise ValidationFailed("every tier above the first needs a minimum",
                                   field=f"tiers[{index}].min")
        for metric, value in minimums.items():
            if value < floors.get(metric, 0):
                raise ValidationFailed("tiers go from lowest to highest: a minimum may not be "
                                       "below the one of a lower tier",
                                       field=f"tiers[{index}].min.{metric}")
            floors[metric] = value


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
    missing = {m: max(getattr(tier.min, m) - metrics.get(m, 0), 0) for m in METRICS
               if tier.min is not None and getattr(tier.min, m) is not None}
    return tier.name, missing
