"""Pure rules of community groups: report periods, the bottom lines of group value, stages,
the activation watch and the composition targets of the three-group strategy.

The lines are drawn over the tenant's community groups with members at the time; flash groups
(short-lived campaign groups) are measured against them but do not move them."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from proto.tiers import ValueModel
from services.runtime.errors import ValidationFailed

SILVER_SHARE = 0.2  # groups in the bottom 20% of group value are in their silver stage
WATCH_SHARE = 0.15  # ... and 4 consecutive weeks in the bottom 15% put them on activation watch
WATCH_WEEKS = 4
# Shares of super users / potential super users / regular members a group of a kind aims at.
TARGETS: dict[str, dict[str, float]] = {
    "super": {"super": 0.3, "potential": 0.7, "regular": 0.0},
    "member": {"super": 0.1, "potential": 0.2, "regular": 0.7},
}
JUST_BEFORE = timedelta(microseconds=1)


def period_bounds(period: str, at: datetime, time_zone: str) -> tuple[datetime, datetime]:
    """The local week (Monday first) or calendar month holding ``at``, as [start, end)."""
    zone = ZoneInfo(time_zone)
    day = at.astimezone(zone).date()
    if period == "week":
        first = day - timedelta(days=day.weekday())
        after = first + timedelta(days=7)
    else:
        first = day.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
    return _midnight(first, zone), _midnight(after, zone)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone)


def watch_weeks(end: datetime, time_zone: str) -> list[datetime]:
    """The last moments of the ``WATCH_WEEKS`` weeks up to the one holding ``end`` - 1 us."""
    moments = []
    moment = end - JUST_BEFORE
    for _ in range(WATCH_WEEKS):
        start, after = period_bounds("week", moment, time_zone)
        moments.append(after - JUST_BEFORE)
        moment = start - JUST_BEFORE
    return moments


def in_bottom(value: float, values: list[float], share: float) -> bool:
    """Whether ``value`` is in the bottom ``share`` of the groups' ``values``: at or below the
    value of the floor(share x n)-th lowest group (ties at the line are in)."""
    count = math.floor(share * len(values) + 1e-9)
    return count > 0 and value <= sorted(values)[count - 1]


def stage(value: float | None, values: list[float]) -> str:
    """Silver in the bottom 20% of the tenant's groups (or without members), golden above."""
    if value is None or in_bottom(value, values, SILVER_SHARE):
        return "silver"
    return "golden"


def composition(kind: str, members: int, super_users: int,
                potential: int, tolerance: float) -> tuple[dict[str, float], bool]:
    """Actual shares of a group and whether each is within ``tolerance`` of its target."""
    if members == 0:
        return {"super": 0.0, "potential": 0.0, "regular": 0.0}, False
    shares = {"super": super_users / members, "potential": potential / members,
              "regular": (members - super_users - potential) / members}
    target = TARGETS[kind]
    balanced = all(abs(shares[k] - target[k]) <= tolerance + 1e-9 for k in target)
    return {k: round(v, 4) for k, v in shares.items()}, balanced


def validate_value_model(model: ValueModel) -> None:
    for action, weight in model.actions.items():
        if weight.weight == 0 and not weight.per_100_cents:
            raise ValidationFailed("an action needs a weight or a per_100_cents above 0",
                                   field=f"actions.{action}")


def check_moment(at: datetime | None, now: datetime, field: str = "at") -> datetime:
    """A join or leave time: given with an offset, not in the future."""
    if at is None:
        return now
    if at.tzinfo is None:
        raise ValidationFailed("times need a time zone offset (RFC 3339)", field=field)
    if at > now + timedelta(minutes=5):
        raise ValidationFailed(f"{field} is in the future", field=field)
    return at.astimezone(UTC)


def ratio(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0
