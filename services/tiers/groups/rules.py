"""Pure rules of community groups: join and leave times, report periods, the bottom lines of
group value, stages, the activation watch, the composition targets of the three-group strategy
and where to invite members who should move.

The lines are drawn over the tenant's community groups with members at the time; flash groups
(short-lived campaign groups) are measured against them but do not move them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from proto.tiers import MigrationSuggestion
from services.runtime.errors import Conflict, ValidationFailed
from services.runtime.times import happened
from services.tiers.members import is_escrow

if TYPE_CHECKING:
    from services.tiers.groups.store import GroupRow

SILVER_SHARE = 0.2  # groups in the bottom 20% of group value are in their silver stage
WATCH_SHARE = 0.15  # ... and 4 consecutive weeks in the bottom 15% put them on activation watch
WATCH_WEEKS = 4
# Shares of super users / potential super users / regular members a group of a kind aims at.
TARGETS: dict[str, dict[str, float]] = {
    "super": {"super": 0.3, "potential": 0.7, "regular": 0.0},
    "member": {"super": 0.1, "potential": 0.2, "regular": 0.7},
}
JUST_BEFORE = timedelta(microseconds=1)
# Path segments of the groups API that are not group ids.
RESERVED_GROUP_IDS = frozenset({"migrations", "trends", "trends.csv", "export.csv"})
SUGGESTED_GROUPS = 3

Stage = Literal["golden", "silver"]
Reason = Literal["tier_mismatch", "high_value_in_silver_group"]


def check_group_id(group_id: str) -> None:
    if group_id in RESERVED_GROUP_IDS:
        raise ValidationFailed(f"{group_id!r} is reserved", field="group_id")


def check_parent(group_id: str, parent: str | None) -> None:
    """A group cannot be its own parent (a longer cycle is found in the stored tree)."""
    if parent == group_id:
        raise parent_cycle(group_id, parent)


def parent_cycle(group_id: str, parent: str) -> ValidationFailed:
    return ValidationFailed(f"{parent!r} is {group_id!r} or below it: a group cannot sit under "
                            "itself", code="parent_cycle", field="parent", parent=parent)


def group_tags(tags: Iterable[str]) -> list[str]:
    """A group's labels as stored: each once, sorted (their pattern is the contract's)."""
    return sorted(set(tags))


def check_created_at(created_at: datetime | None, stored: datetime | None,
                     now: datetime) -> datetime | None:
    """``created_at`` of a PUT: taken when the PUT creates the group (not in the future, kept
    in UTC); on an existing group it may only repeat the stored time."""
    if created_at is None:
        return None
    moment = happened(created_at, now, "created_at").astimezone(UTC)
    if stored is not None and moment != stored:
        raise Conflict("a group's created_at is set when it is created and never changes",
                       code="created_at_fixed", created_at=stored.isoformat())
    return moment


def check_dissolution(at: datetime, created_at: datetime, last_change: datetime | None) -> None:
    """A dissolution comes after the group's creation and after every join and leave in it
    (it ends the stays still open at that time)."""
    if at < created_at:
        raise ValidationFailed("a group cannot be dissolved before it was created", field="at",
                               created_at=created_at.isoformat())
    if last_change is not None and at < last_change:
        raise Conflict("members joined or left this group after that time; a dissolution "
                       "comes after the last of them", code="activity_after_dissolution",
                       last_change=last_change.isoformat())


def check_member(member_id: str) -> None:
    if is_escrow(member_id):
        raise ValidationFailed(f"{member_id!r} is an escrow account of the points ledger, not a "
                               "member", code="escrow_member", field="member_id")


def check_tier(tier: str, ladder: list[str]) -> None:
    if tier not in ladder:
        raise ValidationFailed(f"unknown tier {tier!r}; the policy has {ladder}", field="tier")


def check_moment(at: datetime | None, now: datetime, field: str = "at") -> datetime:
    """A join or leave time: ``now`` if not given, else with an offset and not in the future,
    kept (and answered) in UTC."""
    return now if at is None else happened(at, now, field).astimezone(UTC)


def check_rejoin(at: datetime, joined_at: datetime, left_at: datetime) -> None:
    """A new stay after the member's last one (joined_at, left_at): it may start the very
    instant the last one ended, but not before, and never at the start of a stay that lasted
    no time at all (a join and a leave at one instant): that moment is taken."""
    if at < left_at:
        raise Conflict("the member left this group after that time; a join must come after "
                       "the last leave", code="overlapping_stay",
                       details={"left_at": left_at.isoformat()})
    if at == joined_at:
        raise Conflict("the member left this group at that very instant (a stay that lasted no "
                       "time); a new stay must start after it", code="overlapping_stay",
                       details={"left_at": left_at.isoformat()})


def check_leave(at: datetime, joined_at: datetime) -> None:
    if at < joined_at:
        raise ValidationFailed("a leave cannot come before the join", field="at",
                               details={"joined_at": joined_at.isoformat()})


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


def stage(value: float | None, values: list[float]) -> Stage:
    """Silver in the bottom 20% of the tenant's groups (or without members), golden above."""
    if value is None or in_bottom(value, values, SILVER_SHARE):
        return "silver"
    return "golden"


class GroupValues:
    """Value mean per group with members at one time, and the tenant's community-group values
    the bottom lines are drawn from."""

    def __init__(self, mean: Mapping[str, float], flash: set[str]) -> None:
        self.mean = dict(mean)
        self.community = [v for group, v in self.mean.items() if group not in flash]

    def stage(self, group_id: str) -> Stage:
        return stage(self.mean.get(group_id), self.community)

    def in_bottom(self, group_id: str, share: float) -> bool:
        value = self.mean.get(group_id)
        return value is not None and in_bottom(value, self.community, share)


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


