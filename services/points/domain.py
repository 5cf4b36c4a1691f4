"""Pure rules of the ledger, without I/O.

The ledger runs these rules inside PostgreSQL (services/points/sql) so that an event is one round
trip; this module states them in Python for validation and as the reference the model-based
tests compare the database against.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from proto.points import Limit, RuleIn
from services.runtime.errors import ValidationFailed

LIFETIME_START = date(1970, 1, 1)


def validate_rule(rule: RuleIn) -> None:
    if (rule.points_per_unit > 0) != (rule.unit_cents is not None):
        raise ValidationFailed("points_per_unit and unit_cents go together: both or neither",
                               field="unit_cents")
    periods = [limit.period for limit in rule.limits]
    if len(set(periods)) != len(periods):
        raise ValidationFailed("at most one limit per period", field="limits")
    for index, limit in enumerate(rule.limits):
        if limit.max_events is None and limit.max_points is None:
            raise ValidationFailed("a limit needs max_events and/or max_points",
                                   field=f"limits[{index}]")


def base_points(rule: RuleIn, amount_cents: int | None, multiplier: float = 1.0) -> int:
    """Points an event earns before caps: fixed points plus whole units of the amount, times
    the member's earn multiplier, rounded down."""
    points = rule.points
    if rule.unit_cents is not None and amount_cents is not None:
        points += (amount_cents // rule.unit_cents) * rule.points_per_unit
    return int(points * multiplier)


def period_start(period: str, occurred_at: datetime, time_zone: str) -> date:
    """First day of the cap period holding ``occurred_at``, in the tenant's time zone."""
    local = occurred_at.astimezone(ZoneInfo(time_zone)).date()
    if period == "day":
        return local
    if period == "week":
        return local - timedelta(days=local.weekday())
    if period == "month":
        return local.replace(day=1)
    return LIFETIME_START


@dataclass
class Usage:
    events: int = 0
    points: int = 0


def award_after_caps(points: int, limits: list[Limit], usage: list[Usage]) -> int:
    """What an event may still be awarded given each limit's usage in its current period:
    nothing once a period's event count is reached, else at most the points left."""
    award = points
    for limit, used in zip(limits, usage, strict=True):
        if limit.max_events is not None and used.events >= limit.max_events:
            award = 0
        if limit.max_points is not None:
            award = min(award, max(limit.max_points - used.points, 0))
    return award


@dataclass
class Lot:
    lot_id: int
    remaining: int
    held: int
    expires_at: datetime

    def free(self, now: datetime) -> int:
        return self.remaining - self.held if self.expires_at > now else 0


def live_available(lots: list[Lot], now: datetime) -> int:
    return sum(lot.free(now) for lot in lots)


def fefo(lots: list[Lot], amount: int, now: datetime) -> list[tuple[int, int]]:
    """Which lots cover ``amount``, first-expiring first: [(lot_id, points)]."""
    taken: list[tuple[int, int]] = []
    left = amount
    for lot in sorted(lots, key=lambda lot: (lot.expires_at, lot.lot_id)):
        if left == 0:
            break
        take = min(lot.free(now), left)
        if take > 0:
            taken.append((lot.lot_id, take))
            left -= take
    if left:
        raise ValueError(f"live lots cover {amount - left} of {amount} points")
    return taken


def clawback(points: int, amount_cents: int, refunded_before: int, refund: int) -> int:
    """Points to claw back for a refund of ``refund`` cents after ``refunded_before`` cents were
    refunded already. Rounding is cumulative, so refunds that add up to the whole amount claw
    back exactly the event's points."""
    return (points * (refunded_before + refund)) // amount_cents \
        - (points * refunded_before) // amount_cents