def ratio(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


@dataclass(frozen=True)
class Misplaced:
    """A member who should move: in a group that does not fit their tier, or a high-value
    member in a silver group."""

    member_id: str
    group_id: str
    group_tier: str
    member_tier: str | None
    value: float | None
    reason: Reason


def flash_groups(groups: Iterable[GroupRow]) -> set[str]:
    """The flash groups: measured against the bottom lines but not drawing them."""
    return {g.group_id for g in groups if g.kind == "flash"}


def invitation_lists(groups: Iterable[GroupRow],
                     liveliness: Mapping[str, float]) -> dict[str, list[str]]:
    """Per tier, its active non-flash groups, liveliest first: where invitations go."""
    by_tier: dict[str, list[str]] = {}
    for group in sorted(groups, key=lambda g: (-liveliness.get(g.group_id, 0.0), g.group_id)):
        if group.kind != "flash" and group.status == "active":
            by_tier.setdefault(group.tier, []).append(group.group_id)
    return by_tier


def first_moves(moves: list[Misplaced], limit: int) -> tuple[list[Misplaced], bool]:
    """The first ``limit`` moves by member, group and reason, and whether more were left."""
    ordered = sorted(moves, key=lambda m: (m.member_id, m.group_id, m.reason))
    return ordered[:limit], len(ordered) > limit


def suggestion(move: Misplaced, by_tier: Mapping[str, list[str]], current: set[str],
               values: GroupValues | None) -> MigrationSuggestion:
    """Where to invite a member: groups of their tier they are not in, liveliest first; for
    a high-value member in a silver group, golden groups only."""
    if move.reason == "tier_mismatch":
        tier = move.member_tier
    else:
        tier = move.member_tier or move.group_tier
    candidates = [g for g in by_tier.get(tier or "", [])
                  if g not in current
                  and (move.reason == "tier_mismatch"
                       or (values is not None and values.stage(g) == "golden"))]
    return MigrationSuggestion(
        member_id=move.member_id, group_id=move.group_id, group_tier=move.group_tier,
        member_tier=move.member_tier, value=move.value, reason=move.reason,
        suggested_groups=candidates[:SUGGESTED_GROUPS])



# --- lists and trends -------------------------------------------------------------------------

ACTIVE_DAYS = 7  # the list's active rate: actions in the group on the last 7 local days
MAX_PERIODS = 366  # the most periods one trends request covers
TrendStep = Literal["day", "week"]
# Figures of a trend period, in the order of the CSV columns; growth rates are per figure.
TREND_FIGURES = ("groups", "new_groups", "dissolved", "members", "joins", "leaves", "net_adds",
                 "speakers", "purchasers", "gmv_cents")


def active_days(today: date) -> tuple[date, date]:
    """The local days of the list's active rate: the ``ACTIVE_DAYS`` days ending today."""
    return today - timedelta(days=ACTIVE_DAYS - 1), today


def parse_day(text: str, field: str) -> date:
    """A ``YYYY-MM-DD`` query value (its pattern checked by the route) as a date in the
    years fuli takes."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValidationFailed(f"{field} is not a date", field=field) from None
    if not 1900 <= day.year <= 8999:
        raise ValidationFailed(f"{field}: days run from 1900 to 8999", field=field)
    return day


@dataclass(frozen=True)
class TrendRange:
    """Periods of a trends request: ``count`` periods (days, or ISO weeks Monday first) from
    ``first_day``, the first holding ``from`` and the last holding ``to``."""

    by: TrendStep
    first_day: date
    count: int

    @property
    def step(self) -> int:
        return 7 if self.by == "week" else 1

    @property
    def last_day(self) -> date:
        """The last local day of the last period."""
        return self.first_day + timedelta(days=self.count * self.step - 1)

    def with_previous(self) -> TrendRange:
        """The same periods and the one before the first, to compare the first against."""
        return TrendRange(self.by, self.first_day - timedelta(days=self.step), self.count + 1)


def trend_range(first: date, last: date, by: TrendStep) -> TrendRange:
    """The periods covering the local days ``first`` to ``last`` (both included): from > to,
    or more than ``MAX_PERIODS`` periods, is a 422."""
    if first > last:
        raise ValidationFailed("from is after to", field="from")
    if by == "week":
        first = first - timedelta(days=first.weekday())
        last = last - timedelta(days=last.weekday())
    count = (last - first).days // (7 if by == "week" else 1) + 1
    if count > MAX_PERIODS:
        raise ValidationFailed(f"{count} periods asked for; at most {MAX_PERIODS} at once",
                               code="too_many_periods", field="to", periods=count)
    return TrendRange(by, first, count)


def growth(previous: int, current: int) -> float | None:
    """(current - previous) / |previous|, rounded to 4 places; None when previous is 0."""
    if previous == 0:
        return None
    return round((current - previous) / abs(previous), 4)


def growth_rates(previous: Mapping[str, int],
                 current: Mapping[str, int]) -> dict[str, float | None]:
    return {name: growth(previous[name], current[name]) for name in TREND_FIGURES}


def with_net_adds(figures: Mapping[str, int]) -> dict[str, int]:
    """A period's figures with its net adds (joins - leaves)."""
    return {**figures, "net_adds": figures["joins"] - figures["leaves"]}


# Spreadsheet programs run a cell starting with one of these as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: str) -> str:
    """Free text for a CSV cell: one that a spreadsheet would read as a formula is quoted with
    a leading apostrophe."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value
